"""The text encoders of a single file as transformers' CLIPTextModel / CLIPTextModelWithProjection.

Two original layouts:

- transformers' own (`cond_stage_model.transformer.text_model.*`, SDXL's `conditioner.embedders.0.transformer.*`):
  only the prefix goes (and `text_model.` too, for a CLIPTextModel that transformers keeps flat);
- OpenCLIP's (`cond_stage_model.model.*`, `conditioner.embedders.{0,1}.model.*`):

      token_embedding / positional_embedding / ln_final   embeddings.token_embedding / position_embedding / final_layer_norm
      transformer.resblocks.{i}.ln_1 / ln_2               encoder.layers.{i}.layer_norm1 / layer_norm2
      transformer.resblocks.{i}.mlp.c_fc / c_proj          encoder.layers.{i}.mlp.fc1 / fc2
      transformer.resblocks.{i}.attn.in_proj_{weight,bias} self_attn.q_proj / k_proj / v_proj (split in three)
      transformer.resblocks.{i}.attn.out_proj              self_attn.out_proj
      text_projection (width, projection)                  text_projection.weight, transposed

SD 2.x conditions on OpenCLIP's penultimate layer, so its text encoder keeps every layer but the last
(diffusers' CLIPTextModel of 2.x has 23 of the 24) and no projection; SDXL's bigG keeps all its layers and
its projection (CLIPTextModelWithProjection; the pipeline reads the penultimate hidden state itself).
`logit_scale` and a saved `position_ids` are not weights of the text model and are dropped.

Not in the shapes: a head width of 64 (ViT-L: 12 heads, ViT-H: 16, bigG: 20), the activation (quick_gelu
for OpenAI's CLIP, gelu for OpenCLIP's), and the token ids of the released configs (bos 0, eos 2, pad 1).
"""
from __future__ import annotations

import re
from typing import Any, Callable

import torch

from ...errors import WeightsError
from .architecture import Shapes

_DROPPED = ("logit_scale", "text_model.embeddings.position_ids", "embeddings.position_ids")
_OPEN_CLIP_FLAT = {"token_embedding.weight": "text_model.embeddings.token_embedding.weight",
                   "positional_embedding": "text_model.embeddings.position_embedding.weight",
                   "ln_final.weight": "text_model.final_layer_norm.weight",
                   "ln_final.bias": "text_model.final_layer_norm.bias"}
_OPEN_CLIP_LAYER = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
                    "attn.out_proj": "self_attn.out_proj"}
_RESBLOCK = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)")
_IN_PROJ = re.compile(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)")
_HF_LAYER = re.compile(r"text_model\.encoder\.layers\.(\d+)\.")
HEAD_WIDTH = 64

# A value to put under a diffusers key: the original key and what to do to its tensor.
Plan = dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]]


def _same(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def clip_config(shapes: Shapes, layout: str, component: str, family: str, where: str) -> tuple[str, dict[str, Any]]:
    """(transformers class name, CLIPTextConfig arguments) for a text encoder's prefix-free tensor shapes."""
    try:
        if layout == "clip":
            token = shapes["text_model.embeddings.token_embedding.weight"]
            positions = shapes["text_model.embeddings.position_embedding.weight"][0]
            layers = len({m.group(1) for key in shapes if (m := _HF_LAYER.match(key))})
            intermediate = shapes["text_model.encoder.layers.0.mlp.fc1.weight"][0]
            projection = shapes.get("text_projection.weight", (token[1],))[0]
            act = "quick_gelu"
        else:
            token = shapes["token_embedding.weight"]
            positions = shapes["positional_embedding"][0]
            layers = len({m.group(1) for key in shapes if (m := _RESBLOCK.match(key))})
            intermediate = shapes["transformer.resblocks.0.mlp.c_fc.weight"][0]
            projection = shapes.get("text_projection", (token[1], token[1]))[1]
            act = "gelu"
    except KeyError as error:
        raise WeightsError(f"{where}: the {component} has no tensor {error.args[0]!r}; is the file complete?") from None
    with_projection = layout == "open_clip" and family != "sd2"
    if layout == "open_clip" and family == "sd2":
        layers -= 1  # SD 2.x reads the penultimate layer: the last one is never used
    width = token[1]
    if width % HEAD_WIDTH:
        raise WeightsError(f"{where}: the {component} is {width} wide, not a multiple of the head width {HEAD_WIDTH}")
    config = {"vocab_size": token[0], "hidden_size": width, "intermediate_size": intermediate,
              "projection_dim": projection, "num_hidden_layers": layers, "num_attention_heads": width // HEAD_WIDTH,
              "max_position_embeddings": positions, "hidden_act": act, "layer_norm_eps": 1e-5,
              "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}
    return ("CLIPTextModelWithProjection" if with_projection else "CLIPTextModel"), config


def clip_plan(keys: list[str], layout: str, layers: int, width: int, projection: bool) -> tuple[Plan, list[str]]:
    """Where each diffusers key (in the `text_model.*` layout) comes from, and the original keys that have
    no place in the model (returned so they can be named). `layers`: how many layers the model keeps;
    `projection`: whether it keeps the text projection."""
    plan: Plan = {}
    unused: list[str] = []
    for key in keys:
        if key in _DROPPED:
            continue
        if layout == "clip":
            layer = _HF_LAYER.match(key)
            if layer and int(layer.group(1)) >= layers:
                continue
            plan[key] = (key, _same)
            continue
        if key in _OPEN_CLIP_FLAT:
            plan[_OPEN_CLIP_FLAT[key]] = (key, _same)
        elif key == "text_projection":
            if not projection:
                continue
            plan["text_projection.weight"] = (key, lambda t: t.T.contiguous())
        elif (match := _IN_PROJ.fullmatch(key)):
            layer, leaf = int(match.group(1)), match.group(2)
            if layer >= layers:
                continue
            for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
                plan[f"text_model.encoder.layers.{layer}.self_attn.{name}.{leaf}"] = (
                    key, lambda t, i=i: t[i * width:(i + 1) * width].contiguous())
        elif (match := _RESBLOCK.fullmatch(key)) and match.group(2) in _OPEN_CLIP_LAYER:
            layer = int(match.group(1))
            if layer >= layers:
                continue
            plan[f"text_model.encoder.layers.{layer}.{_OPEN_CLIP_LAYER[match.group(2)]}.{match.group(3)}"] = (key, _same)
        else:
            unused.append(key)
    return plan, unused
