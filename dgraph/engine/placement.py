"""Placement by memory: which device each node runs on, decided before any weight loads.

A node that loads a model (a `Source` input and a model output: UNet, VAE, TextEncoder, Vocoder) weighs
what its safetensors files hold, read from their headers alone and scaled to the node's `dtype`. Models
go, largest first, to the device with the most memory left; a node that consumes an object port (a model,
a denoiser, a scheduler) sits with the node that made it, any other node with its first input's producer,
and nodes without inputs with their first consumer. So a cascade's stages spread over the devices and
each stage's work stays beside its weights. A node's own `device:` wins over all of this.

    dgraph plan workflows/X.yaml --devices cuda:0:24GiB,cuda:1:24GiB

prints the result (`describe`): the placement, each device's resident weights, and the critical path.
Capacities given by hand (`cuda:0:24GiB`) need no such device here, so a machine one does not have can be
planned for; without one, a CUDA device's free memory is asked of the driver.
"""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import DgraphError
from ..hub import SINGLE_FILE_SUFFIXES
from .plan import Plan
from .validate import Resolved, ResolvedNode
from .workflow import GraphRef, Link, Literal

MODEL_PORTS = {"UNet", "VAE", "TextEncoder", "Vocoder"}  # object ports whose values hold weights
OBJECT_PORTS = MODEL_PORTS | {"Denoiser", "Scheduler", "Tokenizer"}
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
             "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
_DTYPE_SIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_WEIGHT_FILES = ("diffusion_pytorch_model", "model")


class PlacementError(DgraphError):
    """A model fits no device, or a device list cannot be read."""


@dataclass(frozen=True)
class DeviceSpec:
    name: str  # a torch device: cuda:0, cpu
    capacity: int  # bytes available for weights


@dataclass
class Placement:
    devices: dict[str, str]  # node -> device
    weights: dict[str, int | None] = field(default_factory=dict)  # model-loading node -> bytes (None: unknown)
    offloaded: set[str] = field(default_factory=set)  # model nodes whose weights stay on the CPU
    capacity: dict[str, int] = field(default_factory=dict)
    critical_path: list[str] = field(default_factory=list)

    def resident(self) -> dict[str, int]:
        """Bytes of weights kept on each device."""
        used = {name: 0 for name in self.capacity}
        for node, size in self.weights.items():
            if size and node not in self.offloaded:
                used[self.devices[node]] = used.get(self.devices[node], 0) + size
        return used


def parse_devices(devices: str | Sequence[str]) -> list[DeviceSpec]:
    """`cuda:0:24GiB,cuda:1` (or a list of such entries) as devices with capacities."""
    entries = devices.split(",") if isinstance(devices, str) else list(devices)
    specs = []
    for entry in (e.strip() for e in entries):
        match = re.fullmatch(r"(cpu|cuda(?::\d+)?|mps|meta)(?::(\d+(?:\.\d+)?)\s*([A-Za-z]*))?", entry)
        if not match or (match.group(3) or "").upper() not in _UNITS:
            raise PlacementError(f"--devices: cannot read {entry!r}; write a device with an optional capacity, "
                                 "e.g. cuda:0,cuda:1 or cuda:0:24GiB,cuda:1:24GiB")
        name = match.group(1)
        if name == "cuda":
            name = "cuda:0"
        if match.group(2):
            capacity = int(float(match.group(2)) * _UNITS[(match.group(3) or "").upper()])
        else:
            capacity = _free_memory(name)
        specs.append(DeviceSpec(name, capacity))
    if not specs:
        raise PlacementError("--devices: name at least one device")
    return specs


def _free_memory(name: str) -> int:
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PlacementError(f"--devices: torch sees no CUDA device for {name!r}; to plan for one you do not have, "
                                 f"give its memory: {name}:24GiB")
        return torch.cuda.mem_get_info(torch.device(name))[0]
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 2**34


def size_text(size: int | None) -> str:
    if size is None:
        return "unknown"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


