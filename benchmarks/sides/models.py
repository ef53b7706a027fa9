"""A conditioned UNet (Stable Diffusion's layout, narrower: 128/256/384/384, 92 M parameters) loaded from
the same safetensors folder and run once, by dgraph and by diffusers; and its warm forward alone."""
from __future__ import annotations

from pathlib import Path

import torch

CONFIG = dict(sample_size=32, in_channels=4, out_channels=4, block_out_channels=[128, 256, 384, 384],
              layers_per_block=2, attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32,
              down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
              up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])


def prepare(folder: Path) -> dict:
    """The UNet with random weights, saved once by diffusers."""
    import diffusers

    torch.manual_seed(0)
    diffusers.UNet2DConditionModel(**CONFIG).save_pretrained(folder / "unet", safe_serialization=True)
    return {"folder": str(folder / "unet")}


def _inputs():
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(1, 4, 32, 32, generator=generator), torch.tensor(500),
            torch.randn(1, 77, 768, generator=generator))


def _model_class(library: str):
    if library == "dgraph":
        from dgraph.models import UNet2DConditionModel
    else:
        from diffusers import UNet2DConditionModel
    return UNet2DConditionModel


def _forward(model, sample, t, context) -> torch.Tensor:
    out = model(sample, t, encoder_hidden_states=context)
    return out if isinstance(out, torch.Tensor) else out.sample


def load_and_forward(folder: str, library: str):
    cls = _model_class(library)
    sample, t, context = _inputs()

    @torch.no_grad()
    def call():
        return _forward(cls.from_pretrained(folder).eval(), sample, t, context)
    return call


def forward(folder: str, library: str):
    model = _model_class(library).from_pretrained(folder).eval()
    sample, t, context = _inputs()
    return torch.no_grad()(lambda: _forward(model, sample, t, context))
