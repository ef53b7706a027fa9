"""The vocoder networks: sample counts, pinned outputs on fixed weights, HiFi-GAN against transformers."""
import pytest
import torch

from dgraph.audio import DIFFWAVE, FASTDIFF, HIFIGAN, MelProfile
from dgraph.errors import ConfigError
from dgraph.models import DiffWaveModel, FastDiffModel, HiFiGANGenerator
from dgraph.models.vocoders import HIFIGAN_CONFIGS

from audio_helpers import fill_weights

# Output values below were produced by these classes after checking them, on other random weights, against
# the official implementations (Rongjiehuang/FastDiff, lmnt-com/diffwave, jik876/hifi-gan): equal to 3e-7.


def tiny_fastdiff() -> FastDiffModel:
    return fill_weights(FastDiffModel(inner_channels=4, cond_channels=8, upsample_ratios=[4, 2], lvc_layers_each_block=2,
                                      kpnet_hidden_channels=8, diffusion_step_embed_dim_in=16,
                                      diffusion_step_embed_dim_mid=16, diffusion_step_embed_dim_out=16))


def tiny_diffwave() -> DiffWaveModel:
    return fill_weights(DiffWaveModel(n_mels=8, residual_layers=4, residual_channels=6, dilation_cycle_length=2))


def tiny_hifigan() -> HiFiGANGenerator:
    return fill_weights(HiFiGANGenerator(resblock="2", upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4],
                                         upsample_initial_channel=16, resblock_kernel_sizes=[3, 5],
                                         resblock_dilation_sizes=[[1, 2], [2, 6]], num_mels=8))


@torch.no_grad()
def test_pinned_outputs_on_fixed_weights():
    g = torch.Generator().manual_seed(7)
    x, mel = torch.randn(2, 1, 48, generator=g), torch.randn(2, 8, 6, generator=g)
    out = tiny_fastdiff()(x, mel, torch.tensor([3.0, 512.25]))
    assert out.shape == (2, 1, 48)
    assert float(out.sum()) == pytest.approx(43.570358, abs=1e-3)
    torch.testing.assert_close(out[0, 0, :5], torch.tensor([0.633716, -1.282052, -1.083893, 3.202817, 2.343034]),
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(out[1, 0, -3:], torch.tensor([0.967363, 3.147756, -1.582797]), rtol=0, atol=1e-4)

    x, mel = torch.randn(2, 512, generator=g), torch.randn(2, 8, 2, generator=g)
    out = tiny_diffwave()(x, torch.tensor([4.6, 31.0]), mel)  # a fractional step interpolates the embedding
    assert out.shape == (2, 1, 512)
    assert float(out.sum()) == pytest.approx(342.027466, abs=1e-3)
    torch.testing.assert_close(out[0, 0, :5], torch.tensor([0.302574, 0.310992, 0.344165, 0.304150, 0.301278]),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1, 0, -3:], torch.tensor([0.352645, 0.376265, 0.349480]), rtol=0, atol=1e-5)

    out = tiny_hifigan()(torch.randn(2, 8, 5, generator=g))
    assert out.shape == (2, 1, 40)
    assert float(out.sum()) == pytest.approx(-4.904389, abs=1e-4)
    torch.testing.assert_close(out[0, 0, :5], torch.tensor([-0.078123, -0.075825, -0.078391, -0.076792, -0.080145]),
                               rtol=0, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("resblock_dilations", [[[1, 3, 5], [1, 3, 5]], [[1, 2], [3, 4]]])
def test_hifigan_matches_transformers_speecht5_hifigan(resblock_dilations):
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    config = dict(upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8], upsample_initial_channel=32,
                  resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=resblock_dilations)
    ours = fill_weights(HiFiGANGenerator(resblock="1", num_mels=12, **config))
    reference = SpeechT5HifiGan(SpeechT5HifiGanConfig(model_in_dim=12, normalize_before=False, **config)).eval()
    state = {k.replace("ups.", "upsampler."): v for k, v in ours.state_dict().items()}
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert set(missing) == {"mean", "scale"} and not unexpected
    mel = torch.randn(2, 12, 9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours(mel)[:, 0], reference(mel.transpose(1, 2)), rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_published_configurations_give_frames_times_hop_samples():
    frames = 3
    # FastDiff runs for real (its einsum is slow to trace on the meta device); the others only infer
    # shapes on the meta device: no memory, no random init, no arithmetic.
    fastdiff = FastDiffModel()
    assert fastdiff.hop_length == 256 == FASTDIFF.hop_length
    out = fastdiff(torch.randn(1, 1, frames * 256), torch.randn(1, 80, frames), 10.0)
    assert out.shape == (1, 1, frames * 256)
    assert fastdiff.num_parameters() == 15_238_769
    with torch.device("meta"):
        diffwave = DiffWaveModel()
        assert diffwave.hop_length == 256 == DIFFWAVE.hop_length
        out = diffwave(torch.randn(1, frames * 256), torch.tensor([3]), torch.randn(1, 80, frames))
        assert out.shape == (1, 1, frames * 256)
        assert diffwave.num_parameters() == 2_619_971
        for name, count in zip(HIFIGAN_CONFIGS, (13_926_017, 925_985, 1_462_273)):
            generator = HiFiGANGenerator.from_preset(name)
            assert generator.hop_length == 256 == HIFIGAN.hop_length
            assert generator(torch.randn(1, 80, frames)).shape == (1, 1, frames * 256)
            assert generator.num_parameters() == count


def test_each_vocoder_names_the_mel_profile_it_was_trained_on(tmp_path):
    assert FastDiffModel(inner_channels=4).mel_profile == FASTDIFF
    assert tiny_diffwave().mel_profile == DIFFWAVE
    custom = MelProfile(name="custom", sample_rate=16000, n_fft=512, hop_length=8, win_length=512, n_mels=8)
    model = HiFiGANGenerator(resblock="2", upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=16,
                             resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 2]], num_mels=8,
                             mel_profile=custom.to_dict())
    model.save_pretrained(tmp_path)
    loaded = HiFiGANGenerator.from_pretrained(tmp_path)
    assert loaded.mel_profile == custom and not loaded.mel_profile.compatible_with(HIFIGAN)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_presets():
    with pytest.raises(ConfigError, match="unknown HiFi-GAN configuration 'v4'; choose one of v1, v2, v3"):
        HiFiGANGenerator.from_preset("v4")
