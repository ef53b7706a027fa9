"""UNet3DConditionModel against diffusers: tiny text-to-video layouts, both directions."""
from __future__ import annotations

import diffusers
import pytest
import torch

from dgraph.errors import ConfigError
from dgraph.models import UNet3DConditionModel

from unet_parity import assert_parity, check_parity, one_thread  # noqa: F401 (autouse fixture)

VIDEO_SMALL = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                   down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                   up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), norm_num_groups=4, attention_head_dim=4,
                   cross_attention_dim=12)
VIDEO_DEEPER = dict(VIDEO_SMALL, layers_per_block=2, down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D"),
                    up_block_types=("CrossAttnUpBlock3D", "CrossAttnUpBlock3D"), time_cond_proj_dim=6,
                    mid_block_scale_factor=1.5, norm_eps=1e-6)
TEXT_TO_VIDEO_MS = dict(sample_size=32, in_channels=4, out_channels=4, block_out_channels=[320, 640, 1280, 1280],
                        layers_per_block=2, attention_head_dim=64, cross_attention_dim=1024, norm_num_groups=32,
                        norm_eps=1e-5, act_fn="silu", downsample_padding=1, mid_block_scale_factor=1,
                        down_block_types=["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D",
                                          "DownBlock3D"],
                        up_block_types=["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"])


def inputs(config: dict, frames: int = 2, height: int = 8, width: int = 8, seed: int = 3) -> dict:
    generator = torch.Generator().manual_seed(seed)
    values = dict(sample=torch.randn(2, config["in_channels"], frames, height, width, generator=generator),
                  timestep=torch.tensor([10, 600]),
                  encoder_hidden_states=torch.randn(2, 5, config["cross_attention_dim"], generator=generator))
    if config.get("time_cond_proj_dim"):
        values["timestep_cond"] = torch.randn(2, config["time_cond_proj_dim"], generator=generator)
    return values


@pytest.mark.parametrize("config", [VIDEO_SMALL, VIDEO_DEEPER], ids=["small", "deeper"])
def test_parity_with_diffusers(config, tmp_path):
    assert_parity(check_parity(diffusers.UNet3DConditionModel, UNet3DConditionModel, config, inputs(config),
                               tmp_path))


def test_odd_frame_and_pixel_counts(tmp_path):
    from unet_parity import build_reference, max_difference
    reference = build_reference(diffusers.UNet3DConditionModel, VIDEO_SMALL)
    reference.save_pretrained(tmp_path)
    ours = UNet3DConditionModel.from_pretrained(tmp_path)
    values = inputs(VIDEO_SMALL, frames=1, height=6, width=10)
    with torch.no_grad():
        expected = reference(**values).sample
        assert expected.shape == (2, 4, 1, 6, 10)
        assert max_difference(ours(**values).sample, expected) < 1e-5


def test_published_config_has_diffusers_keys_and_shapes():
    with torch.device("meta"):
        theirs = {k: tuple(v.shape) for k, v in diffusers.UNet3DConditionModel(**TEXT_TO_VIDEO_MS).state_dict().items()}
        ours = {k: tuple(v.shape) for k, v in UNet3DConditionModel(**TEXT_TO_VIDEO_MS).state_dict().items()}
    assert ours == theirs
    assert sum(torch.Size(s).numel() for s in ours.values()) > 1_000_000_000


def test_per_block_head_widths_are_refused_with_the_reason():
    with pytest.raises(ConfigError) as error:
        UNet3DConditionModel(**dict(VIDEO_SMALL, attention_head_dim=[4, 8]))
    assert str(error.value) == ("UNet3DConditionModel: attention_head_dim must be one int (the input temporal "
                                "transformer uses it)")
