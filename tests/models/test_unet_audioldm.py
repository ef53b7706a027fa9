"""UNet2DConditionModel in AudioLDM's layout against diffusers: conditioned only through a projected class
embedding (a CLAP vector per sample), attention blocks that attend to the latents alone (no encoder states)."""
from __future__ import annotations

import diffusers
import pytest
import torch

from dgraph.models import UNet2DConditionModel

from unet_parity import assert_parity, check_parity, one_thread  # noqa: F401 (one_thread: autouse)

AUDIOLDM_LIKE = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                     down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                     up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=2,
                     cross_attention_dim=(8, 16), class_embed_type="simple_projection",
                     projection_class_embeddings_input_dim=6)


def inputs(height: int, width: int) -> dict:
    generator = torch.Generator().manual_seed(5)
    return dict(sample=torch.randn(2, 3, height, width, generator=generator), timestep=torch.tensor([10, 700]),
                encoder_hidden_states=None, class_labels=torch.randn(2, 6, generator=generator))


@pytest.mark.parametrize("concat, size", [(True, (9, 6)), (False, (8, 8))], ids=["concatenated-odd", "added-even"])
def test_class_embedding_only_parity_with_diffusers(concat, size, tmp_path):
    config = dict(AUDIOLDM_LIKE, class_embeddings_concat=concat)
    assert_parity(check_parity(diffusers.UNet2DConditionModel, UNet2DConditionModel, config, inputs(*size), tmp_path))
