import pytest
import torch

from dgraph.audio import FASTDIFF, HIFIGAN, decompress, griffin_lim, mel_spectrogram, spectral_convergence
from dgraph.errors import DgraphError

from audio_helpers import chirp


def _mel_convergence(mel, audio, profile):
    rebuilt = mel_spectrogram(audio, profile)[..., : mel.shape[-1]]
    target = decompress(mel, profile)
    return float(torch.linalg.norm(decompress(rebuilt, profile) - target) / torch.linalg.norm(target))


@pytest.mark.parametrize("profile, stft_sc, mel_sc", [(FASTDIFF, 0.2342, 0.1264), (HIFIGAN, 0.3186, 0.1563)])
def test_griffin_lim_of_a_chirp_reaches_a_pinned_spectral_convergence(profile, stft_sc, mel_sc):
    x = chirp(0.5)
    mel = mel_spectrogram(x, profile)
    audio = griffin_lim(mel, profile, n_iter=32, generator=torch.Generator().manual_seed(0))
    assert audio.shape == (1, mel.shape[-1] * profile.hop_length)
    assert spectral_convergence(x, audio, profile) == pytest.approx(stft_sc, abs=0.01)
    assert _mel_convergence(mel, audio, profile) == pytest.approx(mel_sc, abs=0.01)
    # The random starting phase alone is far off: the iterations do the work.
    start = griffin_lim(mel, profile, n_iter=0, generator=torch.Generator().manual_seed(0))
    assert spectral_convergence(x, start, profile) > 0.6


def test_spectral_convergence_of_a_signal_with_itself_is_zero():
    x = chirp(0.2)
    assert spectral_convergence(x, x, FASTDIFF) == 0.0
    assert spectral_convergence(x, 0.5 * x, FASTDIFF) == pytest.approx(0.5, abs=1e-6)


def test_griffin_lim_checks_the_mel_shape():
    with pytest.raises(DgraphError, match=r"griffin_lim: expected a mel of shape \[batch, 80, frames\] for profile "
                                          r"'fastdiff', got \[1, 64, 10\]"):
        griffin_lim(torch.zeros(1, 64, 10), FASTDIFF)
