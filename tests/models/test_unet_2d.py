"""UNet2DModel against diffusers: tiny configurations built by diffusers with a fixed seed, both directions."""
from __future__ import annotations

import json

import diffusers
import pytest
import torch

from dgraph.errors import ConfigError
from dgraph.models import UNet2DModel

from unet_parity import assert_parity, check_parity, one_thread  # noqa: F401 (autouse fixture)

# The DDPM CIFAR-10 layout (one attention level, padding-0 downsampling, sin/cos unflipped, shift 1).
DDPM_LIKE = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16, 16), layers_per_block=1,
                 down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
                 attention_head_dim=None, downsample_padding=0, freq_shift=1, flip_sin_to_cos=False, norm_eps=1e-6)
# The unconditional LDM layout, with scale-shift resnets, a mid-block scale and several heads.
LDM_LIKE = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=2,
                down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                norm_num_groups=4, attention_head_dim=4, resnet_time_scale_shift="scale_shift",
                mid_block_scale_factor=1.414)
# Class-conditioned, with the mid-block attention left out.
CLASS_LIKE = dict(DDPM_LIKE, num_class_embeds=5, add_attention=False, center_input_sample=True)

# Published configurations (values of the Hub's config.json files).
DDPM_CIFAR10_32 = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=[128, 256, 256, 256],
                       layers_per_block=2, down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D",
                                                             "DownBlock2D"],
                       up_block_types=["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
                       attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1,
                       norm_eps=1e-6, norm_num_groups=32, act_fn="silu", center_input_sample=False,
                       mid_block_scale_factor=1, time_embedding_type="positional")
LDM_CELEBAHQ_256 = dict(sample_size=64, in_channels=3, out_channels=3, block_out_channels=[224, 448, 672, 896],
                        layers_per_block=2, attention_head_dim=32,
                        down_block_types=["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
                        up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
                        downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-5, norm_num_groups=32)


def inputs(config: dict, batch: int = 2, seed: int = 3, timestep=10) -> dict:
    generator = torch.Generator().manual_seed(seed)
    size = config["sample_size"]
    values = dict(sample=torch.randn(batch, config["in_channels"], size, size, generator=generator), timestep=timestep)
    if config.get("num_class_embeds"):
        values["class_labels"] = torch.tensor([1, 4])
    return values


@pytest.mark.parametrize("config", [DDPM_LIKE, LDM_LIKE, CLASS_LIKE], ids=["ddpm", "ldm", "class"])
def test_parity_with_diffusers(config, tmp_path):
    assert_parity(check_parity(diffusers.UNet2DModel, UNet2DModel, config, inputs(config), tmp_path))


def test_timestep_forms_agree(tmp_path):
    torch.manual_seed(0)
    model = UNet2DModel(**DDPM_LIKE).eval()
    x = inputs(DDPM_LIKE)["sample"]
    with torch.no_grad():
        as_int = model(x, 7).sample
        assert torch.equal(model(x, torch.tensor(7)).sample, as_int)
        assert torch.equal(model(x, torch.tensor([7, 7]), return_dict=False)[0], as_int)
        per_item = model(x, torch.tensor([7, 300])).sample
    assert torch.equal(per_item[0], as_int[0]) and not torch.allclose(per_item[1], as_int[1])


@pytest.mark.parametrize("config", [DDPM_CIFAR10_32, LDM_CELEBAHQ_256], ids=["ddpm-cifar10-32", "ldm-celebahq-256"])
def test_published_configs_have_diffusers_keys_and_shapes(config):
    with torch.device("meta"):
        theirs = {k: tuple(v.shape) for k, v in diffusers.UNet2DModel(**config).state_dict().items()}
        ours = {k: tuple(v.shape) for k, v in UNet2DModel(**config).state_dict().items()}
    assert ours == theirs
    assert sum(torch.Size(s).numel() for s in ours.values()) > 30_000_000


def test_legacy_attention_names_are_converted(tmp_path):
    torch.manual_seed(0)
    model = UNet2DModel(**DDPM_LIKE).eval()
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file
    weights = load_file(str(tmp_path / "diffusion_pytorch_model.safetensors"))
    renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    old = {}
    for key, tensor in weights.items():
        for new, legacy in renames.items():
            key = key.replace(f".{new}.", f".{legacy}.")
        old[key] = tensor
    assert "down_blocks.1.attentions.0.query.weight" in old
    save_file(old, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    loaded = UNet2DModel.from_pretrained(tmp_path)
    x = inputs(DDPM_LIKE)["sample"]
    with torch.no_grad():
        assert torch.equal(loaded(x, 5).sample, model(x, 5).sample)


def test_unsupported_block_type_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        UNet2DModel(down_block_types=("DownBlock2D", "SkipDownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                    block_out_channels=(8, 8), norm_num_groups=4)
    assert str(error.value) == ("UNet2DModel: down_block_types 'SkipDownBlock2D' not supported; supported: "
                                "DownBlock2D, AttnDownBlock2D, ResnetDownsampleBlock2D")


def test_config_file_round_trips(tmp_path):
    model = UNet2DModel(**LDM_LIKE)
    model.save_config(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert UNet2DModel.from_config(UNet2DModel.load_config(tmp_path)).config == model.config
    assert saved["_class_name"] == "UNet2DModel" and saved["resnet_time_scale_shift"] == "scale_shift"
