"""GLIDE's official checkpoints (`base.pt`, `upsample.pt`, `base_inpaint.pt`, `upsample_inpaint.pt`,
`clip_image_enc.pt`, `clip_text_enc.pt`) → `GlideText2ImUNet` / `GlideCLIPImageEncoder` / `GlideCLIPTextEncoder`.

The release's pickles are bare state dicts; the options that built them are not in the file. `preset=`
names the released options (`PRESETS`, read off `glide_text2im.model_creation` and `clip/config.yaml`),
`options=` gives any options `create_model_and_diffusion` accepts (missing ones take its defaults). The
official keys are renamed onto dgraph's layers: residual blocks (`in_layers.0` -> `norm1`, ...), attention
blocks (the fused per-head `qkv` and `encoder_kv` 1x1 convolutions split into q / k / v and added k / v
projections), the text transformer's fused `c_qkv` likewise. Every official key is used and every model
key filled, or the conversion fails naming them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..configuration import write_text_atomic
from ..errors import ConfigError, WeightsError
from ..models.glide import GlideCLIPImageEncoder, GlideCLIPTextEncoder, GlideText2ImUNet
from ..text.glide_tokenizer import write_tokenizer
from .checkpoint import tensors_only

# model_and_diffusion_defaults() of the release, with the diffusion options it pairs them with.
_BASE = dict(image_size=64, num_channels=192, num_res_blocks=3, channel_mult="", num_heads=1, num_head_channels=64,
             num_heads_upsample=-1, attention_resolutions="32,16,8", dropout=0.1, text_ctx=128, xf_width=512,
             xf_layers=16, xf_heads=8, xf_final_ln=True, xf_padding=True, diffusion_steps=1000,
             noise_schedule="squaredcos_cap_v2", timestep_respacing="", use_scale_shift_norm=True,
             resblock_updown=True, use_fp16=True, cache_text_emb=False, inpaint=False, super_res=False)
# model_and_diffusion_defaults_upsampler().
_UPSAMPLE = {**_BASE, "image_size": 256, "num_res_blocks": 2, "noise_schedule": "linear", "super_res": True}
# clip/config.yaml, under the encoders' constructor names.
_CLIP_IMAGE = dict(image_size=64, patch_size=4, n_embd=512, n_head=12, n_xf_blocks=12, n_head_state=64,
                   n_timestep=1000, logit_scale=100.0)
_CLIP_TEXT = dict(n_bpe_vocab=65536, max_text_len=77, n_embd=512, n_head=8, n_xf_blocks=12, n_head_state=64)

PRESETS: dict[str, dict[str, Any]] = {
    "base": _BASE, "upsample": _UPSAMPLE,
    "base-inpaint": {**_BASE, "inpaint": True}, "upsample-inpaint": {**_UPSAMPLE, "inpaint": True},
    "clip-image": _CLIP_IMAGE, "clip-text": _CLIP_TEXT,
}
# The release's file names and the preset each is converted with by default.
RELEASED_FILES = {"base.pt": "base", "upsample.pt": "upsample", "base_inpaint.pt": "base-inpaint",
                  "upsample_inpaint.pt": "upsample-inpaint", "clip_image_enc.pt": "clip-image",
                  "clip_text_enc.pt": "clip-text"}
DIFFUSION_OPTIONS = ("diffusion_steps", "noise_schedule", "timestep_respacing")


def unet_options(options: Mapping[str, Any], where: str = "options") -> dict[str, Any]:
    """`create_model_and_diffusion` options (missing ones: its defaults) -> all of them, checked by name."""
    unknown = sorted(set(options) - set(_BASE))
    if unknown:
        verb = "is not an option" if len(unknown) == 1 else "are not options"
        raise ConfigError(f"{where}: {', '.join(unknown)} {verb} of create_model_and_diffusion; "
                          f"it takes: {', '.join(sorted(_BASE))}")
    return {**_BASE, **options}


def scheduler_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """The DDPMScheduler config of GLIDE's diffusion options: its beta schedule (the linear one scaled to
    the step count, as `get_named_beta_schedule` scales it), epsilon prediction, learned-range variance,
    x0 clipped to [-1, 1] (the notebooks' clip_denoised=True)."""
    steps = int(options["diffusion_steps"])
    schedule = options["noise_schedule"]
    if schedule == "linear":
        scale = 1000 / steps
        betas = dict(beta_schedule="linear", beta_start=scale * 0.0001, beta_end=scale * 0.02)
    elif schedule == "squaredcos_cap_v2":
        betas = dict(beta_schedule="squaredcos_cap_v2")
    else:
        raise ConfigError(f"noise_schedule {schedule!r} is not one of GLIDE's: 'linear', 'squaredcos_cap_v2'")
    return dict(_class_name="DDPMScheduler", num_train_timesteps=steps, **betas, variance_type="learned_range",
                clip_sample=True, prediction_type="epsilon")


def _unet_config(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in unet_options(options).items() if k not in DIFFUSION_OPTIONS}


_RESBLOCK = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
             "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
_UNET_TOP = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
             "out.0": "norm_out", "out.2": "conv_out", "token_embedding": "transformer.token_embedding",
             "final_ln": "transformer.final_ln", "transformer_proj": "transformer_proj"}
