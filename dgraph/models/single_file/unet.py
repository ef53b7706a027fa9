"""The original UNet layout (openaimodel: `input_blocks`, `middle_block`, `output_blocks`) as a diffusers
UNet2DConditionModel: its config read from the tensors' shapes, and each original key's diffusers name.

    input_blocks.0.0                     conv_in
    input_blocks.{i}.0 (ResBlock)        down_blocks.{b}.resnets.{n}       b, n = divmod(i - 1, layers + 1)
    input_blocks.{i}.0.op                down_blocks.{b}.downsamplers.0.conv      (the level's last block)
    input_blocks.{i}.1 (SpatialTransformer) down_blocks.{b}.attentions.{n}  (same names inside)
    middle_block.0 / .1 / .2             mid_block.resnets.0 / attentions.0 / resnets.1
    output_blocks.{i}.0                  up_blocks.{b}.resnets.{n}         b, n = divmod(i, layers + 1)
    output_blocks.{i}.1 or .2 .conv      up_blocks.{b}.upsamplers.0.conv
    time_embed.0 / .2, label_emb.0.0 / .2, out.0 / .2   time_embedding.linear_1 / 2, add_embedding..., conv_norm_out / conv_out

A ResBlock's in_layers.0 / in_layers.2 / emb_layers.1 / out_layers.0 / out_layers.3 / skip_connection are
norm1 / conv1 / time_emb_proj / norm2 / conv2 / conv_shortcut.

What the shapes do not hold comes from the released models' configs: 32 norm groups; heads: 8 per block for
SD 1.x, a head width of 64 for SD 2.x and SDXL; SDXL's size/crop ids embedded at a width of
(ADM input - pooled text width) / 6 for the base (5 for the refiner, whose ids hold the aesthetic score), 256
in the released models; `sample_size` 64 (SD 1.x, SD 2.x inpainting), 96 (SD 2.x 768-v), 128 (SDXL);
SD 2.x's 768-v UNet upcasts its attention, as diffusers' config of 2.1 does.
"""
from __future__ import annotations

import re
from typing import Any

from ...errors import WeightsError
from .architecture import Architecture, Shapes

