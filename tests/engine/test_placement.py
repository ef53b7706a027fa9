"""Placement by memory and `dgraph plan`, on device capacities given by hand: sizes from safetensors headers
(equal to what the tensors take once loaded), models spread over devices, consumers beside their models,
the too-big error, and a real offload."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from dgraph.cli import main
from dgraph.engine.offload import offload
from dgraph.engine.placement import PlacementError, parse_devices, place, safetensors_bytes
from dgraph.graph import Graph

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "workflows" / "digits.yaml"
UNET = ROOT / "workflows" / "digits" / "unet" / "diffusion_pytorch_model.safetensors"


def _loaded_bytes(path: Path, dtype: torch.dtype | None = None) -> int:
    with safe_open(str(path), "pt") as file:  # the reference: every tensor, loaded
        tensors = [file.get_tensor(k) for k in file.keys()]
    return sum(t.numel() * (t.to(dtype) if dtype and t.is_floating_point() else t).element_size() for t in tensors)


def test_sizes_come_from_headers_and_equal_the_loaded_tensors():
    assert safetensors_bytes(UNET) == _loaded_bytes(UNET)
    assert safetensors_bytes(UNET, "float16") == _loaded_bytes(UNET, torch.float16)


def test_device_lists():
    assert [(d.name, d.capacity) for d in parse_devices("cuda:0:24GiB,cuda:1:1.5GB,cpu:8MiB")] == [
        ("cuda:0", 24 * 2**30), ("cuda:1", 1_500_000_000), ("cpu", 8 * 2**20)]
    with pytest.raises(PlacementError, match=r"--devices: cannot read 'gpu0'; write a device with an optional "
                                             r"capacity, e\.g\. cuda:0,cuda:1 or cuda:0:24GiB,cuda:1:24GiB"):
        parse_devices("gpu0")


def test_models_spread_and_consumers_sit_with_their_model():
    graph = Graph.load(DIGITS)
    placement = place(graph.resolved, graph.plan(), "cuda:0:1GiB,cuda:1:1GiB", base=graph.base)
    d = placement.devices
    assert d["text_encoder"] != d["unet"]  # the two largest models on different devices
    assert d["unet"] == d["cond"] == d["uncond"] == d["guided"] == d["sample"]  # the denoising stage with its UNet
    assert d["prompt"] == d["text_encoder"] and d["image"] == d["vae"]
    assert placement.weights["unet"] == _loaded_bytes(UNET)
    assert placement.resident()[d["unet"]] == placement.weights["unet"] + placement.weights["vae"]


def test_two_equal_stages_go_to_two_devices():
    unet = str(UNET.parent)
    graph = Graph.load({"dgraph": 1, "nodes": {
        "base": {"type": "load.unet", "inputs": {"source": unet}},
        "refiner": {"type": "load.unet", "inputs": {"source": unet}},
        "base_denoiser": {"type": "denoiser.model", "inputs": {"unet": "@base.unet"}},
        "refiner_denoiser": {"type": "denoiser.model", "inputs": {"unet": "@refiner.unet"}}}})
    d = place(graph.resolved, graph.plan(), ["cuda:0:64MiB", "cuda:1:64MiB"]).devices
    assert d == {"base": "cuda:0", "refiner": "cuda:1", "base_denoiser": "cuda:0", "refiner_denoiser": "cuda:1"}


def test_a_model_that_fits_no_device_is_named_before_anything_loads(capsys):
    code = main(["plan", str(DIGITS), "--devices", "cuda:0:1MiB,cuda:1:2MiB"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: node 'text_encoder' (load.text_encoder) needs 86.65 MiB for its weights, more than "
                          "any device has: cuda:0 1.00 MiB free, cuda:1 2.00 MiB free; choose a device list with more "
                          "memory (--devices cuda:0:48GiB,...), a smaller dtype (--set text_encoder.dtype=float16 "
                          "halves it) or --offload (its weights stay on the CPU and move to the device for each use)")


def test_plan_command_prints_placement_memory_and_critical_path(capsys):
    assert main(["plan", str(DIGITS), "--devices", "cuda:0:24GiB,cuda:1:24GiB"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "placement:"
    assert "  unet          cuda:1   load.unet  weights 4.45 MiB" in out
    assert "  cuda:0: 86.65 MiB of 24.00 GiB" in out and "  cuda:1: 5.11 MiB of 24.00 GiB" in out
    assert out[-1] == ("critical path (26 units: a loop's steps, else 1 a node): text_encoder -> prompt -> cond -> "
                       "guided -> sample -> image -> save")
    assert main(["plan", str(DIGITS), "--devices", "cuda:0:24GiB", "--set", "text_encoder.dtype=float16"]) == 0
    assert "  cuda:0: 48.43 MiB of 24.00 GiB" in capsys.readouterr().out  # 43.33 MiB encoder + 4.45 + 0.66 MiB
    assert main(["plan", str(DIGITS), "--devices", "cuda:0:10MiB", "--offload"]) == 0
    out = capsys.readouterr().out
    assert "load.text_encoder  weights 86.65 MiB (offloaded: kept on the CPU)" in out
    assert "  cuda:0: 5.11 MiB of 10.00 MiB" in out


def test_offload_keeps_weights_on_the_cpu_and_computes_on_the_device():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GroupNorm(2, 8), torch.nn.Linear(8, 2))
    x = torch.randn(3, 4)
    pointers = [p.data_ptr() for p in model.parameters()]
    offload(model, "meta")  # a device with no data: a copy that did not happen would fail loudly
    out = model(x)
    assert out.device.type == "meta" and out.shape == (3, 2)
    assert [p.data_ptr() for p in model.parameters()] == pointers  # the CPU weights stay, untouched
    offload(model, "meta")  # twice is once: one pair of hooks per layer
    assert len(model[0]._forward_pre_hooks) == 1
    offload(model_cpu := torch.nn.Sequential(*[torch.nn.Linear(4, 2)]), "cpu")
    torch.manual_seed(1)
    reference = torch.nn.Linear(4, 2)
    model_cpu[0].load_state_dict(reference.state_dict())
    assert torch.equal(model_cpu(x), reference(x))  # the same numbers through the hooks


def test_plan_loads_no_weights(monkeypatch, capsys):
    import safetensors
    import safetensors.torch

    def refuse(*args, **kwargs):
        raise AssertionError("dgraph plan loaded weights")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert main(["plan", str(DIGITS), "--devices", "cuda:0:24GiB"]) == 0
    assert "  cuda:0: 91.76 MiB of 24.00 GiB" in capsys.readouterr().out
