"""Every model returns diffusers' output shapes and loads with diffusers' from_pretrained arguments."""
from __future__ import annotations

import diffusers
import pytest
import torch

from dgraph.errors import ConfigError
from dgraph.models import (AutoencoderKL, ModelOutput, UNet2DConditionModel, UNet2DModel, UNet3DConditionModel,
                           VQModel)
from unet_parity import build_reference, one_thread  # noqa: F401 (autouse fixture)

UNET_2D = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
               down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
               norm_num_groups=4, attention_head_dim=4)
UNET_COND = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                 norm_num_groups=4, cross_attention_dim=12, attention_head_dim=2)
UNET_3D = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
               down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
               norm_num_groups=4, cross_attention_dim=12, attention_head_dim=2)
KL = dict(in_channels=3, out_channels=3, block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
          up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=2, norm_num_groups=4, layers_per_block=1)
VQ = dict(KL, num_vq_embeddings=16, vq_embed_dim=3)


def _noise(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _saved(diffusers_class, config, tmp_path, **save):
    reference = build_reference(diffusers_class, config)
    reference.save_pretrained(tmp_path, **save)
    return reference


def _assert_same_output(ours, theirs):
    """Same fields in the same order, each tensor within 1e-5 (and the same for the tuple form)."""
    assert isinstance(ours, ModelOutput)
    assert list(ours.keys()) == list(theirs.keys())
    for key in theirs.keys():
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-5, rtol=0)


CASES = {
    "unet2d": (diffusers.UNet2DModel, UNet2DModel, UNET_2D, lambda: ((_noise(2, 3, 8, 8), 10), {})),
    "unet2d-cond": (diffusers.UNet2DConditionModel, UNet2DConditionModel, UNET_COND,
                    lambda: ((_noise(2, 4, 8, 8), 10), {"encoder_hidden_states": _noise(2, 5, 12, seed=1)})),
    "unet3d-cond": (diffusers.UNet3DConditionModel, UNet3DConditionModel, UNET_3D,
                    lambda: ((_noise(1, 4, 2, 8, 8), 10), {"encoder_hidden_states": _noise(1, 5, 12, seed=1)})),
    "kl": (diffusers.AutoencoderKL, AutoencoderKL, KL, lambda: ((_noise(2, 3, 8, 8),), {})),
    "vq": (diffusers.VQModel, VQModel, VQ, lambda: ((_noise(2, 3, 8, 8),), {})),
}


@pytest.mark.parametrize("case", list(CASES))
@torch.no_grad()
def test_forward_returns_diffusers_outputs_and_tuples(case, tmp_path):
    diffusers_class, our_class, config, make_inputs = CASES[case]
    reference = _saved(diffusers_class, config, tmp_path)
    model = our_class.from_pretrained(tmp_path)
    args, kwargs = make_inputs()
    _assert_same_output(model(*args, **kwargs), reference(*args, **kwargs))
    ours, theirs = model(*args, **kwargs, return_dict=False), reference(*args, **kwargs, return_dict=False)
    assert isinstance(ours, tuple) and len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs):
        torch.testing.assert_close(mine, expected, atol=1e-5, rtol=0)
    assert torch.equal(model(*args, **kwargs)[0], ours[0])


@torch.no_grad()
def test_autoencoder_encode_and_decode_return_diffusers_outputs(tmp_path):
    reference = _saved(diffusers.AutoencoderKL, KL, tmp_path / "kl")
    model = AutoencoderKL.from_pretrained(tmp_path / "kl")
    images = _noise(2, 3, 8, 8)
    posterior, expected = model.encode(images).latent_dist, reference.encode(images).latent_dist
    torch.testing.assert_close(posterior.mean, expected.mean, atol=1e-5, rtol=0)
    (mine_tuple,), (their_tuple,) = model.encode(images, return_dict=False), reference.encode(images, return_dict=False)
    torch.testing.assert_close(mine_tuple.mean, their_tuple.mean, atol=1e-5, rtol=0)
    _assert_same_output(model.decode(posterior.mean), reference.decode(expected.mean))

    reference = _saved(diffusers.VQModel, VQ, tmp_path / "vq")
    model = VQModel.from_pretrained(tmp_path / "vq")
    _assert_same_output(model.encode(images), reference.encode(images))
    latents = reference.encode(images).latents
    _assert_same_output(model.decode(latents), reference.decode(latents))
    _assert_same_output(model.decode(latents, force_not_quantize=True),
                        reference.decode(latents, force_not_quantize=True))


def test_a_missing_field_says_which_fields_there_are():
    with pytest.raises(AttributeError) as error:
        ModelOutput(sample=torch.zeros(1)).latent_dist
    assert str(error.value) == "this model output has no field 'latent_dist'; its fields: sample"


def test_from_pretrained_takes_diffusers_arguments(tmp_path):
    # The arguments of diffusers' from_pretrained: subfolder, variant, torch_dtype, low_cpu_mem_usage,
    # output_loading_info (same report keys as diffusers').
    reference = build_reference(diffusers.UNet2DModel, UNET_2D)
    reference.save_pretrained(tmp_path / "unet", variant="fp16")
    _, their_info = diffusers.UNet2DModel.from_pretrained(tmp_path, subfolder="unet", variant="fp16",
                                                          torch_dtype=torch.float16, low_cpu_mem_usage=False,
                                                          output_loading_info=True)
    model, info = UNet2DModel.from_pretrained(tmp_path, subfolder="unet", variant="fp16", torch_dtype=torch.float16,
                                              low_cpu_mem_usage=False, output_loading_info=True)
    assert model.dtype == torch.float16
    assert sorted(info) == sorted(their_info) and all(value == [] for value in info.values())
    for key, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], tensor.half()), key


def test_score_sde_skip_blocks_are_refused_by_name():
    # NCSN++ / score-SDE UNets (google/ncsnpp-*) use skip blocks and Fourier time features.
    config = dict(UNET_2D, down_block_types=("SkipDownBlock2D", "AttnSkipDownBlock2D"),
                  up_block_types=("AttnSkipUpBlock2D", "SkipUpBlock2D"))
    with pytest.raises(ConfigError) as error:
        UNet2DModel(**config)
    assert str(error.value) == ("UNet2DModel: down_block_types 'SkipDownBlock2D', 'AttnSkipDownBlock2D' not supported; "
                                "supported: DownBlock2D, AttnDownBlock2D, ResnetDownsampleBlock2D")

