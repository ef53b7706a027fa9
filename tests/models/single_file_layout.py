"""Small random diffusers components written into the original Stable Diffusion single-file layouts.

The inverse of dgraph's key maps, written from diffusers' facts (loaders/single_file_utils.py) in the other
direction, so that a mistake in one is not repeated in the other; `test_single_file.py`
checks these files against diffusers' own converters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

UNET = "model.diffusion_model."
VAE = "first_stage_model."

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
           "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_UNET_FLAT = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
              "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
              "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET[head]}.{tail}"


def original_unet(state: dict[str, torch.Tensor], layers: int, up_attention: list[bool]) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel state dict in openaimodel's layout (under model.diffusion_model.)."""
    out = {}
    for key, tensor in state.items():
        module, _, leaf = key.rpartition(".")
        if module in _UNET_FLAT:
            out[f"{_UNET_FLAT[module]}.{leaf}"] = tensor
            continue
        if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block = 1 + int(m.group(1)) * (layers + 1) + int(m.group(3))
            part = f"0.{_resnet(m.group(4))}" if m.group(2) == "resnets" else f"1.{m.group(4)}"
            out[f"input_blocks.{block}.{part}"] = tensor
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            out[f"input_blocks.{1 + int(m.group(1)) * (layers + 1) + layers}.0.op.{m.group(2)}"] = tensor
        elif m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d)\.(.+)", key):
            if m.group(1) == "attentions":
                out[f"middle_block.1.{m.group(3)}"] = tensor
            else:
                out[f"middle_block.{2 * int(m.group(2))}.{_resnet(m.group(3))}"] = tensor
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block = int(m.group(1)) * (layers + 1) + int(m.group(3))
            part = f"0.{_resnet(m.group(4))}" if m.group(2) == "resnets" else f"1.{m.group(4)}"
            out[f"output_blocks.{block}.{part}"] = tensor
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            level = int(m.group(1))
            slot = 2 if up_attention[level] else 1
            out[f"output_blocks.{level * (layers + 1) + layers}.{slot}.conv.{m.group(2)}"] = tensor
        else:
            raise AssertionError(f"no original name for UNet key {key}")
    return {UNET + key: t for key, t in out.items()}


