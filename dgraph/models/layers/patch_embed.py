"""Image patches as tokens: a strided convolution and fixed 2D sin-cos position embeddings (ViT, DiT, PixArt)."""
from __future__ import annotations

import torch
from torch import nn


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(len(positions), dim) features [sin(p·ω) | cos(p·ω)] with ω_i = 10000^(-i / (dim/2)).

    The frequencies are float64, as in the reference implementation, so the result matches it to the last bit
    of float32 before it is rounded.
    """
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    phases = torch.outer(positions.reshape(-1), omega)
    return torch.cat([torch.sin(phases), torch.cos(phases)], dim=1)


def sincos_2d(dim: int, rows: int, columns: int, base_size: int, interpolation_scale: float = 1.0,
              device: torch.device | None = None) -> torch.Tensor:
    """(rows·columns, dim) position embeddings of a token grid, row-major.

    Coordinates are rescaled so that a grid of `base_size` patches spans 0..base_size (a larger grid at
    inference is interpolated, not extrapolated), then divided by `interpolation_scale`. The first half
    of the channels encodes the column, the second half the row.
    """
    row_pos = torch.arange(rows, dtype=torch.float32, device=device) / (rows / base_size) / interpolation_scale
    col_pos = torch.arange(columns, dtype=torch.float32, device=device) / (columns / base_size) / interpolation_scale
    col_grid = col_pos[None, :].expand(rows, columns)
    row_grid = row_pos[:, None].expand(rows, columns)
    return torch.cat([sincos_1d(dim // 2, col_grid), sincos_1d(dim // 2, row_grid)], dim=1)


class PatchEmbed(nn.Module):
    """proj: a patch_size×patch_size convolution with that stride; (B, C, H, W) -> (B, H/p · W/p, embed_dim)
    plus the sin-cos position embedding of the token grid."""

    def __init__(self, height: int, width: int, patch_size: int, in_channels: int, embed_dim: int,
                 interpolation_scale: float = 1.0):
        super().__init__()
        self.patch_size = patch_size
        self.base_size = height // patch_size
        self.interpolation_scale = interpolation_scale
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size, bias=True)
        # The position embedding is a function of the grid, not a weight: computed on first use per grid
        # (not a buffer, so loading on the meta device has nothing to fill in).
        self._positions: dict[tuple, torch.Tensor] = {}

    def position_embedding(self, rows: int, columns: int, device: torch.device) -> torch.Tensor:
        key = (rows, columns, str(device))
        if key not in self._positions:
            self._positions[key] = sincos_2d(self.proj.out_channels, rows, columns, self.base_size,
                                             self.interpolation_scale, device).float().unsqueeze(0)
        return self._positions[key]

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        height, width = latent.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"a {height}x{width} latent does not divide into {self.patch_size}x{self.patch_size} "
                             f"patches; make the image size a multiple of the patch size times the VAE's factor")
        rows, columns = height // self.patch_size, width // self.patch_size
        tokens = self.proj(latent).flatten(2).transpose(1, 2)
        # contiguous: half-precision matmuls round differently on a transposed layout.
        return (tokens + self.position_embedding(rows, columns, latent.device)).to(tokens.dtype).contiguous()


def unpatchify(tokens: torch.Tensor, rows: int, columns: int, patch_size: int, channels: int) -> torch.Tensor:
    """(B, rows·columns, p·p·C) tokens back to a (B, C, rows·p, columns·p) image."""
    batch = tokens.shape[0]
    grid = tokens.reshape(batch, rows, columns, patch_size, patch_size, channels)
    return grid.permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, rows * patch_size, columns * patch_size)
