"""workflows/ddpm.yaml and workflows/ddim.yaml against diffusers, on a small random UNet saved by diffusers
in the layout of google/ddpm-cifar10-32 (model and scheduler config in one folder)."""
from __future__ import annotations

import re
from pathlib import Path

import diffusers
import pytest
import torch

from dgraph.graph import Graph
from dgraph.node import derive_seed

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


@pytest.fixture(scope="module")
def ddpm_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddpm")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                                 block_out_channels=(16, 32), norm_num_groups=8,
                                 down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    unet.save_pretrained(folder)
    diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=True, variance_type="fixed_small").save_pretrained(folder)
    return folder


def _graph(name: str, folder: Path) -> Graph:
    graph = Graph.load(WORKFLOWS / name)
    graph.set("unet.source", str(folder))
    graph.set("scheduler.config", str(folder))
    return graph


def test_ddim_workflow_equals_diffusers_pipeline(ddpm_folder):
    graph = _graph("ddim.yaml", ddpm_folder)
    ours = graph.execute(outputs=["image"], seed=3, steps=10, batch_size=2).image
    unet = diffusers.UNet2DModel.from_pretrained(ddpm_folder)
    scheduler = diffusers.DDIMScheduler.from_pretrained(ddpm_folder)
    pipe = diffusers.DDIMPipeline(unet=unet, scheduler=scheduler)
    generator = torch.Generator().manual_seed(derive_seed(3, "noise"))
    theirs = pipe(batch_size=2, generator=generator, num_inference_steps=10, eta=0.0, output_type="np").images
    ours_np = (ours.tensor / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert ours.value_range == (-1.0, 1.0)
    assert abs(ours_np - theirs).max() < 1e-4


def test_ddpm_workflow_equals_diffusers_components(ddpm_folder):
    graph = _graph("ddpm.yaml", ddpm_folder)
    ours = graph.execute(outputs=["image"], seed=5, steps=20).image.tensor
    # diffusers' DDPMPipeline loop, with dgraph's two seeded generators (initial noise, sampler noise)
    unet = diffusers.UNet2DModel.from_pretrained(ddpm_folder)
    scheduler = diffusers.DDPMScheduler.from_pretrained(ddpm_folder)
    scheduler.set_timesteps(20)
    x = torch.randn((1, 3, 16, 16), generator=torch.Generator().manual_seed(derive_seed(5, "noise")))
    step_generator = torch.Generator().manual_seed(derive_seed(5, "sample"))
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x, generator=step_generator).prev_sample
    assert (ours - x).abs().max() < 1e-4


def test_second_run_with_new_seed_loads_nothing(ddpm_folder):
    graph = _graph("ddim.yaml", ddpm_folder)
    graph.execute(outputs=["image"], seed=1, steps=2)
    events = []
    graph.execute(outputs=["image"], seed=2, steps=2, on_event=events.append)
    assert [e.node for e in events if e.kind == "node-cached"] == ["scheduler", "unet", "denoiser"]
    assert [e.node for e in events if e.kind == "node-start"] == ["noise", "sample", "image"]


def test_ctrl_c_stops_between_steps_and_writes_nothing(ddpm_folder, tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "dgraph", "run", str(WORKFLOWS / "ddpm.yaml"), "--set", f"unet.source={ddpm_folder}",
         "--set", f"scheduler.config={ddpm_folder}", "--steps", "1000", "-o", str(out)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:  # the plain progress lines: one per finished node
        lines.append(line)
        if " noise " in line:  # the sampling loop is next
            process.send_signal(signal.SIGINT)
            break
    stdout, rest = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(lines) + rest
    assert "cancelling at the next step" in rest
    # the signal lands just before or during the sampling loop; either way nothing after it runs
    assert re.search(r"cancelled: (cancelled|interrupted) (before|during) node 'sample'", rest), rest
    assert not out.exists() or not any(out.iterdir())
