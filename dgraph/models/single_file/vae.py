"""The original KL autoencoder layout (`encoder.down.{i}.block.{j}`, `mid.attn_1`, `decoder.up.{i}`) as a
diffusers AutoencoderKL: its config from the tensors' shapes, each original key's diffusers name.

    encoder.down.{i}.block.{j}           encoder.down_blocks.{i}.resnets.{j}    (nin_shortcut: conv_shortcut)
    encoder.down.{i}.downsample.conv     encoder.down_blocks.{i}.downsamplers.0.conv
    decoder.up.{i}.block.{j}             decoder.up_blocks.{levels - 1 - i}.resnets.{j}   (original order is
    decoder.up.{i}.upsample.conv         decoder.up_blocks.{levels - 1 - i}.upsamplers.0.conv   by resolution)
    {en,de}coder.mid.block_1 / block_2   {en,de}coder.mid_block.resnets.0 / 1
    {en,de}coder.mid.attn_1.norm/q/k/v/proj_out   ...mid_block.attentions.0.group_norm/to_q/to_k/to_v/to_out.0
    {en,de}coder.norm_out                {en,de}coder.conv_norm_out

The mid attention's q/k/v/proj_out are 1x1 convolutions there and linear layers in diffusers: their
(out, in, 1, 1) weights become (out, in). Not in the shapes: 32 norm groups, the scaling factor (0.18215 for
SD 1.x/2.x, 0.13025 for SDXL's autoencoder) and `sample_size` (512, 768 for SD 2.x's 768-v, 1024 for SDXL).
"""
from __future__ import annotations

import re
from typing import Any

import torch

from ...errors import WeightsError
from .architecture import Architecture, Shapes

_SCALING = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025, "sdxl_refiner": 0.13025}
_SAMPLE_SIZES = {"sd1": 512, "sd2": 768, "sdxl": 1024, "sdxl_refiner": 1024}
_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_RESAMPLE = re.compile(r"(encoder|decoder)\.(down|up)\.(\d+)\.(block\.(\d+)|downsample|upsample)\.(.+)")
_MID = re.compile(r"(encoder|decoder)\.mid\.(block_1|block_2|attn_1)\.(\w+)\.(weight|bias)")
_FLAT = {"encoder.norm_out.": "encoder.conv_norm_out.", "decoder.norm_out.": "decoder.conv_norm_out."}
# Training-only tensors some files keep beside the autoencoder (its loss' discriminator, logvar): not weights of it.
IGNORED = ("loss.",)
_SAME = ("encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.", "decoder.conv_out.", "quant_conv.",
         "post_quant_conv.")


def vae_config(shapes: Shapes, arch: Architecture, where: str) -> dict[str, Any]:
    """diffusers' AutoencoderKL config for the autoencoder whose (prefix-free) tensor shapes are `shapes`."""
    try:
        levels = len({m.group(3) for key in shapes if (m := _RESAMPLE.match(key)) and m.group(1) == "encoder"})
        layers = len({m.group(5) for key in shapes if (m := _RESAMPLE.match(key)) and m.group(1) == "encoder"
                      and m.group(3) == "0" and m.group(5) is not None})
        channels = [shapes[f"encoder.down.{i}.block.0.conv2.weight"][0] for i in range(levels)]
        config = {
            "in_channels": shapes["encoder.conv_in.weight"][1],
            "out_channels": shapes["decoder.conv_out.weight"][0],
            "down_block_types": ["DownEncoderBlock2D"] * levels,
            "up_block_types": ["UpDecoderBlock2D"] * levels,
            "block_out_channels": channels,
            "layers_per_block": layers,
            "latent_channels": shapes["decoder.conv_in.weight"][1],
            "norm_num_groups": 32,
            "sample_size": 512 if arch.inpainting and arch.family == "sd2" else _SAMPLE_SIZES[arch.family],
            "scaling_factor": _SCALING[arch.family],
            "use_quant_conv": "quant_conv.weight" in shapes,
            "use_post_quant_conv": "post_quant_conv.weight" in shapes,
            "mid_block_add_attention": "encoder.mid.attn_1.q.weight" in shapes,
        }
    except KeyError as error:
        raise WeightsError(f"{where}: the autoencoder under first_stage_model.* has no tensor {error.args[0]!r}; "
                           f"is the file complete?") from None
    if not levels:
        raise WeightsError(f"{where}: first_stage_model.* holds no encoder.down.* blocks; not a KL autoencoder")
    return config


def vae_key(key: str, levels: int) -> str | None:
    """The diffusers name of an original autoencoder key (prefix-free), or None if the layout has no such key."""
    if key.startswith(_SAME):
        return key
    for old, new in _FLAT.items():
        if key.startswith(old):
            return new + key[len(old):]
    match = _RESAMPLE.fullmatch(key)
    if match:
        part, direction, index, block, n, rest = match.groups()
        level = int(index) if direction == "down" else levels - 1 - int(index)
        blocks = "down_blocks" if direction == "down" else "up_blocks"
        if n is not None:
            return f"{part}.{blocks}.{level}.resnets.{n}.{rest.replace('nin_shortcut', 'conv_shortcut')}"
        samplers = "downsamplers" if block == "downsample" else "upsamplers"
        return f"{part}.{blocks}.{level}.{samplers}.0.{rest}"
    match = _MID.fullmatch(key)
    if match:
        part, name, layer, leaf = match.groups()
        if name == "attn_1":
            return f"{part}.mid_block.attentions.0.{_ATTENTION[layer]}.{leaf}" if layer in _ATTENTION else None
        index = 0 if name == "block_1" else 1
        return f"{part}.mid_block.resnets.{index}.{layer.replace('nin_shortcut', 'conv_shortcut')}.{leaf}"
    return None


def vae_tensor(diffusers_key: str, tensor: torch.Tensor) -> torch.Tensor:
    """The mid attention's 1x1-convolution weights as the linear weights diffusers keeps."""
    if ".mid_block.attentions.0.to_" in diffusers_key and tensor.dim() > 2:
        return tensor.reshape(tensor.shape[0], tensor.shape[1])
    return tensor