# ---- weights' sizes from safetensors headers -------------------------------------------------------
def _header(path: str | Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        if length > 100_000_000:
            raise PlacementError(f"{path}: not a safetensors file (header of {length} bytes)")
        header = json.loads(file.read(length))
    header.pop("__metadata__", None)
    return header


def safetensors_bytes(path: str | Path, dtype: str | None = None, prefix: str = "") -> int:
    """Bytes the tensors of a safetensors file take (those whose names start with `prefix`), from its header
    alone (floating tensors as `dtype`)."""
    total = 0
    for name, entry in _header(path).items():
        if not name.startswith(prefix):
            continue
        count = 1
        for dim in entry["shape"]:
            count *= dim
        stored = entry["dtype"]
        size = _DTYPE_SIZE[dtype] if dtype in _DTYPE_SIZE and stored.startswith(("F", "BF")) else _ITEMSIZE.get(stored, 4)
        total += count * size
    return total


def _weight_files(folder: Path, variant: str) -> list[Path]:
    infix = f".{variant}" if variant else ""
    for stem in _WEIGHT_FILES:
        index = folder / f"{stem}.safetensors.index{infix}.json"
        if index.is_file():
            shards = set(json.loads(index.read_text())["weight_map"].values())
            return [folder / shard for shard in sorted(shards)]
        single = folder / f"{stem}{infix}.safetensors"
        if single.is_file():
            return [single]
    return []


def _source_folder(text: str, base: Any) -> Path | None:
    """The local folder a source names (a Hub source: its snapshot in the local cache), or None."""
    from ..hub import parse_source

    try:
        source = parse_source(text, base)
    except DgraphError:
        return None
    if source.kind == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache

            for stem in _WEIGHT_FILES:
                for name in (f"{stem}.safetensors", f"{stem}.safetensors.index.json"):
                    found = try_to_load_from_cache(source.location, f"{source.path}/{name}".strip("/"),
                                                   revision=source.revision)
                    if isinstance(found, str):
                        return Path(found).parent
        except Exception:  # no cache, a revision never fetched: the size is unknown, not an error
            return None
        return None
    if source.kind == "package":
        from ..hub import _package_root

        return _package_root(source.location) / source.path
    return Path(source.location)


# The component of a single-file checkpoint that a loader of each model port reads when the source names none.
_PORT_COMPONENTS = {"UNet": ("unet",), "VAE": ("vae",), "TextEncoder": ("text_encoder", "text_encoder_2")}


def _single_file_bytes(node: ResolvedNode, text: str, base: Any, dtype: str | None) -> int | None:
    """Bytes of the one component a loader reads from a local single-file checkpoint (None: not known)."""
    from ..hub import parse_source

    try:
        source = parse_source(text, base)
    except DgraphError:
        return None
    path = Path(source.location)
    if source.kind != "folder" or path.suffix != ".safetensors" or not path.is_file():
        return None
    # The architecture tells where each component's tensors are (this imports the model package).
    from ..models.single_file.architecture import detect

    header = _header(path)
    try:
        arch = detect({name: tuple(entry["shape"]) for name, entry in header.items()}, str(path))
    except DgraphError:
        return None
    wanted = (source.component,) if source.component else next(
        (names for port, names in _PORT_COMPONENTS.items() if any(o.type.name == port for o in node.spec.outputs.values())),
        ())
    present = [name for name in wanted if name in arch.components]
    if len(present) != 1:
        return None
    return safetensors_bytes(path, dtype, arch.components[present[0]])


def model_bytes(node: ResolvedNode, base: Any) -> int | None:
    """Bytes of the weights a model-loading node loads (None: not known before loading)."""
    literals = {k: b.value for k, b in node.bindings.items() if isinstance(b, Literal)}
    sources = [v for k, v in literals.items() if isinstance(v, str) and str(node.spec.inputs[k].type) == "Source"]
    if not sources:
        return None
    dtype = literals.get("dtype")
    if sources[0].partition("#")[0].lower().endswith(SINGLE_FILE_SUFFIXES):
        return _single_file_bytes(node, sources[0], base, dtype if isinstance(dtype, str) else None)
    folder = _source_folder(sources[0], base)
    files = _weight_files(folder, str(literals.get("variant") or "")) if folder is not None and folder.is_dir() else []
    if not files:
        return None
    return sum(safetensors_bytes(f, dtype if isinstance(dtype, str) else None) for f in files)


def loads_model(node: ResolvedNode) -> bool:
    spec = node.spec
    has_source = any(str(i.type) == "Source" for i in spec.inputs.values())
    return has_source and any(o.type.name in MODEL_PORTS for o in spec.outputs.values())


# ---- placing ---------------------------------------------------------------------------------------
def place(resolved: Resolved, plan: Plan, devices: str | Sequence[str], *, base: Any = None,
          offload: bool = False) -> Placement:
    """Each planned node's device over `devices` (see the module docstring); raises `PlacementError` when a
    model fits no device and `offload` is off."""
    specs = parse_devices(devices)
    free = {d.name: d.capacity for d in specs}
    result = Placement({}, capacity=dict(free))
    nodes = {name: resolved.nodes[name] for name in plan.order}
    for name, node in nodes.items():
        if loads_model(node):
            result.weights[name] = model_bytes(node, base)
        if node.device:
            result.devices[name] = node.device
            if result.weights.get(name) and node.device in free:
                free[node.device] -= result.weights[name]
    models = sorted((n for n in result.weights if n not in result.devices),
                    key=lambda n: (-(result.weights[n] or 0), plan.order.index(n)))
    for name in models:
        size = result.weights[name] or 0
        target = max(free, key=lambda d: free[d])  # the most memory left; ties: the first listed
        if size > free[target]:
            if not offload:
                raise PlacementError(_too_big(nodes[name], size, free))
            result.offloaded.add(name)
        else:
            free[target] -= size
        result.devices[name] = target
    _follow(nodes, plan, result, specs[0].name)
    result.critical_path = critical_path(resolved, plan)
    return result


def _follow(nodes: dict[str, ResolvedNode], plan: Plan, result: Placement, default: str) -> None:
    """Nodes that load nothing go where their inputs come from (object ports first), else to their first
    consumer."""
    placed = result.devices
    for _ in range(len(nodes) + 1):
        changed = False
        for name in plan.order:
            if name in placed:
                continue
            links = [(key, b) for key, b in nodes[name].bindings.items() if isinstance(b, Link) and b.node in nodes]
            ports = [b.node for key, b in links
                     if nodes[b.node].spec.outputs[b.output].type.name in OBJECT_PORTS and b.node in placed]
            others = [b.node for key, b in links if b.node in placed]
            if ports or others:
                placed[name] = placed[(ports or others)[0]]
                changed = True
        for name in reversed(plan.order):  # sources: beside their first consumer
            if name not in placed:
                consumers = [c for c in plan.dependents().get(name, ()) if c in placed]
                if consumers:
                    placed[name] = placed[consumers[0]]
                    changed = True
        if not changed:
            break
    for name in plan.order:
        placed.setdefault(name, default)


def _too_big(node: ResolvedNode, size: int, free: dict[str, int]) -> str:
    dtype = next((b.value for k, b in node.bindings.items() if k == "dtype" and isinstance(b, Literal)), None)
    options = ["a device list with more memory (--devices cuda:0:48GiB,...)"]
    if "dtype" in node.spec.inputs and dtype in (None, "float32", "float64"):
        options.append(f"a smaller dtype (--set {node.name}.dtype=float16 halves it)")
    options.append("--offload (its weights stay on the CPU and move to the device for each use)")
    room = ", ".join(f"{d} {size_text(f)} free" for d, f in free.items())
    return (f"node {node.name!r} ({node.spec.type_name}) needs {size_text(size)} for its weights, more than any device "
            f"has: {room}; choose {', '.join(options[:-1])} or {options[-1]}")


# ---- the critical path -----------------------------------------------------------------------------
def node_cost(resolved: Resolved, node: ResolvedNode) -> int:
    """A rough cost: a loop's steps (from its `steps` input), else 1."""
    binding = node.bindings.get("steps")
    value = None
    if isinstance(binding, Literal):
        value = binding.value
    elif isinstance(binding, GraphRef):
        value = resolved.inputs.get(binding.name, (None, False, None))[2]
    return value if isinstance(value, int) and value > 0 else 1


def critical_path(resolved: Resolved, plan: Plan) -> list[str]:
    """The chain of dependent nodes with the largest total cost: what no number of devices makes faster."""
    best: dict[str, tuple[int, list[str]]] = {}
    for name in plan.order:
        cost = node_cost(resolved, resolved.nodes[name])
        parents = [best[p] for p in plan.dependencies.get(name, ()) if p in best]
        before = max(parents, key=lambda x: x[0], default=(0, []))
        best[name] = (before[0] + cost, before[1] + [name])
    return max(best.values(), key=lambda x: x[0], default=(0, []))[1]


def describe(resolved: Resolved, plan: Plan, placement: Placement) -> str:
    """The text `dgraph plan` prints."""
    lines = ["placement:"]
    width = max((len(n) for n in plan.order), default=4)
    for name in plan.order:
        node = resolved.nodes[name]
        weight = ""
        if name in placement.weights:
            weight = f"  weights {size_text(placement.weights[name])}"
            if name in placement.offloaded:
                weight += " (offloaded: kept on the CPU)"
        lines.append(f"  {name:<{width}}  {placement.devices[name]:<8} {node.spec.type_name}{weight}")
    lines.append("estimated peak memory (resident weights):")
    for device, used in placement.resident().items():
        capacity = placement.capacity.get(device)
        of = f" of {size_text(capacity)}" if capacity else ""
        lines.append(f"  {device}: {size_text(used)}{of}")
    unknown = [n for n, s in placement.weights.items() if s is None]
    if unknown:
        lines.append(f"  (sizes unknown before loading, not counted: {', '.join(unknown)})")
    total = sum(node_cost(resolved, resolved.nodes[n]) for n in placement.critical_path)
    lines.append(f"critical path ({total} units: a loop's steps, else 1 a node): " + " -> ".join(placement.critical_path))
    return "\n".join(lines)
