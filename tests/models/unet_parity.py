"""Helpers shared by the UNet parity tests: build a diffusers model with a fixed seed, perturb every
weight (so zero-initialised layers are exercised too), save it, and compare outputs."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one intra-op thread: these models are tiny, and on a busy 2-core machine two
    spinning OpenMP threads per process make a forward pass 50x slower than one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build_reference(diffusers_class, config: dict, seed: int = 0):
    """A diffusers model from `config` whose every parameter is seeded random noise, in eval mode."""
    torch.manual_seed(seed)
    model = diffusers_class(**config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.2
            # Norm scales near 1 keep activations in a useful range through deep stacks.
            if parameter.ndim == 1 and parameter.shape[0] > 0:
                noise = noise * 0.5
            parameter.add_(noise)
    return model.eval()


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def run_reference(model, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).sample


def run_ours(model, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).sample


def cast_inputs(inputs: dict, dtype: torch.dtype) -> dict:
    return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}


def check_parity(diffusers_class, dgraph_class, config: dict, inputs: dict, tmp_path) -> dict:
    """Every direction of interchange between diffusers and dgraph for one configuration.

    Returns the measured differences (the test asserts on them, so a failure shows the numbers).
    """
    import json

    reference = build_reference(diffusers_class, config)
    reference.save_pretrained(tmp_path / "reference")
    expected = run_reference(reference, inputs)

    ours = dgraph_class.from_pretrained(tmp_path / "reference")
    found = {"float32": max_difference(run_ours(ours, inputs), expected)}

    # Our save loads in diffusers, and the config files say the same thing.
    ours.save_pretrained(tmp_path / "ours")
    theirs = json.loads((tmp_path / "reference" / "config.json").read_text())
    mine = json.loads((tmp_path / "ours" / "config.json").read_text())
    theirs.pop("_diffusers_version")
    found["config_equal"] = mine == theirs
    back = diffusers_class.from_pretrained(tmp_path / "ours")
    found["diffusers_reload"] = max_difference(run_reference(back, inputs), expected)

    reference_bf16 = diffusers_class.from_pretrained(tmp_path / "reference", torch_dtype=torch.bfloat16)
    ours_bf16 = dgraph_class.from_pretrained(tmp_path / "reference", torch_dtype=torch.bfloat16)
    bf16_inputs = cast_inputs(inputs, torch.bfloat16)
    ours_bf16_output = run_ours(ours_bf16, bf16_inputs)
    found["bfloat16"] = max_difference(ours_bf16_output, run_reference(reference_bf16, bf16_inputs))
    found["bfloat16_dtype"] = ours_bf16_output.dtype
    # Guards against a vacuous comparison: the reference output carries signal.
    found["output_scale"] = expected.abs().mean().item()
    return found


def assert_parity(found: dict) -> None:
    assert found["output_scale"] > 0.1, found
    assert found["float32"] < 1e-5, found
    assert found["config_equal"], found
    assert found["diffusers_reload"] < 1e-5, found
    assert found["bfloat16"] < 1e-2, found
    assert found["bfloat16_dtype"] == torch.bfloat16, found
