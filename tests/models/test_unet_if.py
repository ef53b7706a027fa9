"""UNet2DConditionModel with the parts of DeepFloyd IF's stages against diffusers: resnet-resampling blocks,
added key/value attention, pooled text in the time embedding, scale-shift resnets, noise-level class labels."""
from __future__ import annotations

import diffusers
import pytest
import torch

from dgraph.errors import ConfigError
from dgraph.models import UNet2DConditionModel

from unet_parity import assert_parity, build_reference, check_parity, max_difference, one_thread  # noqa: F401

# Stage I layout, tiny: 3 -> 6 channels (noise and variance), GELU everywhere, group-normed text.
STAGE_I_LIKE = dict(
    sample_size=8, in_channels=3, out_channels=6, block_out_channels=(8, 16, 24), layers_per_block=1,
    down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D"),
    up_block_types=("SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
    mid_block_type="UNetMidBlock2DSimpleCrossAttn", norm_num_groups=4, attention_head_dim=4, cross_attention_dim=32,
    encoder_hid_dim=20, encoder_hid_dim_type="text_proj", addition_embed_type="text",
    addition_embed_type_num_heads=2, cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift",
    act_fn="gelu", time_embedding_act_fn="gelu", mid_block_scale_factor=1.414)
# Stage II layout: the sample concatenated with the upscaled image, the noise level as class labels, per-block
# layer counts and head widths, a wider time embedding, only-cross-attention blocks, no text norm.
STAGE_II_LIKE = dict(
    STAGE_I_LIKE, in_channels=6, class_embed_type="timestep", layers_per_block=[1, 2, 1],
    attention_head_dim=[None, 4, 8], time_embedding_dim=40, resnet_skip_time_act=True, resnet_out_scale_factor=1.5,
    only_cross_attention=[False, True, False], mid_block_only_cross_attention=True, cross_attention_norm=None,
    encoder_hid_dim=None, encoder_hid_dim_type=None, time_embedding_act_fn=None, act_fn="silu")
# Both ends without attention (resnet resampling only), layer-normed text of the query's width.
RESNET_ONLY = dict(
    STAGE_I_LIKE, block_out_channels=(16, 16), down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
    up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"), cross_attention_dim=16,
    encoder_hid_dim=None, encoder_hid_dim_type=None, cross_attention_norm="layer_norm", addition_embed_type=None)


def inputs(config: dict, seed: int = 3, mask: bool = True) -> dict:
    generator = torch.Generator().manual_seed(seed)
    width = config.get("encoder_hid_dim") or config["cross_attention_dim"]
    values = dict(sample=torch.randn(2, config["in_channels"], 8, 8, generator=generator), timestep=torch.tensor([10, 700]),
                  encoder_hidden_states=torch.randn(2, 5, width, generator=generator))
    if mask:
        values["encoder_attention_mask"] = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    if config.get("class_embed_type") == "timestep":
        values["class_labels"] = torch.tensor([250, 20])
    return values


# diffusers cannot mask only-cross-attention blocks (it pads the mask for image keys that are not there).
@pytest.mark.parametrize("config, mask", [(STAGE_I_LIKE, True), (STAGE_II_LIKE, False), (RESNET_ONLY, True)],
                         ids=["stage-i", "stage-ii", "resnet"])
def test_parity_with_diffusers(config, mask, tmp_path):
    assert_parity(check_parity(diffusers.UNet2DConditionModel, UNet2DConditionModel, config,
                               inputs(config, mask=mask), tmp_path))


def test_without_a_mask_as_the_if_pipelines_call_it(tmp_path):
    reference = build_reference(diffusers.UNet2DConditionModel, STAGE_I_LIKE)
    reference.save_pretrained(tmp_path)
    ours = UNet2DConditionModel.from_pretrained(tmp_path)
    values = inputs(STAGE_I_LIKE, seed=5, mask=False)
    with torch.no_grad():
        assert max_difference(ours(**values).sample, reference(**values).sample) < 1e-5


# A stage-I layout at full width (about 1.9 B parameters): the state dict has diffusers' keys and shapes.
IF_I_WIDE = dict(
    sample_size=64, in_channels=3, out_channels=6, block_out_channels=[448, 896, 1344, 1792], layers_per_block=3,
    down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D",
                      "SimpleCrossAttnDownBlock2D"],
    up_block_types=["SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D",
                    "ResnetUpsampleBlock2D"],
    mid_block_type="UNetMidBlock2DSimpleCrossAttn", attention_head_dim=64, cross_attention_dim=4096,
    encoder_hid_dim=4096, addition_embed_type="text", addition_embed_type_num_heads=64,
    cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift", act_fn="gelu",
    time_embedding_act_fn="gelu", norm_num_groups=32, norm_eps=1e-5)


def test_full_width_stage_i_layout_has_diffusers_keys_and_shapes():
    with torch.device("meta"):
        theirs = {k: tuple(v.shape) for k, v in diffusers.UNet2DConditionModel(**IF_I_WIDE).state_dict().items()}
        ours = {k: tuple(v.shape) for k, v in UNet2DConditionModel(**IF_I_WIDE).state_dict().items()}
    assert ours == theirs
    assert sum(torch.Size(s).numel() for s in ours.values()) > 1_000_000_000


@pytest.mark.parametrize("key, value, message", [
    ("addition_embed_type", "image", "addition_embed_type='image' is not supported (only null, 'text' or 'text_time')"),
    ("cross_attention_norm", "batch_norm", "cross_attention_norm='batch_norm' is not supported; use null, "
                                           "'group_norm' or 'layer_norm'"),
])
def test_unsupported_values_are_refused_by_name(key, value, message):
    with pytest.raises(ConfigError) as caught:
        UNet2DConditionModel(**dict(STAGE_I_LIKE, **{key: value}))
    assert str(caught.value) == f"UNet2DConditionModel: {message}"
