import os

import numpy as np
import pytest
import soundfile as sf
import torch

from dgraph.audio import load_audio, resample, save_audio, to_mono
from dgraph.errors import DgraphError


def _pcm16_exact(channels: int, samples: int, seed: int = 0) -> torch.Tensor:
    """Random audio made only of values 16-bit PCM represents exactly (k / 32768)."""
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randint(-32768, 32768, (channels, samples), generator=generator)
    return codes.float() / 32768


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_16_bit_round_trip_is_bit_exact(tmp_path, suffix):
    audio = _pcm16_exact(2, 4000)
    path = save_audio(tmp_path / f"a{suffix}", audio, 22050)
    loaded, rate = load_audio(path)
    assert rate == 22050 and loaded.dtype == torch.float32
    assert torch.equal(loaded, audio)
    raw, _ = sf.read(str(path), dtype="int16", always_2d=True)
    assert np.array_equal(raw.T, (audio * 32768).round().to(torch.int16).numpy())
    # Writing what was read gives the same bytes again.
    again = save_audio(tmp_path / f"b{suffix}", loaded, rate)
    assert again.read_bytes() == path.read_bytes()


def test_float_wav_round_trip_is_exact(tmp_path):
    audio = torch.randn(1, 1000, generator=torch.Generator().manual_seed(3)) * 0.3
    loaded, _ = load_audio(save_audio(tmp_path / "f.wav", audio, 16000, subtype="float"))
    assert torch.equal(loaded, audio)


def test_ogg_vorbis_is_read(tmp_path):
    t = torch.arange(16000) / 16000
    tone = 0.5 * torch.sin(2 * torch.pi * 440 * t)
    sf.write(str(tmp_path / "t.ogg"), tone.numpy(), 16000, format="OGG", subtype="VORBIS")
    loaded, rate = load_audio(tmp_path / "t.ogg")
    assert rate == 16000 and loaded.shape == (1, 16000)
    assert int(torch.fft.rfft(loaded[0]).abs().argmax()) == 440  # lossy, but the tone survives


def test_pcm_clips_out_of_range_samples(tmp_path):
    loaded, _ = load_audio(save_audio(tmp_path / "c.wav", torch.tensor([[2.0, -2.0, 0.5]]), 8000))
    assert loaded.tolist() == [[32767 / 32768, -1.0, 0.5]]


def test_saving_is_atomic_and_leaves_no_temporary_files(tmp_path):
    save_audio(tmp_path / "out" / "x.wav", torch.zeros(100), 8000)
    assert sorted(os.listdir(tmp_path / "out")) == ["x.wav"]


def test_mono_and_resampling(tmp_path):
    stereo = torch.stack([torch.full((22050,), 0.25), torch.full((22050,), -0.75)])
    path = save_audio(tmp_path / "s.wav", stereo, 22050)
    mono, rate = load_audio(path, sample_rate=16000, mono=True)
    assert rate == 16000 and mono.shape == (1, 16000)
    # A constant resamples to the same constant away from the edges.
    assert float(mono[0, 1000:-1000].mean()) == pytest.approx(-0.25, abs=5e-4)  # the sinc filter's DC gain is 1 to 5e-4
    assert to_mono(stereo).shape == (1, 22050)
    t = torch.arange(48000) / 48000
    tone = torch.sin(2 * torch.pi * 440 * t)
    down = resample(tone, 48000, 22050)
    assert down.shape == (22050,)
    spectrum = torch.fft.rfft(down).abs()
    assert int(spectrum.argmax()) == 440  # 1 s of audio: bin k is k Hz


def test_errors_say_what_and_where(tmp_path):
    with pytest.raises(DgraphError, match=r"x\.mp3: cannot write '\.mp3'; use one of \.wav, \.flac"):
        save_audio(tmp_path / "x.mp3", torch.zeros(10), 8000)
    with pytest.raises(DgraphError, match="flac stores integer samples only"):
        save_audio(tmp_path / "x.flac", torch.zeros(10), 8000, subtype="float")
    with pytest.raises(DgraphError, match="unknown sample format 'pcm8'; use one of pcm16, pcm24, float"):
        save_audio(tmp_path / "x.wav", torch.zeros(10), 8000, subtype="pcm8")
    with pytest.raises(DgraphError, match=r"missing\.wav: no such audio file"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(DgraphError, match=r"junk\.wav: cannot read audio .*supported: wav, flac, ogg"):
        load_audio(tmp_path / "junk.wav")


def test_shipped_speech_sample():
    from pathlib import Path
    path = Path(__file__).parents[2] / "workflows" / "assets" / "speech.wav"
    audio, rate = load_audio(path)
    assert rate == 22050 and audio.shape == (1, 47628)
    assert float(audio.abs().max()) == pytest.approx(0.9, abs=1e-4)
