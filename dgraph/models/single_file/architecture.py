"""Which Stable Diffusion a single-file checkpoint holds, told from its tensors' names and shapes alone.

The original (CompVis / Stability) layouts keep every component of a pipeline in one file, under a prefix:

    model.diffusion_model.*              the UNet (openaimodel's input_blocks / middle_block / output_blocks)
    first_stage_model.*                  the KL autoencoder (encoder.down / decoder.up / mid.attn_1)
    cond_stage_model.transformer.*       SD 1.x: CLIP ViT-L/14, already in transformers' layout
    cond_stage_model.model.*             SD 2.x: OpenCLIP ViT-H/14 (resblocks, fused in_proj)
    conditioner.embedders.0.transformer.*  SDXL base: CLIP ViT-L/14          (diffusers' text_encoder)
    conditioner.embedders.1.model.*        SDXL base: OpenCLIP ViT-bigG/14   (diffusers' text_encoder_2)
    conditioner.embedders.0.model.*        SDXL refiner: OpenCLIP ViT-bigG/14 only (text_encoder_2)

The family follows from the text encoders' prefixes (or, in a file holding only a UNet, from its
cross-attention width: 768 SD 1.x, 1024 SD 2.x, 2048 SDXL base, 1280 the refiner); inpainting from the
UNet's 9 input channels. Weights cannot tell what the UNet predicts: SD 2.x is taken as v-prediction (the
768-v 2.1 model, as diffusers' `from_single_file` assumes), its inpainting model and every other family as
epsilon; a scheduler's `prediction_type` overrides it. Components are named as in a diffusers pipeline
folder (`unet`, `vae`, `text_encoder`, `text_encoder_2`). This module reads no tensor and needs no torch.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

from ...errors import WeightsError
from ...hub import SINGLE_FILE_COMPONENTS as COMPONENTS

Shapes = Mapping[str, tuple[int, ...]]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
FAMILY_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL base", "sdxl_refiner": "SDXL refiner"}

# family -> {component: (key prefix, text-encoder layout)}; "clip" is transformers' layout, "open_clip" OpenCLIP's.
_TEXT_ENCODERS = {
    "sd1": {"text_encoder": ("cond_stage_model.transformer.", "clip")},
    "sd2": {"text_encoder": ("cond_stage_model.model.", "open_clip")},
    "sdxl": {"text_encoder": ("conditioner.embedders.0.transformer.", "clip"),
             "text_encoder_2": ("conditioner.embedders.1.model.", "open_clip")},
    "sdxl_refiner": {"text_encoder_2": ("conditioner.embedders.0.model.", "open_clip")},
}
# The key that marks each family's text encoder(s), tried in this order.
_MARKERS = (
    ("sdxl", "conditioner.embedders.1.model.positional_embedding"),
    ("sdxl_refiner", "conditioner.embedders.0.model.positional_embedding"),
    ("sd2", "cond_stage_model.model.positional_embedding"),
    ("sd1", "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"),
)
# A UNet alone: its cross-attention width names the family.
_BY_CONTEXT_WIDTH = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl_refiner"}
_CROSS_KEY = "input_blocks.{}.1.transformer_blocks.0.attn2.to_k.weight"
SUPPORTED = ("SD 1.x (CLIP ViT-L under cond_stage_model.transformer.*), SD 2.x (OpenCLIP under "
             "cond_stage_model.model.*), SDXL base (conditioner.embedders.0.transformer.* + "
             "conditioner.embedders.1.model.*) and the SDXL refiner (conditioner.embedders.0.model.*), each with "
             "model.diffusion_model.* and first_stage_model.*, inpainting variants included")


@dataclass(frozen=True)
class Architecture:
    """What a single file holds: its family, whether its UNet inpaints, and where each component's tensors are."""

    family: str  # "sd1", "sd2", "sdxl" or "sdxl_refiner"
    inpainting: bool
    prediction_type: str  # the documented default; weights cannot tell
    components: dict[str, str] = field(default_factory=dict)  # component -> key prefix
    text_layouts: dict[str, str] = field(default_factory=dict)  # text component -> "clip" / "open_clip"

    @property
    def name(self) -> str:
        return FAMILY_NAMES[self.family] + (" inpainting" if self.inpainting else "")

    @property
    def text_encoders(self) -> tuple[str, ...]:
        return tuple(name for name in COMPONENTS if name in self.text_layouts)


def detect(shapes: Shapes, where: str) -> Architecture:
    """The architecture of a checkpoint from its tensor names and shapes; an unrecognised file is a WeightsError
    that says what it holds."""
    family = next((name for name, key in _MARKERS if key in shapes), None)
    if family is None:
        family = _family_from_unet(shapes)
    if family is None:
        raise WeightsError(f"{where}: not a Stable Diffusion single-file checkpoint: {describe(shapes)}. "
                           f"Supported: {SUPPORTED}" + _layout_hint(shapes))
    components = {}
    if any(key.startswith(UNET_PREFIX) for key in shapes):
        components["unet"] = UNET_PREFIX
    if any(key.startswith(VAE_PREFIX) for key in shapes):
        components["vae"] = VAE_PREFIX
    layouts = {}
    for name, (prefix, layout) in _TEXT_ENCODERS[family].items():
        if any(key.startswith(prefix) for key in shapes):
            components[name] = prefix
            layouts[name] = layout
    conv_in = shapes.get(UNET_PREFIX + "input_blocks.0.0.weight")
    inpainting = conv_in is not None and len(conv_in) == 4 and conv_in[1] == 9
    prediction = "v_prediction" if family == "sd2" and not inpainting else "epsilon"
    return Architecture(family, inpainting, prediction, components, layouts)


def _family_from_unet(shapes: Shapes) -> str | None:
    for block in range(1, 12):
        key = UNET_PREFIX + _CROSS_KEY.format(block)
        if key in shapes:
            return _BY_CONTEXT_WIDTH.get(shapes[key][-1])
    return None


def describe(shapes: Shapes, limit: int = 8) -> str:
    """What a file holds, briefly: its tensor count, its commonest key prefixes and a few shapes."""
    if not shapes:
        return "it holds no tensors"
    prefixes = Counter(".".join(key.split(".")[:2]) + ".*" if key.count(".") >= 2 else key for key in shapes)
    common = ", ".join(f"{prefix} ({count})" for prefix, count in prefixes.most_common(limit))
    sample = ", ".join(f"{key} {list(shape)}" for key, shape in list(shapes.items())[:3])
    return f"{len(shapes)} tensors, under {common}; e.g. {sample}"


def _layout_hint(shapes: Shapes) -> str:
    if any(key.startswith(("down_blocks.", "encoder.down_blocks.", "text_model.")) for key in shapes):
        return (". Its keys are in diffusers' layout (one component's weights): point the loader at the folder "
                "that holds it with its config.json instead")
    if any(key.startswith("encoder.down.") for key in shapes) and any(key.startswith("decoder.up.") for key in shapes):
        # Its weights do not say which scaling factor its latents take (SD 1.x/2.x and SDXL autoencoders
        # have the same shapes), so it is not guessed.
        return (". It looks like an autoencoder alone in the original layout (encoder.down.*, decoder.up.*), "
                "which is not read: its scaling factor cannot be told from its weights; use the autoencoder of "
                "a full checkpoint (FILE#vae) or a diffusers vae folder")
    return ""
