"""GLIDE (Nichol et al. 2022) from its official release: the text-conditional UNet with its own text
transformer (also for super-resolution and inpainting) and the noised CLIP encoders of CLIP guidance."""
from .clip import GlideCLIPImageEncoder, GlideCLIPTextEncoder
from .unet import GlideText2ImUNet

__all__ = ["GlideText2ImUNet", "GlideCLIPImageEncoder", "GlideCLIPTextEncoder"]
