"""Single-file checkpoints in the original Stable Diffusion layouts (SD 1.x, 2.x, SDXL base and refiner,
their inpainting variants), read lazily from safetensors, one component at a time.

    from dgraph.models import load_model
    unet = load_model("dreamshaper_8.safetensors", expect=("UNet2DConditionModel",))
    vae = load_model("sd_xl_base_1.0.safetensors#vae")
    text_encoder_2 = load_text_encoder("sd_xl_base_1.0.safetensors#text_encoder_2")   # dgraph.text

`architecture.py` tells the family from tensor names and shapes; `unet.py`, `vae.py` and `clip.py` hold each
layout's config inference and key map; `load.py` builds the component and reads its tensors alone.
"""
from .architecture import COMPONENTS, Architecture, detect, describe
from .load import (Component, ComponentPlan, checkpoint_path, load_component, plan_component, read_architecture,
                   read_component)
from .reader import Checkpoint, refuse_pickle

__all__ = ["COMPONENTS", "Architecture", "Checkpoint", "Component", "ComponentPlan", "plan_component", "read_component", "checkpoint_path", "describe", "detect", "load_component",
           "read_architecture", "refuse_pickle"]
