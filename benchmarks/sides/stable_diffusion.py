"""Stable Diffusion 1.x-like and SDXL-like text-to-image on small random weights saved as diffusers pipeline
folders: dgraph's graph of the folder against diffusers' StableDiffusionPipeline / StableDiffusionXLPipeline.

Equal work on both sides: each call a new prompt and a new seed; the latents are drawn as dgraph draws them
(from the seed and the noise node's name) and handed to diffusers, so the images agree. The components are
those of the parity tests (tests/workflows/sd_components.py), widened so that the UNet's compute, not the
per-call overhead alone, is measured.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from .calls import calls, graph_noise

STEPS, SIZE, SCALE = 10, 64, 7.0
LATENTS = (1, 4, SIZE // 8, SIZE // 8)  # the initial noise's shape
PROMPTS = ["a photo of a red fox", "the sea at night", "a blurry photo of the sea", "a red fox at night"]
# The tiny CLIP tokenizer and component builders live with the parity tests; one copy of them.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "workflows"))


def _vae(seed: int, scaling_factor: float):
    import diffusers

    torch.manual_seed(seed)
    return diffusers.AutoencoderKL(block_out_channels=(32, 64, 64, 64), layers_per_block=1, latent_channels=4,
                                   down_block_types=("DownEncoderBlock2D",) * 4,
                                   up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=scaling_factor)


_UNET = dict(sample_size=SIZE // 8, in_channels=4, out_channels=4, layers_per_block=1,
             block_out_channels=(64, 128, 128), attention_head_dim=8,
             down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
             up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))


def prepare_sd(folder: Path) -> dict:
    import diffusers
    import sd_components as parts

    pipe = diffusers.StableDiffusionPipeline(
        vae=_vae(0, 0.18215), text_encoder=parts.clip_text(1, 128, layers=4), tokenizer=parts.clip_tokenizer(),
        unet=parts.unet(2, **_UNET, cross_attention_dim=128),
        scheduler=diffusers.PNDMScheduler(skip_prk_steps=True, steps_offset=1, **parts.SD_BETAS),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "sd", safe_serialization=True)
    return {"folder": str(folder / "sd")}


def prepare_sdxl(folder: Path) -> dict:
    import diffusers
    import sd_components as parts

    unet = dict(_UNET, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), use_linear_projection=True,
                transformer_layers_per_block=[1, 1, 2], cross_attention_dim=64 + 128, addition_embed_type="text_time",
                addition_time_embed_dim=32, projection_class_embeddings_input_dim=6 * 32 + 64)
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=_vae(3, 0.13025), text_encoder=parts.clip_text(4, 64, layers=4),
        text_encoder_2=parts.clip_text(5, 128, projection=64, layers=4, act="gelu"),
        tokenizer=parts.clip_tokenizer(), tokenizer_2=parts.clip_tokenizer("!"), unet=parts.unet(6, **unet),
        scheduler=diffusers.EulerDiscreteScheduler(steps_offset=1, timestep_spacing="leading", **parts.SD_BETAS))
    pipe.save_pretrained(folder / "sdxl", safe_serialization=True)
    return {"folder": str(folder / "sdxl")}


def dgraph_side(folder: str):
    from dgraph.graph import Graph

    graph = Graph.from_pretrained(folder)

    def run(prompt: str, seed: int):
        image = graph.execute(outputs=["image"], prompt=prompt, seed=seed, steps=STEPS, guidance_scale=SCALE,
                              height=SIZE, width=SIZE).image
        return image.to_range(0.0, 1.0).tensor.clamp(0, 1)
    return calls(run, PROMPTS)


def diffusers_side(folder: str, xl: bool = False):
    import diffusers

    cls = diffusers.StableDiffusionXLPipeline if xl else diffusers.StableDiffusionPipeline
    pipe = cls.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)

    def run(prompt: str, seed: int):
        return pipe(prompt, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=SCALE,
                    latents=graph_noise(seed, LATENTS), output_type="pt").images
    return calls(run, PROMPTS)
