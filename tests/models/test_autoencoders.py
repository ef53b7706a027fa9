"""AutoencoderKL and VQModel against diffusers: its saved folders load into dgraph with the same numbers,
dgraph's saved folders load back into diffusers, and configs round-trip."""
from __future__ import annotations

import copy
import json

import diffusers
import pytest
import torch
from safetensors.torch import load_file, save_file

from dgraph.errors import ConfigError
from unet_parity import one_thread  # noqa: F401 (autouse: one intra-op thread keeps tiny models fast)
from dgraph.models.autoencoder_kl import AutoencoderKL
from dgraph.models.vq_model import VQModel

KL_CONFIGS = {
    "two-levels": dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                       up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4, latent_channels=4,
                       layers_per_block=1, scaling_factor=0.18215),
    "three-levels-plain": dict(in_channels=1, out_channels=2, block_out_channels=(8, 8, 16),
                               down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                               norm_num_groups=4, latent_channels=3, layers_per_block=2, act_fn="silu",
                               scaling_factor=0.5, use_quant_conv=False, use_post_quant_conv=False,
                               mid_block_add_attention=False),
}
VQ_CONFIGS = {
    "two-levels": dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                       up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4, latent_channels=3,
                       num_vq_embeddings=16, layers_per_block=1),
    "three-levels-wide-codes": dict(block_out_channels=(8, 8, 16), down_block_types=("DownEncoderBlock2D",) * 3,
                                    up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=4, latent_channels=4,
                                    vq_embed_dim=5, num_vq_embeddings=32, layers_per_block=2, scaling_factor=1.0),
}
_BOOKKEEPING = {"_class_name", "_diffusers_version", "_name_or_path"}


def _saved(tmp_path_factory, reference_class, config):
    """A diffusers model with seeded random weights (the codebook spread out), saved by diffusers."""
    torch.manual_seed(0)
    reference = reference_class(**config).eval()
    if isinstance(reference, diffusers.VQModel):  # the default init puts every code near 0: all ties
        with torch.no_grad():
            reference.quantize.embedding.weight.normal_()
    folder = tmp_path_factory.mktemp(reference_class.__name__)
    reference.save_pretrained(folder)
    return reference, folder


@pytest.fixture(scope="module", params=list(KL_CONFIGS))
def kl(request, tmp_path_factory):
    return _saved(tmp_path_factory, diffusers.AutoencoderKL, KL_CONFIGS[request.param])


@pytest.fixture(scope="module", params=list(VQ_CONFIGS))
def vq(request, tmp_path_factory):
    return _saved(tmp_path_factory, diffusers.VQModel, VQ_CONFIGS[request.param])


def _relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.float(), expected.float()
    return ((actual - expected).norm() / expected.norm()).item()