_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def original_vae(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict in the original layout (under first_stage_model.), with the mid
    attention's linear weights as 1x1 convolutions."""
    out = {}
    for key, tensor in state.items():
        if m := re.fullmatch(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            part, direction, level, n, rest = m.groups()
            index = int(level) if direction == "down" else levels - 1 - int(level)
            out[f"{part}.{direction}.{index}.block.{n}.{rest.replace('conv_shortcut', 'nin_shortcut')}"] = tensor
        elif m := re.fullmatch(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(down|up)samplers\.0\.(.+)", key):
            part, direction, level, _, rest = m.groups()
            index = int(level) if direction == "down" else levels - 1 - int(level)
            out[f"{part}.{direction}.{index}.{direction}sample.{rest}"] = tensor
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)", key):
            rest = m.group(3).replace("conv_shortcut", "nin_shortcut")
            out[f"{m.group(1)}.mid.block_{int(m.group(2)) + 1}.{rest}"] = tensor
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            name = _VAE_ATTENTION[m.group(2)]
            if m.group(3) == "weight" and name != "norm":
                tensor = tensor[:, :, None, None]
            out[f"{m.group(1)}.mid.attn_1.{name}.{m.group(3)}"] = tensor
        elif m := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(.+)", key):
            out[f"{m.group(1)}.norm_out.{m.group(2)}"] = tensor
        else:
            out[key] = tensor  # conv_in, conv_out, quant_conv, post_quant_conv keep their names
    return {VAE + key: t for key, t in out.items()}


def original_clip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model's state dict under `prefix` + `text_model.` (the layout SD 1.x keeps)."""
    return {prefix + ("" if key.startswith("text_model.") else "text_model.") + key: t for key, t in state.items()}


_OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                    "self_attn.out_proj": "attn.out_proj"}


def original_open_clip(state: dict[str, torch.Tensor], prefix: str, extra_layers: int = 0,
                       projection: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model's state dict in OpenCLIP's layout under `prefix`: q/k/v fused into
    in_proj, the projection transposed, `logit_scale` added; `extra_layers` random resblocks past the model's
    last (SD 2.x's file holds the layer its text encoder leaves out) and, without a projection in `state`,
    `projection` as the file's text_projection."""
    state = {key.removeprefix("text_model."): t for key, t in state.items()}
    out = {"token_embedding.weight": state["embeddings.token_embedding.weight"],
           "positional_embedding": state["embeddings.position_embedding.weight"],
           "ln_final.weight": state["final_layer_norm.weight"], "ln_final.bias": state["final_layer_norm.bias"],
           "logit_scale": torch.tensor(4.6052)}
    if "text_projection.weight" in state:
        out["text_projection"] = state["text_projection.weight"].T.contiguous()
    elif projection is not None:
        out["text_projection"] = projection
    layers = sorted({int(m.group(1)) for key in state if (m := re.match(r"encoder\.layers\.(\d+)\.", key))})
    for i in layers:
        layer = f"encoder.layers.{i}."
        for name, original in _OPEN_CLIP_LAYER.items():
            for leaf in ("weight", "bias"):
                out[f"transformer.resblocks.{i}.{original}.{leaf}"] = state[f"{layer}{name}.{leaf}"]
        for leaf in ("weight", "bias"):
            out[f"transformer.resblocks.{i}.attn.in_proj_{leaf}"] = torch.cat(
                [state[f"{layer}self_attn.{p}_proj.{leaf}"] for p in "qkv"])
    generator = torch.Generator().manual_seed(7)
    for i in range(len(layers), len(layers) + extra_layers):
        for key in [k for k in out if k.startswith("transformer.resblocks.0.")]:
            like = out[key]
            out[key.replace(".resblocks.0.", f".resblocks.{i}.")] = (
                torch.empty_like(like) if like.is_meta else torch.randn(like.shape, generator=generator))
    return {prefix + key: t for key, t in out.items()}


@dataclass
class Layout:
    """A family's tiny components (diffusers / transformers modules) and the original file written from them."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoders: dict[str, torch.nn.Module] = field(default_factory=dict)
    checkpoint: dict[str, torch.Tensor] = field(default_factory=dict)


# ---- tiny components of each family ---------------------------------------------------------------
def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter moved by seeded noise, so zero-initialised layers carry weights too."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            scale = 0.1 if parameter.ndim == 1 else 0.2
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return model.eval()


UNET_CONFIGS = {
    "sd1": dict(sample_size=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=64,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                attention_head_dim=8),
    "sd2": dict(sample_size=8, block_out_channels=(64, 128), layers_per_block=1, cross_attention_dim=64,
                down_block_types=("CrossAttnDownBlock2D",) * 2, up_block_types=("CrossAttnUpBlock2D",) * 2,
                attention_head_dim=[1, 2], use_linear_projection=True, upcast_attention=True),
    "sdxl": dict(sample_size=8, block_out_channels=(32, 64, 128), layers_per_block=2, cross_attention_dim=192,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=[1, 1, 2], attention_head_dim=[1, 1, 2], use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=32 + 6 * 8),
    "sdxl_refiner": dict(sample_size=16, block_out_channels=(32, 64, 64, 64), layers_per_block=1,
                         cross_attention_dim=128,
                         down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                         transformer_layers_per_block=2, attention_head_dim=[1, 1, 1, 1], use_linear_projection=True,
                         addition_embed_type="text_time", addition_time_embed_dim=8,
                         projection_class_embeddings_input_dim=32 + 5 * 8),
}
VAE_CONFIG = dict(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1, sample_size=32)
# Widths that are multiples of 64 (the released encoders' head width): 1 head, or 2 for the bigG stand-in.
CLIP_CONFIGS = {
    "clip_l": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1,
                   hidden_act="quick_gelu", projection_dim=64),
    "open_clip_h": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=1,
                        hidden_act="gelu", projection_dim=64),
    "open_clip_big_g": dict(hidden_size=128, intermediate_size=160, num_hidden_layers=2, num_attention_heads=2,
                            hidden_act="gelu", projection_dim=32),
}
CLIP_COMMON = dict(vocab_size=1000, max_position_embeddings=16, layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2,
                   pad_token_id=1)


def _clip(name: str, with_projection: bool, seed: int):
    import transformers

    config = transformers.CLIPTextConfig(**CLIP_CONFIGS[name], **CLIP_COMMON)
    torch.manual_seed(seed)
    cls = transformers.CLIPTextModelWithProjection if with_projection else transformers.CLIPTextModel
    return _perturbed(cls(config), seed + 100)


def build(family: str, inpainting: bool = False) -> Layout:
    """A family's tiny diffusers/transformers components and the original single-file dict written from them."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet_config = dict(UNET_CONFIGS[family], in_channels=9 if inpainting else 4, out_channels=4)
    unet = _perturbed(UNet2DConditionModel(**unet_config), 1)
    torch.manual_seed(2)
    vae = _perturbed(AutoencoderKL(**VAE_CONFIG, scaling_factor=0.13025 if family.startswith("sdxl") else 0.18215), 3)
    up_attention = [t.startswith("CrossAttn") for t in unet_config["up_block_types"]]
    checkpoint = {**original_unet(unet.state_dict(), unet_config["layers_per_block"], up_attention),
                  **original_vae(vae.state_dict(), len(VAE_CONFIG["block_out_channels"])),
                  "alphas_cumprod": torch.linspace(1, 0, 10)}  # the sampler's buffers that real files keep too
    text: dict[str, torch.nn.Module] = {}
    if family == "sd1":
        text["text_encoder"] = _clip("clip_l", False, 4)
        checkpoint.update(original_clip(text["text_encoder"].state_dict(), "cond_stage_model.transformer."))
    elif family == "sd2":
        text["text_encoder"] = _clip("open_clip_h", False, 4)
        checkpoint.update(original_open_clip(text["text_encoder"].state_dict(), "cond_stage_model.model.",
                                             extra_layers=1, projection=torch.randn(64, 64)))
    elif family == "sdxl":
        text["text_encoder"] = _clip("clip_l", False, 4)
        text["text_encoder_2"] = _clip("open_clip_big_g", True, 5)
        checkpoint.update(original_clip(text["text_encoder"].state_dict(), "conditioner.embedders.0.transformer."))
        checkpoint.update(original_open_clip(text["text_encoder_2"].state_dict(), "conditioner.embedders.1.model."))
    else:
        text["text_encoder_2"] = _clip("open_clip_big_g", True, 5)
        checkpoint.update(original_open_clip(text["text_encoder_2"].state_dict(), "conditioner.embedders.0.model."))
    return Layout(unet, vae, text, {key: t.contiguous() for key, t in checkpoint.items()})
