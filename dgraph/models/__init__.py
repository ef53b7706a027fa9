"""Models with diffusers' config and state-dict keys: from_pretrained / save_pretrained / push_to_hub."""
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output
from .unet_2d import UNet2DModel
from .vocoders import DiffWaveModel, FastDiffModel, HiFiGANGenerator
from .unet_2d_condition import UNet2DConditionModel
from .unet_3d_condition import UNet3DConditionModel
from .autoencoder_kl import AutoencoderKL
from .vq_model import VQModel
from .ldm_bert import LDMBertModel
from .bert import BertModel
from .dit_transformer_2d import DiTTransformer2DModel
from .pixart_transformer_2d import PixArtTransformer2DModel
from .glide import GlideCLIPImageEncoder, GlideCLIPTextEncoder, GlideText2ImUNet
from .prior_transformer import PriorTransformer
from .unclip_text_proj import UnCLIPTextProjModel

__all__ = ["ModelMixin", "ModelOutput", "model_output", "UNet2DModel", "UNet2DConditionModel", "UNet3DConditionModel",
           "AutoencoderKL", "VQModel", "LDMBertModel", "BertModel", "FastDiffModel", "DiffWaveModel", "HiFiGANGenerator",
           "DiTTransformer2DModel", "PixArtTransformer2DModel", "PriorTransformer", "UnCLIPTextProjModel",
           "GlideText2ImUNet", "GlideCLIPImageEncoder", "GlideCLIPTextEncoder"]
