"""The opt-in compiled path: a denoiser's network through torch.compile, compiled once per loaded network,
with the eager network's outputs; `Graph.compile` / `dgraph run --compile` switch a workflow's denoisers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dgraph.sampling.compiled as compiled
from dgraph import Graph
from dgraph.errors import ConfigError, DgraphError
from dgraph.models import UNet2DConditionModel
from dgraph.sampling import ModelDenoiser
from dgraph.sampling.compiled import compiled_network

ROOT = Path(__file__).resolve().parents[2]
UNET = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=8)


@pytest.fixture
def traced_only(monkeypatch):
    """Compile with aot_eager: the same dynamo graph as inductor's, without generating kernels (seconds)."""
    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")


def _unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(**UNET).eval()


def test_compiled_denoiser_matches_eager_and_compiles_once_per_network(traced_only):
    unet, context = _unet(), torch.randn(1, 7, 32)
    x = torch.randn(2, 4, 8, 8)
    eager, fast = ModelDenoiser(unet, context), ModelDenoiser(unet, context, compile="default")
    with torch.no_grad():
        for t in (torch.tensor(10), torch.tensor(500)):
            assert torch.allclose(fast(x, t), eager(x, t), atol=1e-6)
    # A second denoiser on the same network (the next execute) takes the compiled module made by the first.
    assert ModelDenoiser(unet, context, compile="default")._network is fast._network
    assert fast.model is unet and fast._network is not unet
    # The compiled form is not a registered submodule: the weights appear once in the state dict.
    assert list(unet.state_dict()) == list(UNet2DConditionModel(**UNET).state_dict())


def test_an_unknown_compile_mode_is_refused():
    with pytest.raises(ConfigError, match="compile mode 'fastest' is not one of default, reduce-overhead, max-autotune"):
        compiled_network(_unet(), "fastest")


def test_graph_compile_sets_every_denoiser_and_the_image_stays_the_eager_one(traced_only, tmp_path):
    workflow = ROOT / "workflows" / "digits.yaml"
    inputs = dict(prompt="a handwritten seven", seed=3, steps=3)
    eager = Graph.load(workflow).execute(["image"], output_dir=tmp_path, **inputs)["image"].tensor
    graph = Graph.load(workflow)
    assert graph.compile("default") == ["cond", "uncond"]
    assert graph.to_dict()["nodes"]["cond"]["inputs"]["compile"] == "default"
    fast = graph.execute(["image"], output_dir=tmp_path, **inputs)["image"].tensor
    assert (fast - eager).abs().max().item() < 1e-5


def test_graph_compile_without_a_denoiser_is_an_error():
    graph = Graph()
    graph.add("tensor.noise", "noise", shape=[1, 2])
    with pytest.raises(DgraphError, match="this workflow has no node with a `compile` input"):
        graph.compile("default")


def test_run_refuses_an_unknown_compile_mode():
    done = subprocess.run([sys.executable, "-m", "dgraph", "run", str(ROOT / "workflows" / "digits.yaml"),
                           "--compile", "fastest"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "argument --compile: invalid choice: 'fastest'" in done.stderr


@pytest.mark.slow
def test_inductor_kernels_match_eager():
    """The real compiler (inductor's generated kernels; a minute or more on a CPU)."""
    unet, context = _unet(), torch.randn(1, 7, 32)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor(10)
    with torch.no_grad():
        expected = ModelDenoiser(unet, context)(x, t)
        got = ModelDenoiser(unet, context, compile="default")(x, t)
    assert (got - expected).abs().max().item() < 1e-5
