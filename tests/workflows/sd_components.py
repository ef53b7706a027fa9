"""Small random Stable Diffusion / SDXL components, built by diffusers and transformers, for parity tests and
benchmarks: a CLIP tokenizer over a tiny vocabulary, CLIP text encoders, UNets, a KL VAE, and the pipelines
saved in diffusers' layout."""
from __future__ import annotations

from pathlib import Path

import diffusers
import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORDS = ("a", "red", "fox", "the", "sea", "at", "night", "photo", "of", "blurry")


def clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """CLIP's byte-level BPE over letters and a few whole words (ids: 0 start, 1 end, 2 "!")."""
    tokens = ["<|startoftext|>", "<|endoftext|>", "!", *_LETTERS, *(c + "</w>" for c in _LETTERS)]
    merges: list[tuple[str, str]] = []
    for word in _WORDS:  # merge each word left to right into one token
        if len(word) == 1:
            continue
        piece = word[0]
        for i, c in enumerate(word[1:], start=1):
            right = c + "</w>" if i == len(word) - 1 else c
            merges.append((piece, right))
            piece = piece + right
            tokens.append(piece)
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)), pad_token=pad_token, model_max_length=77)


VOCAB = len(clip_tokenizer())


def clip_text(seed: int, width: int, projection: int | None = None, layers: int = 3, act: str = "quick_gelu"):
    """A CLIP text encoder (with a projection: SDXL's second encoder)."""
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=VOCAB, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                            num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1, hidden_act=act, projection_dim=projection or width)
    model = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    return model.eval()


def perturbed(model, seed: int, scale: float = 0.1):
    """Random weights everywhere (diffusers zero-initialises some layers), so every path shows in the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return model.eval()


def vae(seed: int, scaling_factor: float = 0.18215, **config) -> diffusers.AutoencoderKL:
    torch.manual_seed(seed)
    return diffusers.AutoencoderKL(block_out_channels=(8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=4,
                                   down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                                   scaling_factor=scaling_factor, sample_size=16, **config).eval()


SD1_UNET = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                norm_num_groups=4, attention_head_dim=2, cross_attention_dim=16,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
# SD 2.x: per-block heads, linear projections, upcast attention; v-prediction in the scheduler.
SD2_UNET = dict(SD1_UNET, attention_head_dim=[2, 4], use_linear_projection=True, upcast_attention=True,
                cross_attention_dim=20, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
# SDXL: a first block without attention, deeper transformers lower down, text_time conditioning: 6 ids of 4
# features beside a pooled text of 12.
SDXL_UNET = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16), layers_per_block=1,
                 norm_num_groups=4, attention_head_dim=[2, 2, 4], use_linear_projection=True,
                 transformer_layers_per_block=[1, 1, 2], cross_attention_dim=36,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 addition_embed_type="text_time", addition_time_embed_dim=4, projection_class_embeddings_input_dim=36)
# The refiner: only the second encoder (20 wide), five ids (sizes, crop and an aesthetic score).
REFINER_UNET = dict(SDXL_UNET, cross_attention_dim=20, projection_class_embeddings_input_dim=5 * 4 + 12)


def unet(seed: int, **config) -> diffusers.UNet2DConditionModel:
    torch.manual_seed(seed)
    return perturbed(diffusers.UNet2DConditionModel(**config), seed + 1)


SD_BETAS = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def sd1_pipeline(folder: Path) -> Path:
    """SD 1.x-like: CLIP ViT-L-style encoder (quick GELU), epsilon, PNDM as SD 1.5 ships it."""
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae(0), text_encoder=clip_text(1, 16), tokenizer=clip_tokenizer(), unet=unet(2, **SD1_UNET),
        scheduler=diffusers.PNDMScheduler(skip_prk_steps=True, steps_offset=1, **SD_BETAS),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def sd2_v_pipeline(folder: Path) -> Path:
    """SD 2.x 768-v-like: OpenCLIP-style encoder (GELU), v-prediction, DDIM as SD 2.1 ships it."""
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae(3), text_encoder=clip_text(4, 20, act="gelu"), tokenizer=clip_tokenizer("!"),
        unet=unet(5, **SD2_UNET),
        scheduler=diffusers.DDIMScheduler(prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False,
                                          steps_offset=1, **SD_BETAS),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _euler() -> diffusers.EulerDiscreteScheduler:
    return diffusers.EulerDiscreteScheduler(steps_offset=1, timestep_spacing="leading", **SD_BETAS)


def sdxl_pipeline(folder: Path) -> Path:
    """SDXL base-like: two encoders (16 + 20 wide, the second projecting to 12), Euler, force_zeros_for_empty_prompt."""
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=vae(6, scaling_factor=0.13025, force_upcast=True), text_encoder=clip_text(7, 16),
        text_encoder_2=clip_text(8, 20, projection=12, act="gelu"), tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer("!"), unet=unet(9, **SDXL_UNET), scheduler=_euler())
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def sd_inpaint_pipeline(folder: Path) -> Path:
    """SD inpainting-like: a 9-channel UNet (latents, mask, masked-image latents), DDIM."""
    pipe = diffusers.StableDiffusionInpaintPipeline(
        vae=vae(10), text_encoder=clip_text(11, 16), tokenizer=clip_tokenizer(),
        unet=unet(12, **dict(SD1_UNET, in_channels=9)),
        scheduler=diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=False, steps_offset=1, **SD_BETAS),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def write_image_and_mask(folder: Path, height: int = 16, width: int = 16, seed: int = 0) -> tuple[Path, Path]:
    """A random RGB picture and a mask whose right part (from 3/8 of the width) and a top strip are white."""
    import numpy as np
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(height, width, 3, generator=generator) * 255).to(torch.uint8).numpy()
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[:, width * 3 // 8:] = 255
    mask[: height // 4, :] = 255
    image_path, mask_path = folder / "picture.png", folder / "mask.png"
    Image.fromarray(pixels).save(image_path)
    Image.fromarray(mask).convert("RGB").save(mask_path)
    return image_path, mask_path


def sdxl_refiner_pipeline(folder: Path, base: Path) -> Path:
    """SDXL refiner-like: only the second encoder (the base's, as the published refiner shares it), a UNet
    reading an aesthetic score, requires_aesthetics_score as the published refiner sets it."""
    pipe = diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=diffusers.AutoencoderKL.from_pretrained(base / "vae"), text_encoder=None,
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(base / "text_encoder_2"), tokenizer=None,
        tokenizer_2=CLIPTokenizer.from_pretrained(base / "tokenizer_2"), unet=unet(13, **REFINER_UNET),
        scheduler=_euler(), requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def sdxl_inpaint_pipeline(folder: Path) -> Path:
    """SDXL inpainting-like: the base's layout with a 9-channel UNet."""
    pipe = diffusers.StableDiffusionXLInpaintPipeline(
        vae=vae(14, scaling_factor=0.13025, force_upcast=True), text_encoder=clip_text(15, 16),
        text_encoder_2=clip_text(16, 20, projection=12, act="gelu"), tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer("!"), unet=unet(17, **dict(SDXL_UNET, in_channels=9)), scheduler=_euler())
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
