"""unCLIP's sampler against diffusers' UnCLIPScheduler: its schedule, both variance types, both prediction
types, the step to a chosen previous timestep, and a run (which steps to its next timestep as the pipelines do)."""
from __future__ import annotations

import diffusers
import pytest
import torch

from dgraph.errors import ConfigError
from dgraph.schedulers import UnCLIPScheduler, load_scheduler


@pytest.mark.parametrize("steps", [2, 7, 25, 1000])
def test_timesteps_equal_diffusers(steps):
    theirs = diffusers.UnCLIPScheduler()
    theirs.set_timesteps(steps)
    run = UnCLIPScheduler().start(steps)
    assert run.timesteps.tolist() == theirs.timesteps.tolist()
    assert run.timesteps[0] == 999 and run.timesteps[-1] == 0


def _model(channels: int):
    """A smooth fake network: epsilon (and a variance in [-1, 1] when `channels` is doubled) from x and t."""
    def model(x, t):
        eps = torch.tanh(x * 0.7 + float(t) / 1000)
        if channels == 2 * x.shape[1]:
            return torch.cat([eps, torch.sin(x + float(t) / 300)], dim=1)
        return eps
    return model


CASES = [dict(), dict(variance_type="learned_range"), dict(prediction_type="sample", clip_sample_range=5.0),
         dict(clip_sample=False, num_train_timesteps=500)]


@pytest.mark.parametrize("config", CASES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (3, 6)])  # images, and the prior's embeddings
def test_a_pipeline_loop_equals_diffusers(config, shape):
    theirs, mine = diffusers.UnCLIPScheduler(**config), UnCLIPScheduler(**config)
    learned = config.get("variance_type") == "learned_range"
    model = _model(2 * shape[1] if learned else shape[1])
    start = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    theirs.set_timesteps(9)
    generator, x = torch.Generator().manual_seed(3), start
    timesteps = theirs.timesteps
    for i, t in enumerate(timesteps):  # UnCLIPPipeline's loop
        prev = None if i + 1 == len(timesteps) else timesteps[i + 1]
        x = theirs.step(model(x, t), t, x, prev_timestep=prev, generator=generator).prev_sample

    run = mine.start(9)
    generator, y = torch.Generator().manual_seed(3), start
    for t in run.timesteps:
        y = run.step(model(y, t), t, y, generator=generator).prev_sample
    assert x.abs().mean() > 0.1
    assert (x - y).abs().max() < 1e-6

    mine.set_timesteps(9)  # the diffusers-style calls, in diffusers' argument order
    generator, z = torch.Generator().manual_seed(3), start
    for i, t in enumerate(mine.timesteps):
        prev = None if i + 1 == len(mine.timesteps) else mine.timesteps[i + 1]
        z = mine.step(model(z, t), t, z, prev, generator).prev_sample
    assert torch.equal(y, z)


def test_before_set_timesteps_it_steps_over_every_training_step_like_diffusers():
    theirs, mine = diffusers.UnCLIPScheduler(num_train_timesteps=50), UnCLIPScheduler(num_train_timesteps=50)
    assert mine.timesteps.tolist() == theirs.timesteps.tolist()
    model, x = _model(3), torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    y = x
    g, h = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    for t in theirs.timesteps:
        x = theirs.step(model(x, t), t, x, generator=g).prev_sample
        y = mine.step(model(y, t), t, y, generator=h).prev_sample
    assert (x - y).abs().max() < 1e-6


def test_config_files_in_both_directions(tmp_path):
    diffusers.UnCLIPScheduler(variance_type="learned_range", clip_sample_range=2.0).save_pretrained(tmp_path / "d")
    mine = load_scheduler(str(tmp_path / "d"))
    assert isinstance(mine, UnCLIPScheduler) and mine.config.clip_sample_range == 2.0
    mine.save_pretrained(tmp_path / "o")
    assert diffusers.UnCLIPScheduler.from_pretrained(tmp_path / "o").config.variance_type == "learned_range"


def test_what_it_refuses():
    with pytest.raises(ConfigError) as error:
        UnCLIPScheduler(beta_schedule="linear")
    assert str(error.value) == ("UnCLIPScheduler: beta_schedule='linear' is not supported; use one of "
                                "'squaredcos_cap_v2'")
    with pytest.raises(ConfigError) as error:
        UnCLIPScheduler().start(1)
    assert str(error.value) == ("UnCLIPScheduler: num_inference_steps=1 must lie in [2, 1000] (its schedule always "
                                "holds both t = 999 and t = 0)")
    run = UnCLIPScheduler(variance_type="learned_range").start(3)
    with pytest.raises(ConfigError) as error:
        run.step(torch.zeros(1, 3), run.timesteps[0], torch.zeros(1, 3))
    assert "needs a model output with twice the sample's channels" in str(error.value)


def test_the_node_reads_a_config_and_overrides_it(tmp_path):
    from dgraph.graph import Graph

    diffusers.UnCLIPScheduler(prediction_type="sample", clip_sample_range=5.0).save_pretrained(tmp_path)
    graph = Graph.load({"dgraph": 1, "nodes": {"s": {"type": "scheduler.unclip", "inputs": {
        "config": str(tmp_path), "variance_type": "learned_range"}}}, "outputs": {"s": "@s.scheduler"}})
    scheduler = graph.execute().s
    assert isinstance(scheduler, UnCLIPScheduler)
    assert (scheduler.config.prediction_type, scheduler.config.clip_sample_range,
            scheduler.config.variance_type) == ("sample", 5.0, "learned_range")
