"""The opt-in compiled path: a denoiser network's forward through `torch.compile`.

Compiling is worth it where a sampling loop calls one network with the same shapes tens of times: the
first call traces and compiles (seconds to minutes), every later call with the same shapes runs the
compiled graph. The modes are torch's:

- ``default``: inductor's kernels, no CUDA graphs;
- ``reduce-overhead``: inductor plus CUDA graphs (the launch overhead of each kernel goes away; on a GPU
  the shapes must stay fixed, which a sampling loop's do);
- ``max-autotune``: inductor tries several kernels per operation and CUDA graphs (the longest compile).

The compiled module is kept per network object and mode, so a second execute on the same loaded model
(the engine's cache keeps models) does not compile again. Outputs are those of the eager network up to
floating-point reordering (not bitwise).
"""
from __future__ import annotations

from typing import Literal

from torch import nn

from ..errors import ConfigError

CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune")

# Where a network keeps its compiled forms, {(mode, backend): compiled}: in the instance's __dict__, not as an
# attribute nn.Module would register (that would add the weights a second time to its state dict). A network
# the cache lets go takes its compiled forms along.
_ATTRIBUTE = "_dgraph_compiled"
# The compiler backend denoisers use: inductor generates the kernels. (Tests of the plumbing set "aot_eager",
# which traces the same graph without generating kernels, in seconds instead of a minute.)
BACKEND = "inductor"


def compiled_network(model: nn.Module, mode: str = "default", backend: str | None = None) -> nn.Module:
    """`torch.compile(model, mode=mode, dynamic=False)`, made once per network object, mode and backend.

    `backend` is torch's compiler backend (default `BACKEND`, inductor)."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"compile mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    import torch

    backend = backend or BACKEND
    per_model = model.__dict__.setdefault(_ATTRIBUTE, {})
    key = (mode, backend)
    if key not in per_model:
        # inductor's "default" mode name is passed as None: torch.compile names it so.
        options = {} if backend != "inductor" else {"mode": None if mode == "default" else mode}
        per_model[key] = torch.compile(model, backend=backend, dynamic=False, **options)
    return per_model[key]
