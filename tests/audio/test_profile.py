import dataclasses

import pytest

from dgraph.audio import DIFFWAVE, FASTDIFF, HIFIGAN, PROFILES, MelProfile, get_profile
from dgraph.errors import ConfigError


def test_named_profiles_carry_the_published_front_ends():
    assert set(PROFILES) == {"fastdiff", "hifigan", "diffwave", "audioldm"}
    assert (FASTDIFF.sample_rate, FASTDIFF.n_fft, FASTDIFF.hop_length, FASTDIFF.win_length, FASTDIFF.n_mels) == \
        (22050, 1024, 256, 1024, 80)
    assert (FASTDIFF.fmin, FASTDIFF.fmax, FASTDIFF.log, FASTDIFF.clamp, FASTDIFF.pad_mode) == (80.0, 7600.0, "log10", 1e-6, "constant")
    assert (HIFIGAN.fmin, HIFIGAN.fmax, HIFIGAN.log, HIFIGAN.clamp) == (0.0, 8000.0, "ln", 1e-5)
    assert (HIFIGAN.center, HIFIGAN.pad_mode, HIFIGAN.padding, HIFIGAN.magnitude_eps) == (False, "reflect", 384, 1e-9)
    assert (DIFFWAVE.log, DIFFWAVE.normalization, DIFFWAVE.ref_db, DIFFWAVE.min_db) == ("db", "db_unit", 20.0, -100.0)
    assert (DIFFWAVE.mel_scale, DIFFWAVE.mel_norm, DIFFWAVE.normalized, DIFFWAVE.fmin, DIFFWAVE.f_max) == \
        ("htk", None, True, 20.0, 11025.0)


def test_profile_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FASTDIFF.n_mels = 40


def test_compatibility_ignores_the_name_and_lists_differences():
    renamed = dataclasses.replace(FASTDIFF, name="my-fastdiff")
    assert FASTDIFF.compatible_with(renamed)
    assert not FASTDIFF.compatible_with(HIFIGAN)
    assert FASTDIFF.differences(dataclasses.replace(FASTDIFF, fmax=8000.0, clamp=1e-5)) == \
        ["fmax: 7600.0 != 8000.0", "clamp: 1e-06 != 1e-05"]


def test_frame_counts():
    # Centred STFT: 1 + samples // hop. HiFi-GAN's padded, uncentred STFT: samples // hop.
    assert FASTDIFF.num_frames(22050) == 87 and DIFFWAVE.num_frames(22050) == 87
    assert HIFIGAN.num_frames(22050) == 86 and HIFIGAN.num_frames(256 * 40) == 40
    assert HIFIGAN.frame_offset == 128 and FASTDIFF.frame_offset == 0


def test_dict_round_trip_and_errors():
    assert MelProfile.from_dict(HIFIGAN.to_dict()) == HIFIGAN
    with pytest.raises(ConfigError, match=r"mel profile: unknown keys \['hop'\]"):
        MelProfile.from_dict({**HIFIGAN.to_dict(), "hop": 256})
    with pytest.raises(ConfigError, match=r"mel profile 'bad': win_length must be in \(0, n_fft=512\], got 1024"):
        MelProfile(name="bad", sample_rate=16000, n_fft=512, hop_length=128, win_length=1024)
    with pytest.raises(ConfigError, match="unknown mel profile 'wavegrad'; known profiles: audioldm, diffwave, fastdiff, hifigan"):
        get_profile("wavegrad")
