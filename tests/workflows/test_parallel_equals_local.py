"""The parallel executor gives bitwise the local executor's outputs on the shipped workflows that run
offline: the bundled digits model and Griffin-Lim on the bundled sample as shipped, and the others over the
small random components their own tests make (DDPM, DDIM, both latent diffusions, FastDiff, DiffWave)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dgraph.engine.parallel import ParallelExecutor
from dgraph.graph import Graph
from dgraph.models import DiffWaveModel
from test_audio_workflows import _fastdiff_folder, _fill, speech  # noqa: F401  (speech: a fixture)
from test_ddpm_ddim import _graph, ddpm_folder  # noqa: F401  (a fixture)
from test_latent_diffusion import text2img, uncond  # noqa: F401  (fixtures)

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def _values(result) -> dict:
    out = {}
    for name, value in result.items():
        tensor = value if isinstance(value, torch.Tensor) else getattr(value, "tensor", None)
        if tensor is None:
            tensor = getattr(value, "waveform", None)
        out[name] = tensor if tensor is not None else value
    return out


def _same(graph: Graph, tmp_path: Path, **inputs) -> None:
    local = _values(graph.execute(executor="local", output_dir=tmp_path / "local", **inputs))
    graph.cache.clear()
    parallel = _values(graph.execute(executor=ParallelExecutor(cpu_workers=2, cpu_threads=2),
                                     output_dir=tmp_path / "parallel", **inputs))
    assert local.keys() == parallel.keys()
    for name in local:
        if isinstance(local[name], torch.Tensor):
            assert torch.equal(local[name], parallel[name]), name
        elif name == "files":  # the same names, each in its own folder, with the same bytes
            assert [Path(p).name for p in local[name]] == [Path(p).name for p in parallel[name]]
            assert [Path(p).read_bytes() for p in local[name]] == [Path(p).read_bytes() for p in parallel[name]]
        else:
            assert local[name] == parallel[name], name


def test_digits(tmp_path):
    _same(Graph.load(WORKFLOWS / "digits.yaml"), tmp_path, prompt=["7", "a handwritten three"], seed=4, steps=4)


def test_griffin_lim(tmp_path):
    _same(Graph.load(WORKFLOWS / "griffin_lim.yaml"), tmp_path, iterations=8, seed=2)


@pytest.mark.parametrize("name", ["ddim.yaml", "ddpm.yaml"])
def test_ddpm_and_ddim(name, ddpm_folder, tmp_path):  # noqa: F811
    _same(_graph(name, ddpm_folder), tmp_path, seed=3, steps=5)


def test_latent_diffusion(text2img, tmp_path):  # noqa: F811
    graph = Graph.load(WORKFLOWS / "latent_diffusion.yaml")
    for node, sub in [("tokenizer", "tokenizer"), ("text_encoder", "bert"), ("unet", "unet"), ("vae", "vqvae"),
                      ("scheduler", "scheduler")]:
        graph.set(f"{node}.{'config' if node == 'scheduler' else 'source'}", str(text2img / sub))
    _same(graph, tmp_path, prompt="a fox", seed=1, steps=3, height=32, width=32, images_per_prompt=2)


def test_unconditional_latent_diffusion(uncond, tmp_path):  # noqa: F811
    _same(Graph.from_pretrained(uncond), tmp_path, seed=9, steps=3, batch_size=2)


@pytest.mark.parametrize("name", ["fastdiff.yaml", "diffwave.yaml"])
def test_vocoders(name, speech, tmp_path):  # noqa: F811
    if name == "fastdiff.yaml":
        folder = _fastdiff_folder(tmp_path)
    else:
        folder = tmp_path / "diffwave"
        _fill(DiffWaveModel(residual_layers=2, residual_channels=4, dilation_cycle_length=2)).save_pretrained(folder)
    graph = Graph.load(WORKFLOWS / name)
    graph.set("audio.path", str(speech))
    graph.set("vocoder.source", str(folder))
    _same(graph, tmp_path, seed=3)


def test_digits_placed_by_memory_with_offload(tmp_path):
    """A device too small for the text encoder: it is offloaded (loaded on the CPU, its layers' weights
    moved for each use) and the numbers stay the local executor's."""
    graph = Graph.load(WORKFLOWS / "digits.yaml")
    inputs = dict(outputs=["image"], prompt=["2"], seed=6, steps=3)
    local = graph.execute(executor="local", **inputs).image.tensor
    graph.cache.clear()
    events = []
    placed = graph.execute(executor=ParallelExecutor(devices=["cpu:10MiB"], offload=True), on_event=events.append,
                           **inputs).image.tensor
    assert torch.equal(local, placed)
    assert {e.node for e in events if e.kind == "node-end"} >= {"text_encoder", "unet", "sample"}
