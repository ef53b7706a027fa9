"""Configs that would hang or allocate tens of GB are refused before anything is built."""
from __future__ import annotations

import time

import pytest

from dgraph.errors import ConfigError
from dgraph.models import PriorTransformer, UnCLIPTextProjModel
from dgraph.models.unet_2d import UNet2DModel
from dgraph.schedulers import DDPMScheduler


@pytest.mark.parametrize("cls, key, value, shown", [
    (UNet2DModel, "layers_per_block", 1_000_000, "1000000"),
    (UNet2DModel, "block_out_channels", [64, 10_000_000], "[64, 10000000]"),
    (UNet2DModel, "sample_size", float("nan"), "nan"),
    (DDPMScheduler, "num_train_timesteps", 1e10, "10000000000.0"),
    (PriorTransformer, "num_embeddings", 10 ** 9, "1000000000"),
    (UnCLIPTextProjModel, "clip_extra_context_tokens", 10 ** 7, "10000000"),
])
def test_sizes_over_their_bound_are_refused_at_once(cls, key, value, shown):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        cls.from_config({key: value})
    assert str(caught.value).startswith(f"{cls.__name__}: config key {key} = {shown} is over the limit of ")
    assert time.perf_counter() - started < 1.0


def test_real_sizes_pass():
    scheduler = DDPMScheduler.from_config({"num_train_timesteps": 1000})
    assert scheduler.config.num_train_timesteps == 1000
