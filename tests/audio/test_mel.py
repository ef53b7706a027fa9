import math

import numpy as np
import pytest
import torch
import torchaudio

from dgraph.audio import AUDIOLDM, DIFFWAVE, FASTDIFF, HIFIGAN, PROFILES, mel_filterbank, mel_frequencies, mel_spectrogram
from dgraph.errors import DgraphError

from audio_helpers import chirp


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("band", [12, 30, 60])
def test_sine_at_a_band_centre_lands_in_that_band(name, band):
    profile = PROFILES[name]
    freq = float(mel_frequencies(profile)[band])
    t = torch.arange(profile.sample_rate, dtype=torch.float64) / profile.sample_rate
    # Quiet enough that no band reaches the top of DiffWave's [0, 1] range (where it clips).
    mel = mel_spectrogram((0.05 * torch.sin(2 * math.pi * freq * t)).float(), profile)
    # Every frame away from the edges peaks in that band.
    assert (mel[0, :, 4:-4].argmax(dim=0) == band).all()


def test_sine_band_indices_are_pinned():
    t = torch.arange(22050) / 22050
    tone = torch.sin(2 * math.pi * 1000 * t)
    assert [int(mel_spectrogram(tone, p)[0, :, 40].argmax()) for p in (FASTDIFF, HIFIGAN, DIFFWAVE)] == [25, 26, 24]


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("samples", [5000, 22050, 256 * 30])
def test_frame_count_matches_the_profile(name, samples):
    profile = PROFILES[name]
    mel = mel_spectrogram(torch.zeros(2, samples), profile)
    assert mel.shape == (2, profile.n_mels, profile.num_frames(samples))


def test_diffwave_profile_reproduces_its_torchaudio_preprocessing():
    x = chirp()
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=22050, win_length=1024, hop_length=256, n_fft=1024, f_min=20.0, f_max=11025.0,
        n_mels=80, power=1.0, normalized=True)(x)
    reference = 20 * torch.log10(torch.clamp(reference, min=1e-5)) - 20
    reference = torch.clamp((reference + 100) / 100, 0.0, 1.0)
    torch.testing.assert_close(mel_spectrogram(x, DIFFWAVE)[0], reference, rtol=0, atol=1e-5)


def test_hifigan_profile_matches_a_numpy_stft_with_its_padding():
    x = chirp(0.3).double()
    padded = np.pad(x.numpy(), (384, 384), mode="reflect")
    window = np.hanning(1025)[:-1]  # periodic Hann
    frames = [padded[i * 256:i * 256 + 1024] * window for i in range(1 + (len(padded) - 1024) // 256)]
    magnitude = np.sqrt(np.abs(np.fft.rfft(np.stack(frames), axis=1)) ** 2 + 1e-9).T
    expected = np.log(np.maximum(mel_filterbank(HIFIGAN, torch.float64).numpy() @ magnitude, 1e-5))
    # float32 STFT against float64: agreement to 1e-3 relative in the log domain.
    np.testing.assert_allclose(mel_spectrogram(x.float(), HIFIGAN)[0].numpy(), expected, rtol=1e-3, atol=1e-4)


def test_audioldm_profile_matches_its_fourier_basis_stft():
    # AudioLDM's TacotronSTFT: reflect-pad n_fft/2 each side, conv1d with a periodic-Hann-windowed Fourier
    # basis at the hop, |X| with no epsilon, slaney filterbank 0-8 kHz, ln clamped at 1e-5.
    x = torch.from_numpy(np.interp(np.arange(4800) / 16000, np.arange(6615) / 22050, chirp(0.3).double().numpy()))
    basis = np.fft.fft(np.eye(1024))[:513] * (np.hanning(1025)[:-1])  # rows: frequency bins x window
    kernels = torch.from_numpy(np.concatenate([basis.real, basis.imag]))[:, None]
    padded = torch.nn.functional.pad(x[None, None], (512, 512), mode="reflect")
    out = torch.nn.functional.conv1d(padded, kernels, stride=160)[0]
    magnitude = torch.sqrt(out[:513] ** 2 + out[513:] ** 2)
    expected = torch.log(torch.clamp(mel_filterbank(AUDIOLDM, torch.float64) @ magnitude, min=1e-5))
    ours = mel_spectrogram(x.float(), AUDIOLDM)[0]
    assert ours.shape == expected.shape == (64, 31)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-3, atol=1e-4)


def test_fastdiff_log_mel_values_are_pinned():
    mel = mel_spectrogram(chirp(), FASTDIFF)[0]
    assert mel.shape == (80, 87)
    # Frame 40 is at 0.46 s, where the chirp passes 478 Hz: band 10 is the loudest.
    assert int(mel[:, 40].argmax()) == 10
    assert float(mel[10, 40]) == pytest.approx(0.66891, abs=1e-4)
    assert float(mel.mean()) == pytest.approx(-3.95428, abs=1e-4)
    # Bands far from both tones sit at the clamp, log10(1e-6) = -6.
    assert float(mel.min()) == -6.0 and int((mel == -6.0).sum()) == 1742


def test_filterbank_rows_are_area_normalised_slaney_triangles():
    fb = mel_filterbank(FASTDIFF, torch.float64)
    assert fb.shape == (80, 513)
    hz_per_bin = 22050 / 1024
    # Slaney norm: each triangle has area 1 over its Hz width, i.e. sum * bin width ≈ 1 (edges are sampled).
    areas = fb.sum(1) * hz_per_bin
    assert float(areas[40:].mean()) == pytest.approx(1.0, abs=0.02)
    assert float(fb[:, : int(80 / hz_per_bin)].sum()) == 0.0  # nothing below fmin


def test_bad_shapes_are_reported():
    with pytest.raises(DgraphError, match=r"mel_spectrogram: expected audio of shape \[batch, samples\], got \[1, 2, 3\]"):
        mel_spectrogram(torch.zeros(1, 2, 3), FASTDIFF)
    with pytest.raises(DgraphError, match="mel_spectrogram: 100 samples is too short for profile 'hifigan'"):
        mel_spectrogram(torch.zeros(1, 100), HIFIGAN)
    with pytest.raises(DgraphError, match="mel_spectrogram: 512 samples is too short for profile 'diffwave'"):
        mel_spectrogram(torch.zeros(1, 512), DIFFWAVE)
    assert mel_spectrogram(torch.zeros(1, 100), FASTDIFF).shape == (1, 80, 1)  # zero padding has no minimum