_TEXT_BLOCK = {"attn.c_proj": "attn.to_out.0", "mlp.c_fc": "mlp.net.0.proj", "mlp.c_proj": "mlp.net.2",
               "ln_1": "ln_1", "ln_2": "ln_2"}


def _split_heads(tensor: torch.Tensor, heads: int, parts: int) -> list[torch.Tensor]:
    """A fused projection whose output channels run head by head, [q k v] (or [k v]) within each head, cut
    into one tensor per part with the heads in order (as separate projections hold them)."""
    shape = tensor.shape
    grouped = tensor.reshape(heads, parts, shape[0] // (heads * parts), *shape[1:])
    return [grouped[:, j].reshape(shape[0] // parts, *shape[1:]).contiguous() for j in range(parts)]


def _put_fused(out: dict, key: str, prefix: str, names: tuple[str, ...], leaf: str, tensor: torch.Tensor,
               heads: int | None) -> None:
    """The parts of a fused projection under `prefix.<name>.<leaf>`; a tensor that cannot be cut for this
    model's heads (another model's checkpoint) keeps its key, for the key check to name."""
    if heads is None or tensor.shape[0] % (heads * len(names)):
        out[key] = tensor
        return
    for name, part in zip(names, _split_heads(tensor, heads, len(names))):
        out[f"{prefix}.{name}.{leaf}"] = part


def _conv1d_as_linear(tensor: torch.Tensor) -> torch.Tensor:
    return tensor[..., 0] if tensor.ndim == 3 else tensor


def unet_state_dict(official: Mapping[str, torch.Tensor], model: GlideText2ImUNet) -> dict[str, torch.Tensor]:
    """The official Text2ImUNet keys renamed onto `model`'s (whose attention blocks give the head counts)."""
    modules = dict(model.named_modules())
    out: dict[str, torch.Tensor] = {}
    for key, tensor in official.items():
        stem, _, leaf = key.rpartition(".")
        if key in ("positional_embedding", "padding_embedding"):
            out[f"transformer.{key}"] = tensor
        elif stem in _UNET_TOP:
            out[f"{_UNET_TOP[stem]}.{leaf}"] = tensor
        elif match := re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)", stem):
            prefix, rest = f"transformer.resblocks.{match.group(1)}", match.group(2)
            if rest == "attn.c_qkv":
                heads = getattr(modules.get(f"{prefix}.attn"), "heads", None)
                _put_fused(out, key, f"{prefix}.attn", ("to_q", "to_k", "to_v"), leaf, tensor, heads)
            elif rest in _TEXT_BLOCK:
                out[f"{prefix}.{_TEXT_BLOCK[rest]}.{leaf}"] = tensor
            else:
                out[key] = tensor  # left for the key check to name
        elif match := re.fullmatch(r"((?:input_blocks|output_blocks)\.\d+\.\d+|middle_block\.\d+)(?:\.(.+))?", stem):
            layer, rest = match.group(1), match.group(2)
            heads = getattr(modules.get(layer), "heads", None)
            if rest in _RESBLOCK:
                out[f"{layer}.{_RESBLOCK[rest]}.{leaf}"] = tensor
            elif rest == "norm":
                out[f"{layer}.group_norm.{leaf}"] = tensor
            elif rest == "qkv":
                _put_fused(out, key, layer, ("to_q", "to_k", "to_v"), leaf, _conv1d_as_linear(tensor), heads)
            elif rest == "encoder_kv":
                _put_fused(out, key, layer, ("add_k_proj", "add_v_proj"), leaf, _conv1d_as_linear(tensor), heads)
            elif rest == "proj_out":
                out[f"{layer}.to_out.0.{leaf}"] = _conv1d_as_linear(tensor)
            elif rest == "op":  # a strided-convolution downsampler
                out[f"{layer}.conv.{leaf}"] = tensor
            else:  # the first convolution (rest None) and an upsampler's `conv` keep their names
                out[key] = tensor
        else:
            out[key] = tensor
    return out


def _clip_block(rest: str, leaf: str) -> str | None:
    names = {"f_attn.ln": "norm1", "f_attn.f_q": "attn.to_q", "f_attn.f_k": "attn.to_k", "f_attn.f_v": "attn.to_v",
             "f_attn.f_c": "attn.to_out.0", "f_mlp.ln": "norm2", "f_mlp.f_1": "ff.net.0.proj", "f_mlp.f_2": "ff.net.2"}
    leaves = {"g": "weight", "b": "bias", "w": "weight"}
    if rest not in names or leaf not in leaves:
        return None
    return f"{names[rest]}.{leaves[leaf]}"


def clip_state_dict(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official CLIP encoder keys (`blocks.input...`, `blocks.block_N...`, `blocks.output...`) renamed;
    the key projections, which have no bias in the release, get a zero one."""
    fixed = {"blocks.input.w_voc": "token_embedding.weight", "blocks.input.w_pos": "position_embedding",
             "blocks.input.patch_proj": "patch_embedding.weight", "blocks.input.w_t": "timestep_embedding.weight",
             "blocks.input.pred_state": "class_embedding", "blocks.input.ln.g": "pre_norm.weight",
             "blocks.input.ln.b": "pre_norm.bias", "blocks.output.ln.g": "final_norm.weight",
             "blocks.output.ln.b": "final_norm.bias", "blocks.output.f.w": "projection.weight"}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in official.items():
        if key in fixed:
            out[fixed[key]] = tensor
            continue
        match = re.fullmatch(r"blocks\.block_(\d+)\.(.+)\.(\w+)", key)
        name = _clip_block(match.group(2), match.group(3)) if match else None
        if name is None:
            out[key] = tensor  # left for the key check to name
            continue
        out[f"layers.{match.group(1)}.{name}"] = tensor
        if name == "attn.to_k.weight":
            out[f"layers.{match.group(1)}.attn.to_k.bias"] = torch.zeros(tensor.shape[0], dtype=tensor.dtype)
    return out


def build_model(preset: str | None = None, options: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The dgraph model for a preset or for explicit options, on the meta device (no memory, no init)."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown GLIDE preset {preset!r}; known: {', '.join(PRESETS)}")
    with torch.device("meta"):
        if preset in ("clip-image", "clip-text"):
            cls = GlideCLIPImageEncoder if preset == "clip-image" else GlideCLIPTextEncoder
            return cls(**{**PRESETS[preset], **(options or {})})
        chosen = {**PRESETS[preset or "base"], **(options or {})}
        return GlideText2ImUNet(**_unet_config(chosen))


def _kind(options: Mapping[str, Any] | None) -> str | None:
    """Which CLIP encoder a set of options describes, if any (its constructor keys say which)."""
    keys = set(options or ())
    if "patch_size" in keys or "n_timestep" in keys:
        return "clip-image"
    if "n_bpe_vocab" in keys or "max_text_len" in keys:
        return "clip-text"
    return None


def convert_glide(checkpoint: dict[str, Any], preset: str | None = None,
                  options: Mapping[str, Any] | None = None) -> tuple[torch.nn.Module, list[str]]:
    """Build the model a released (or `options`-built) GLIDE checkpoint holds and load it exactly."""
    official = tensors_only(checkpoint)
    if preset is None:
        preset = _kind(options)
    if preset is None and options is None:
        raise ConfigError(f"a GLIDE checkpoint holds no record of its options: name the released preset "
                          f"({', '.join(PRESETS)}) or give the create_model_and_diffusion options")
    model = build_model(preset, options)
    renamed = unet_state_dict(official, model) if isinstance(model, GlideText2ImUNet) else clip_state_dict(official)
    expected = model.state_dict()
    missing = sorted(expected.keys() - renamed.keys())
    unexpected = sorted(renamed.keys() - expected.keys())
    wrong = [f"{k}: {tuple(renamed[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in renamed and renamed[k].shape != v.shape]
    if missing or unexpected or wrong:
        what = f"preset {preset!r}" if options is None else "the given options"
        raise WeightsError(f"the checkpoint does not fit the GLIDE model of {what}: missing {missing[:8]}"
                           f"{' ...' if len(missing) > 8 else ''}; unexpected {unexpected[:8]}"
                           f"{' ...' if len(unexpected) > 8 else ''}; shape mismatches {wrong[:8]}. Pick the "
                           f"preset of the released file ({', '.join(f'{f}: {p}' for f, p in RELEASED_FILES.items())}) "
                           f"or pass the options that built it")
    model.load_state_dict({k: renamed[k].contiguous() for k in expected}, strict=True, assign=True)
    return model, []


def write_glide_extras(model: torch.nn.Module, folder: Path, preset: str | None = None,
                       options: Mapping[str, Any] | None = None) -> None:
    """Beside a converted UNet: its tokenizer (padding to text_ctx) and its diffusion (the preset's or the
    options' diffusion_steps and noise_schedule) as scheduler_config.json; beside the CLIP text encoder:
    CLIP's tokenizer (padding to max_text_len)."""
    if isinstance(model, GlideText2ImUNet):
        write_tokenizer(folder, "glide", int(model.config.text_ctx))
        chosen = unet_options({**(PRESETS[preset] if preset else {}), **(options or {})})
        write_text_atomic(folder / "scheduler_config.json", json.dumps(scheduler_config(chosen), indent=2) + "\n")
    elif isinstance(model, GlideCLIPTextEncoder):
        write_tokenizer(folder, "clip", int(model.config.max_text_len))
