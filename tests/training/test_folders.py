"""A recipe writes only inside its root, only into folders a recipe made, resumes only its own checkpoints,
and stops with a clear error when its loss stops being finite."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from dgraph.errors import ConfigError, WeightsError
from dgraph.training import parse_recipe, train
from dgraph.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from dgraph.training.optim import make_optimizer
from dgraph.training.recipe import Optimization
from dgraph.training.trainer import run_loop

VAE = """\
kind: autoencoder
seed: 1
output: vae
data: {{dataset: digits, size: 8}}
model: {{in_channels: 1, out_channels: 1, down_block_types: [DownEncoderBlock2D], up_block_types: [UpDecoderBlock2D],
        block_out_channels: [4], norm_num_groups: 4, latent_channels: 2, sample_size: 8}}
train: {{steps: {steps}, batch_size: 8, learning_rate: 0.01, warmup_steps: 2, checkpoint_every: 100}}
"""


def _recipe(folder: Path, text: str = VAE, steps: int = 1, **changes: str):
    text = text.format(steps=steps)
    for old, new in changes.items():
        text = text.replace(old, new)
    (folder / "recipe.yaml").write_text(text)
    return parse_recipe(text, str(folder / "recipe.yaml"), base=folder)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_existing_model_folder_is_never_written(tmp_path):
    model = tmp_path / "vae"
    model.mkdir()
    (model / "config.json").write_text('{"user": "file"}')
    (model / "diffusion_pytorch_model-00001-of-00002.safetensors").write_bytes(b"shard")
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match=r"^output: .*/vae already holds files a recipe did not write; give a new "
                                          r"or empty folder \(nothing in it is changed\)$"):
        train(_recipe(tmp_path), progress=False, root=tmp_path)
    assert _snapshot(tmp_path) == {**before, "recipe.yaml": (tmp_path / "recipe.yaml").read_bytes()}


def test_a_user_folder_as_checkpoints_is_never_written(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "step-0000001").mkdir()
    (tmp_path / "mine" / "step-0000001" / "thesis.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"^checkpoints: .*/mine already holds files a recipe did not write"):
        train(_recipe(tmp_path, **{"output: vae": "output: vae\ncheckpoints: mine"}), progress=False, root=tmp_path)
    assert (tmp_path / "mine" / "step-0000001" / "thesis.txt").read_text() == "keep me"
    assert not (tmp_path / "vae").exists()


@pytest.mark.parametrize("output", ["../../escape", "/tmp/dgraph-escape-test"])
def test_outputs_stay_inside_the_root(tmp_path, output):
    root = tmp_path / "a" / "b"
    root.mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"^output: .* is outside .*/a/b; a recipe writes only inside the folder"):
        train(_recipe(root, **{"output: vae": f"output: {output}"}), progress=False, root=root)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "recipe.yaml"]


def test_another_recipes_checkpoints_are_refused(tmp_path):
    train(_recipe(tmp_path, steps=2, **{"checkpoint_every: 100": "checkpoint_every: 1"}), progress=False,
          root=tmp_path, stop_after=1)
    assert latest_checkpoint(tmp_path / "vae.checkpoints").name == "step-0000001"
    other = _recipe(tmp_path, steps=2, **{"latent_channels: 2": "latent_channels: 3"})
    with pytest.raises(ConfigError, match=r"^checkpoints: .*/vae.checkpoints holds checkpoints of another recipe"):
        train(other, progress=False, root=tmp_path)
    # The same recipe with more steps is the same run, continued.
    result = train(_recipe(tmp_path, steps=3), progress=False, root=tmp_path)
    assert result.steps == 3 and json.loads((tmp_path / "vae" / "config.json").read_text())["latent_channels"] == 2


def test_a_checkpoint_past_the_recipes_steps_is_refused(tmp_path):
    train(_recipe(tmp_path, steps=4, **{"checkpoint_every: 100": "checkpoint_every: 1"}), progress=False,
          root=tmp_path, stop_after=3)
    with pytest.raises(ConfigError, match=r"^autoencoder: the checkpoint .*step-0000003 is at step 3, past this "
                                          r"recipe's 2 steps; raise train.steps"):
        train(_recipe(tmp_path, steps=2), progress=False, root=tmp_path)


class _Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))


def test_a_non_finite_loss_stops_the_run_and_saves_nothing(tmp_path):
    model = _Exploding()
    opt = Optimization(steps=5, learning_rate=0.1, checkpoint_every=2)

    def loss_fn(generator, step):
        return (model.w.sum() * (float("nan") if step == 3 else 1.0)), {}

    with pytest.raises(ConfigError, match=r"^train: the loss is nan at step 4; lower train.learning_rate or set "
                                          r"train.grad_clip \(the checkpoint step-0000002 is kept; nothing is saved\)$"):
        run_loop(model, opt, 0, tmp_path, torch.device("cpu"), loss_fn, progress=False)
    assert latest_checkpoint(tmp_path).name == "step-0000002"


def test_a_damaged_checkpoint_is_a_clear_error(tmp_path):
    model = _Exploding()
    optimizer = make_optimizer(model, 0.1, 0.0, (0.9, 0.999))
    path = save_checkpoint(tmp_path, 1, model, optimizer)
    (path / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsError, match=r"step-0000001: cannot resume from this checkpoint \(.*\); delete it to "
                                           r"resume from an older one, or delete .* to start over$"):
        load_checkpoint(path, model, optimizer)
    save_checkpoint(tmp_path, 1, model, optimizer)
    (path / "state.json").write_text('{"step": "x", "optimizer": {}}')
    with pytest.raises(WeightsError, match=r"cannot resume from this checkpoint"):
        load_checkpoint(path, model, optimizer)
