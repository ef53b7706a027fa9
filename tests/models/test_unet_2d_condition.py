"""UNet2DConditionModel against diffusers: LDM text2im / Stable Diffusion 1.x and 2.x layouts, made tiny."""
from __future__ import annotations

import diffusers
import pytest
import torch

from dgraph.errors import ConfigError
from dgraph.models import UNet2DConditionModel

from unet_parity import assert_parity, check_parity, max_difference, one_thread  # noqa: F401 (one_thread: autouse)

# SD 1.x / LDM text2im layout: conv projections, one head count for all blocks.
SD1_LIKE = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=4, attention_head_dim=2,
                cross_attention_dim=12)
# SD 2.x layout: per-block heads, linear projections, upcast flag, plus deeper transformer stacks,
# per-block layer counts and an only-cross-attention block.
SD2_LIKE = dict(SD1_LIKE, attention_head_dim=[2, 4], use_linear_projection=True, upcast_attention=True,
                layers_per_block=[1, 2], transformer_layers_per_block=[1, 2], flip_sin_to_cos=False, freq_shift=1,
                only_cross_attention=[True, False], down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
# SDXL layout: a first block without attention, linear projections, deeper transformer stacks further down,
# and the pooled text with six size/crop ids added to the time embedding ("text_time").
SDXL_LIKE = dict(SD1_LIKE, block_out_channels=(8, 16, 16), attention_head_dim=[2, 2, 4], use_linear_projection=True,
                 transformer_layers_per_block=[1, 1, 2], layers_per_block=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 addition_embed_type="text_time", addition_time_embed_dim=4, projection_class_embeddings_input_dim=30)
# Class embeddings concatenated, an activation on the time embedding, a timestep condition, no mid block.
EXTRAS = dict(SD1_LIKE, class_embed_type="timestep", class_embeddings_concat=True, time_embedding_act_fn="silu",
              time_cond_proj_dim=6, mid_block_type=None, conv_in_kernel=1, conv_out_kernel=1)

SD15 = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=[320, 640, 1280, 1280],
            layers_per_block=2, attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32, norm_eps=1e-5,
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, act_fn="silu", mid_block_scale_factor=1)
SD21 = dict(SD15, sample_size=96, attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024,
            use_linear_projection=True, upcast_attention=True, dual_cross_attention=False)
LDM_TEXT2IM = dict(SD15, sample_size=32, cross_attention_dim=1280)
SDXL_BASE = dict(SD15, sample_size=128, block_out_channels=[320, 640, 1280], attention_head_dim=[5, 10, 20],
                 cross_attention_dim=2048, use_linear_projection=True, transformer_layers_per_block=[1, 2, 10],
                 down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)


def inputs(config: dict, height: int = 8, width: int = 8, seed: int = 3, mask: bool = True) -> dict:
    generator = torch.Generator().manual_seed(seed)
    values = dict(sample=torch.randn(2, config["in_channels"], height, width, generator=generator), timestep=10,
                  encoder_hidden_states=torch.randn(2, 5, config["cross_attention_dim"], generator=generator))
    if mask:
        values["encoder_attention_mask"] = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    if config.get("class_embed_type") == "timestep":
        values["class_labels"] = torch.tensor([3, 400])
    if config.get("addition_embed_type") == "text_time":  # 6 ids, and a pooled text of the remaining width
        width = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
        values["added_cond_kwargs"] = {"text_embeds": torch.randn(2, width, generator=generator),
                                       "time_ids": torch.tensor([[64.0, 48, 0, 8, 64, 64], [32, 32, 4, 0, 40, 24]])}
    if config.get("time_cond_proj_dim"):
        values["timestep_cond"] = torch.randn(2, config["time_cond_proj_dim"], generator=generator)
    return values


@pytest.mark.parametrize("config", [SD1_LIKE, SD2_LIKE, SDXL_LIKE, EXTRAS], ids=["sd1", "sd2", "sdxl", "extras"])
def test_parity_with_diffusers(config, tmp_path):
    assert_parity(check_parity(diffusers.UNet2DConditionModel, UNet2DConditionModel, config, inputs(config),
                               tmp_path))


def test_sizes_that_do_not_halve_evenly(tmp_path):
    reference_folder = tmp_path / "reference"
    from unet_parity import build_reference
    reference = build_reference(diffusers.UNet2DConditionModel, SD2_LIKE)
    reference.save_pretrained(reference_folder)
    ours = UNet2DConditionModel.from_pretrained(reference_folder)
    values = inputs(SD2_LIKE, height=10, width=7, mask=False)
    with torch.no_grad():
        expected = reference(**values).sample
        assert expected.shape == (2, 4, 10, 7)
        assert max_difference(ours(**values).sample, expected) < 1e-5


@pytest.mark.parametrize("config", [SD15, SD21, LDM_TEXT2IM, SDXL_BASE],
                         ids=["sd-1.5", "sd-2.1", "ldm-text2im-large-256", "sdxl-base"])
def test_published_configs_have_diffusers_keys_and_shapes(config):
    with torch.device("meta"):
        theirs = {k: tuple(v.shape) for k, v in diffusers.UNet2DConditionModel(**config).state_dict().items()}
        ours = {k: tuple(v.shape) for k, v in UNet2DConditionModel(**config).state_dict().items()}
    assert ours == theirs
    assert sum(torch.Size(s).numel() for s in ours.values()) > 800_000_000


def test_float16_weights_and_output(tmp_path):
    torch.manual_seed(0)
    UNet2DConditionModel(**SD1_LIKE).save_pretrained(tmp_path)
    model = UNet2DConditionModel.from_pretrained(tmp_path, torch_dtype=torch.float16)
    full = UNet2DConditionModel.from_pretrained(tmp_path)
    values = inputs(SD1_LIKE)
    half_values = {k: v.half() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in values.items()}
    with torch.no_grad():
        out = model(**half_values).sample
        assert out.dtype == torch.float16
        assert max_difference(out, full(**values).sample) < 2e-2


def test_unsupported_features_are_config_errors():
    with pytest.raises(ConfigError) as error:
        UNet2DConditionModel(**dict(SD1_LIKE, addition_embed_type="image"))
    assert str(error.value) == ("UNet2DConditionModel: addition_embed_type='image' is not supported "
                                "(only null, 'text' or 'text_time')")
    with pytest.raises(ConfigError) as error:
        UNet2DConditionModel(**dict(SD1_LIKE, addition_embed_type="text_time"))
    assert str(error.value) == ("UNet2DConditionModel: addition_embed_type 'text_time' needs addition_time_embed_dim "
                                "and projection_class_embeddings_input_dim")
    with pytest.raises(ConfigError) as error:
        UNet2DConditionModel(**dict(SD1_LIKE, attention_head_dim=[2, 2, 2]))
    assert str(error.value) == "UNet2DConditionModel: attention_head_dim lists 3 values for 2 down blocks"