def assert_close_half(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """dgraph's half-precision output within 1e-2 of diffusers' in the same dtype (relative norm: bfloat16
    keeps 8 bits of mantissa, so elementwise the two differ by a few steps of its rounding)."""
    error = _relative(actual, expected)
    assert error < 1e-2, f"relative error to diffusers {error:.4f}"


def _images(channels: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(2, channels, 8, 8, generator=torch.Generator().manual_seed(3)).to(dtype)


@torch.no_grad()
def test_kl_matches_diffusers_float32(kl):
    reference, folder = kl
    model = AutoencoderKL.from_pretrained(folder)
    images = _images(reference.config.in_channels)
    expected = reference.encode(images).latent_dist
    posterior = model.encode(images).latent_dist
    torch.testing.assert_close(posterior.mean, expected.mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(posterior.logvar, expected.logvar, atol=1e-5, rtol=0)
    drawn = posterior.sample(torch.Generator().manual_seed(7))
    torch.testing.assert_close(drawn, expected.sample(torch.Generator().manual_seed(7)), atol=1e-5, rtol=0)
    torch.testing.assert_close(posterior.kl(), expected.kl(), atol=1e-4, rtol=1e-5)
    decoded = model.decode(drawn).sample
    assert decoded.shape == (2, reference.config.out_channels, 8, 8)
    torch.testing.assert_close(decoded, reference.decode(drawn).sample, atol=1e-5, rtol=0)
    torch.testing.assert_close(model(images).sample, reference(images).sample, atol=1e-5, rtol=0)
    assert model.config.scaling_factor == reference.config.scaling_factor


# float16 convolutions are slow on the CPU: that dtype runs with -m slow.
@pytest.mark.parametrize("dtype", [torch.bfloat16, pytest.param(torch.float16, marks=pytest.mark.slow)])
@torch.no_grad()
def test_kl_matches_diffusers_half(kl, dtype):
    _, folder = kl
    _, folder = kl
    reference = diffusers.AutoencoderKL.from_pretrained(folder, torch_dtype=dtype).eval()
    model = AutoencoderKL.from_pretrained(folder, torch_dtype=dtype)
    assert model.dtype == dtype
    images = _images(reference.config.in_channels, dtype)
    mean = model.encode(images).latent_dist.mean
    assert mean.dtype == dtype
    assert_close_half(mean, reference.encode(images).latent_dist.mean)
    assert_close_half(model.decode(mean).sample, reference.decode(mean).sample)


@torch.no_grad()
def test_vq_matches_diffusers_float32(vq):
    reference, folder = vq
    model = VQModel.from_pretrained(folder)
    images = _images(reference.config.in_channels)
    latents = model.encode(images).latents
    torch.testing.assert_close(latents, reference.encode(images).latents, atol=1e-5, rtol=0)
    quantized, loss, indices = model.quantize(latents)
    ref_quantized, ref_loss, (_, _, ref_indices) = reference.quantize(latents)
    assert torch.equal(indices.flatten(), ref_indices.flatten())
    assert len(indices.unique()) > 1  # the test means something only if several codes are in use
    torch.testing.assert_close(quantized, ref_quantized, atol=1e-6, rtol=0)
    torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(model.decode(latents).sample, reference.decode(latents).sample, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.decode(latents, force_not_quantize=True).sample,
                               reference.decode(latents, force_not_quantize=True).sample, atol=1e-5, rtol=0)
    torch.testing.assert_close(model(images).sample, reference(images).sample, atol=1e-5, rtol=0)


# float16 convolutions are slow on the CPU: that dtype runs with -m slow.
@pytest.mark.parametrize("dtype", [torch.bfloat16, pytest.param(torch.float16, marks=pytest.mark.slow)])
@torch.no_grad()
def test_vq_matches_diffusers_half(vq, dtype):
    reference_fp32, folder = vq
    reference = diffusers.VQModel.from_pretrained(folder, torch_dtype=dtype).eval()
    model = VQModel.from_pretrained(folder, torch_dtype=dtype)
    images = _images(reference.config.in_channels, dtype)
    latents = model.encode(images).latents
    assert_close_half(latents, reference.encode(images).latents)
    decoded = model.decode(latents, force_not_quantize=True).sample
    expected = reference.decode(latents, force_not_quantize=True).sample
    assert_close_half(decoded, expected)
    # diffusers cannot quantise half precision on the CPU (cdist has no kernel); dgraph measures distances
    # in float32, so it picks the codes diffusers' float32 quantizer picks given the same rounded codebook.
    _, _, indices = model.quantize(latents)
    quantizer = copy.deepcopy(reference_fp32.quantize)
    quantizer.embedding.weight.copy_(model.quantize.embedding.weight.float())
    _, _, (_, _, ref_indices) = quantizer(latents.float())
    assert torch.equal(indices.flatten(), ref_indices.flatten())


def _check_dgraph_save(dgraph_class, reference, folder, tmp_path):
    model = dgraph_class.from_pretrained(folder)
    model.save_pretrained(tmp_path / "saved")
    written = json.loads((tmp_path / "saved" / "config.json").read_text())
    original = json.loads((folder / "config.json").read_text())
    assert written["_class_name"] == type(reference).__name__
    assert {k: v for k, v in written.items() if k not in _BOOKKEEPING} == \
           {k: v for k, v in original.items() if k not in _BOOKKEEPING}
    back = type(reference).from_pretrained(tmp_path / "saved").eval()
    images = _images(reference.config.in_channels)
    assert torch.equal(back(images).sample, reference(images).sample)
    again = dgraph_class.from_pretrained(tmp_path / "saved")
    assert dict(again.config) == dict(model.config)


@torch.no_grad()
def test_kl_saved_by_dgraph_loads_into_diffusers(kl, tmp_path):
    _check_dgraph_save(AutoencoderKL, *kl, tmp_path)


@torch.no_grad()
def test_vq_saved_by_dgraph_loads_into_diffusers(vq, tmp_path):
    _check_dgraph_save(VQModel, *vq, tmp_path)


@torch.no_grad()
def test_legacy_attention_names_load(tmp_path_factory, tmp_path):
    reference, folder = _saved(tmp_path_factory, diffusers.AutoencoderKL, KL_CONFIGS["two-levels"])
    state = load_file(folder / "diffusion_pytorch_model.safetensors")
    old_names = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    legacy = {}
    for key, tensor in state.items():
        for new, old in old_names.items():
            key = key.replace(f".attentions.0.{new}.", f".attentions.0.{old}.")
        legacy[key] = tensor
    assert "encoder.mid_block.attentions.0.proj_attn.weight" in legacy
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    save_file(legacy, tmp_path / "diffusion_pytorch_model.safetensors")
    model = AutoencoderKL.from_pretrained(tmp_path)
    images = _images(reference.config.in_channels)
    torch.testing.assert_close(model(images).sample, reference(images).sample, atol=1e-5, rtol=0)


def test_config_errors():
    with pytest.raises(ConfigError) as error:
        AutoencoderKL(down_block_types=("AttnDownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",))
    assert str(error.value) == ("AutoencoderKL: down_block_types ['AttnDownEncoderBlock2D'] not supported; "
                                "use DownEncoderBlock2D")
    with pytest.raises(ConfigError) as error:
        VQModel(block_out_channels=(32, 64))
    assert str(error.value) == ("VQModel: down_block_types has 1 entries but block_out_channels has 2; "
                                "give one block type per resolution")
    with pytest.raises(ConfigError) as error:
        VQModel(norm_type="spatial")
    assert str(error.value) == "VQModel: norm_type 'spatial' is not supported; only 'group' (the LDM VQ-VAEs)"


# The published configurations, with seeded random weights (the Hub is not reachable from the tests).
PUBLISHED = {
    "ldm-text2im-large-256/vqvae (KL, as Stable Diffusion 1.x)": (diffusers.AutoencoderKL, AutoencoderKL, dict(
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, sample_size=256)),
    "ldm-celebahq-256/vqvae (VQ)": (diffusers.VQModel, VQModel, dict(
        block_out_channels=(128, 256, 512), down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=3, layers_per_block=2, num_vq_embeddings=8192,
        sample_size=256)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PUBLISHED))
@torch.no_grad()
def test_published_configurations_float32(name, tmp_path_factory):
    reference_class, dgraph_class, config = PUBLISHED[name]
    reference, folder = _saved(tmp_path_factory, reference_class, config)
    model = dgraph_class.from_pretrained(folder)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model(images).sample, reference(images).sample, atol=1e-5, rtol=0)
