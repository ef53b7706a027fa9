"""At the released models' sizes: the original layout's names and shapes (of diffusers' own modules with
the published configs, built on the meta device, so nothing is allocated) give back those configs and every
key and shape, for SD 1.5, its inpainting model, SD 2.1, SDXL base and refiner."""
from __future__ import annotations

import pytest
import torch

from dgraph.models.single_file import plan_component
from single_file_layout import original_clip, original_open_clip, original_unet, original_vae

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=768,
                 block_out_channels=[320, 640, 1280, 1280], attention_head_dim=8,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
SD21_UNET = dict(SD15_UNET, sample_size=96, cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20],
                 use_linear_projection=True, upcast_attention=True)
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=2048,
                 block_out_channels=[320, 640, 1280], attention_head_dim=[5, 10, 20],
                 down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                 transformer_layers_per_block=[1, 2, 10], use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
REFINER_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=1280,
                    block_out_channels=[384, 768, 1536, 1536], attention_head_dim=[6, 12, 24, 24],
                    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                    transformer_layers_per_block=4, use_linear_projection=True, addition_embed_type="text_time",
                    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2560)
VAE = dict(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              hidden_act="quick_gelu", vocab_size=49408, max_position_embeddings=77)
OPEN_CLIP_H = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                   hidden_act="gelu", vocab_size=49408, max_position_embeddings=77)
BIG_G = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
             hidden_act="gelu", vocab_size=49408, max_position_embeddings=77, projection_dim=1280)

FAMILIES = {  # unet config, vae extras, {component: (clip config, layout prefix, projection, extra layers)}
    "sd15": (SD15_UNET, dict(sample_size=512, scaling_factor=0.18215),
             {"text_encoder": (CLIP_L, "cond_stage_model.transformer.", False, 0)}),
    "sd15_inpainting": (dict(SD15_UNET, in_channels=9), dict(sample_size=512, scaling_factor=0.18215),
                        {"text_encoder": (CLIP_L, "cond_stage_model.transformer.", False, 0)}),
    "sd21": (SD21_UNET, dict(sample_size=768, scaling_factor=0.18215),
             {"text_encoder": (OPEN_CLIP_H, "cond_stage_model.model.", False, 1)}),
    "sdxl": (SDXL_UNET, dict(sample_size=1024, scaling_factor=0.13025),
             {"text_encoder": (CLIP_L, "conditioner.embedders.0.transformer.", False, 0),
              "text_encoder_2": (BIG_G, "conditioner.embedders.1.model.", True, 0)}),
    "sdxl_refiner": (REFINER_UNET, dict(sample_size=1024, scaling_factor=0.13025),
                     {"text_encoder_2": (BIG_G, "conditioner.embedders.0.model.", True, 0)}),
}


@pytest.fixture(scope="module")
def released(request):
    """name -> (the original file's names and meta tensors, {component: (diffusers meta module, config)})."""
    import diffusers
    import transformers

    made = {}
    with torch.device("meta"):
        for name, (unet_config, vae_extra, texts) in FAMILIES.items():
            unet = diffusers.UNet2DConditionModel(**unet_config)
            vae = diffusers.AutoencoderKL(**VAE, **vae_extra)
            up_attention = [t.startswith("CrossAttn") for t in unet_config["up_block_types"]]
            tensors = {**original_unet(unet.state_dict(), 2, up_attention), **original_vae(vae.state_dict(), 4)}
            parts = {"unet": (unet, unet_config), "vae": (vae, {**VAE, **vae_extra})}
            for part, (config, prefix, projection, extra) in texts.items():
                cls = transformers.CLIPTextModelWithProjection if projection else transformers.CLIPTextModel
                model = cls(transformers.CLIPTextConfig(**config))
                if prefix.endswith("transformer."):
                    tensors.update(original_clip(model.state_dict(), prefix))
                else:
                    tensors.update(original_open_clip(model.state_dict(), prefix, extra_layers=extra,
                                                      projection=None if projection else torch.empty(1024, 1024)))
                parts[part] = (model, config)
            made[name] = (tensors, parts)
    return made


def _listed(value):
    return list(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("name", FAMILIES)
def test_released_configs_keys_and_shapes_come_back(released, name):
    tensors, parts = released[name]
    shapes = {key: tuple(t.shape) for key, t in tensors.items()}
    for part, (model, config) in parts.items():
        plan = plan_component(shapes, name, part)
        assert plan.unused == []
        given = {key: _listed(plan.config[key]) for key in config if key in plan.config}
        assert given == {key: _listed(value) for key, value in config.items() if key in plan.config}
        assert set(config) - set(plan.config) <= {"projection_dim"} and len(given) >= len(config) - 1
        expected = {key: tuple(t.shape) for key, t in model.state_dict().items()}
        if not hasattr(model, "text_model") and part.startswith("text"):
            expected = {"text_model." + key: shape for key, shape in expected.items()}
        mapped = {key: tuple(transform(tensors[plan.prefix + original]).shape)
                  for key, (original, transform) in plan.plan.items()}
        assert mapped == expected


@pytest.mark.parametrize("name, family", [("sd15", "sd1"), ("sd15_inpainting", "sd1"), ("sd21", "sd2"),
                                          ("sdxl", "sdxl"), ("sdxl_refiner", "sdxl_refiner")])
def test_a_file_holding_only_a_unet_is_told_by_its_cross_attention_width(released, name, family):
    tensors, parts = released[name]
    shapes = {key: tuple(t.shape) for key, t in tensors.items() if key.startswith("model.diffusion_model.")}
    plan = plan_component(shapes, name)
    assert (plan.name, plan.architecture.family, sorted(plan.architecture.components)) == ("unet", family, ["unet"])
    _, config = parts["unet"]
    assert {key: _listed(plan.config[key]) for key in config} == {key: _listed(v) for key, v in config.items()}