_RESNET = (("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
           ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."))
_FLAT = (("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
         ("label_emb.0.0.", "add_embedding.linear_1."), ("label_emb.0.2.", "add_embedding.linear_2."),
         ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."))
_BLOCK = re.compile(r"(input_blocks|output_blocks)\.(\d+)\.(\d+)\.(.+)")
_MIDDLE = re.compile(r"middle_block\.(\d+)\.(.+)")
_SAMPLE_SIZES = {"sd1": 64, "sd2": 96, "sdxl": 128, "sdxl_refiner": 128}
# The size/crop conditioning ids SDXL's UNet embeds: (original size, crop, target size) for the base,
# (original size, crop, aesthetic score) for the refiner.
_TIME_IDS = {"sdxl": 6, "sdxl_refiner": 5}
_POOLED_WIDTH = 1280  # OpenCLIP bigG's projection, when the file holds no text encoder to read it from


def _blocks(shapes: Shapes, kind: str) -> list[int]:
    return sorted({int(m.group(2)) for key in shapes if (m := _BLOCK.match(key)) and m.group(1) == kind})


def _depth(shapes: Shapes, block: str) -> int:
    """How many transformer blocks the spatial transformer at `block` (e.g. "input_blocks.1.1") holds."""
    pattern = re.compile(re.escape(block) + r"\.transformer_blocks\.(\d+)\.")
    return len({m.group(1) for key in shapes if (m := pattern.match(key))})


def unet_config(shapes: Shapes, arch: Architecture, all_shapes: Shapes, where: str) -> dict[str, Any]:
    """diffusers' UNet2DConditionModel config for the UNet whose (prefix-free) tensor shapes are `shapes`."""
    try:
        conv_in = shapes["input_blocks.0.0.weight"]
        inputs = _blocks(shapes, "input_blocks")
        downsamplers = [i for i in inputs if f"input_blocks.{i}.0.op.weight" in shapes]
        levels = len(downsamplers) + 1
        layers = downsamplers[0] - 1 if downsamplers else len(inputs) - 1
        if len(inputs) != 1 + levels * layers + levels - 1:
            raise WeightsError(f"{where}: the UNet's input_blocks ({len(inputs)}) do not form {levels} levels of "
                               f"{layers} blocks each")
        firsts = [1 + level * (layers + 1) for level in range(levels)]
        channels = [shapes[f"input_blocks.{i}.0.out_layers.3.weight"][0] for i in firsts]
        attends = [f"input_blocks.{i}.1.proj_in.weight" in shapes for i in firsts]
        depths = [_depth(shapes, f"input_blocks.{i}.1") for i in firsts]
        up_attends = [f"output_blocks.{level * (layers + 1)}.1.proj_in.weight" in shapes for level in range(levels)]
        out_channels = shapes["out.2.weight"][0]
    except KeyError as error:
        raise WeightsError(f"{where}: the UNet under model.diffusion_model.* has no tensor {error.args[0]!r}; "
                           f"is the file complete?") from None
    mid_depth = _depth(shapes, "middle_block.1")
    first_attention = next((i for i, attends_here in zip(firsts, attends) if attends_here), None)
    if first_attention is None:
        raise WeightsError(f"{where}: the UNet has no cross-attention; a Stable Diffusion UNet has it")
    proj_in = shapes[f"input_blocks.{first_attention}.1.proj_in.weight"]
    context = shapes[f"input_blocks.{first_attention}.1.transformer_blocks.0.attn2.to_k.weight"][1]
    attended = [d for d, a in zip(depths, attends) if a]
    if len(set(attended)) == 1 and (mid_depth in (0, attended[0])):
        transformer_layers: int | list[int] = attended[0]
    else:  # SDXL: [1, 2, 10]; the mid block takes the last level's depth
        transformer_layers = [d if a else 1 for d, a in zip(depths, attends)]
        if mid_depth:
            transformer_layers[-1] = mid_depth
    config: dict[str, Any] = {
        "sample_size": 64 if arch.inpainting and arch.family == "sd2" else _SAMPLE_SIZES[arch.family],
        "in_channels": conv_in[1],
        "out_channels": out_channels,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attends],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_attends],
        "mid_block_type": "UNetMidBlock2DCrossAttn" if mid_depth else "UNetMidBlock2D",
        "block_out_channels": channels,
        "layers_per_block": layers,
        "norm_num_groups": 32,
        "cross_attention_dim": context,
        "attention_head_dim": 8 if arch.family == "sd1" else [max(1, c // 64) for c in channels],
        "use_linear_projection": len(proj_in) == 2,
        "transformer_layers_per_block": transformer_layers,
        "upcast_attention": arch.family == "sd2" and not arch.inpainting,
    }
    if "label_emb.0.0.weight" in shapes:
        if arch.family not in _TIME_IDS:
            raise WeightsError(f"{where}: this {arch.name} UNet has a class/ADM embedding (label_emb.*), as the "
                               f"unCLIP and upscaler models do; those single files are not supported")
        adm = shapes["label_emb.0.0.weight"][1]
        pooled = _pooled_width(all_shapes, arch)
        time_width, rest = divmod(adm - pooled, _TIME_IDS[arch.family])
        if rest or time_width <= 0:
            raise WeightsError(f"{where}: the UNet's ADM input is {adm} wide, which is not the pooled text ({pooled}) "
                               f"plus {_TIME_IDS[arch.family]} embedded size/crop ids of one width")
        config.update(addition_embed_type="text_time", addition_time_embed_dim=time_width,
                      projection_class_embeddings_input_dim=adm)
    return config


def _pooled_width(shapes: Shapes, arch: Architecture) -> int:
    prefix = arch.components.get("text_encoder_2")
    projection = shapes.get(f"{prefix}text_projection") if prefix else None
    return projection[1] if projection else _POOLED_WIDTH


def unet_key(key: str, layers: int) -> str | None:
    """The diffusers name of an original UNet key (prefix-free), or None for a key the layout does not have."""
    for old, new in _FLAT:
        if key.startswith(old):
            return new + key[len(old):]
    if (middle := _MIDDLE.fullmatch(key)) is not None:
        part, rest = int(middle.group(1)), middle.group(2)
        return {0: f"mid_block.resnets.0.{_resnet(rest)}", 1: f"mid_block.attentions.0.{rest}",
                2: f"mid_block.resnets.1.{_resnet(rest)}"}.get(part)
    match = _BLOCK.fullmatch(key)
    if match is None:
        return None
    kind, index, part, rest = match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)
    if kind == "input_blocks":
        level, n = divmod(index - 1, layers + 1)
        if part == 0 and rest.startswith("op."):
            return f"down_blocks.{level}.downsamplers.0.conv.{rest[3:]}"
        where = "down_blocks"
    else:
        level, n = divmod(index, layers + 1)
        if part in (1, 2) and rest.startswith("conv."):
            return f"up_blocks.{level}.upsamplers.0.conv.{rest[5:]}"
        where = "up_blocks"
    if part == 0:
        return f"{where}.{level}.resnets.{n}.{_resnet(rest)}"
    if part == 1:
        return f"{where}.{level}.attentions.{n}.{rest}"
    return None


def _resnet(rest: str) -> str:
    for old, new in _RESNET:
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest
