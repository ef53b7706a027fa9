"""Node types: typed Python functions with a stable dotted name and a version.

    @node("math.add", version=1)
    def add(a: float, b: float = 0.0) -> float:
        "Add two numbers."
        return a + b

Inputs come from the parameters' annotations (see dgraph.types), outputs from the return annotation: a
single type gives one output named after it in snake case (`-> Latent` gives `latent`, override with
`output=`), a NamedTuple gives one output per field. Plain parameters (numbers, strings, enums) are
validated by pydantic: constrain them with `Annotated[int, Field(ge=1, le=1000)]`. `check=` adds a rule across
inputs that the validator applies to the types bound to them (reported at each offending input). A parameter annotated
`Context` receives the run context (device, seeded randomness, progress, cancellation, output folder)
instead of being an input. Nodes never reach into global state: everything comes in through arguments.

`refine=` and `check=` written with dgraph.rules are data: they travel in a pack's node manifest
(dgraph.engine.manifest), so validating a workflow imports neither the pack nor torch.

A node that draws random numbers is declared `random=True` (its results are keyed by the seed); a node
with an effect outside its outputs (writing files) is declared `effect=True`: it runs on every execution,
never served from the cache, and only such a node may ask the context for an output path.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import TypeAdapter

from .errors import Cancelled, DgraphError
from .types import TypeRef, type_of

if TYPE_CHECKING:  # torch is imported where a node runs, never by validation
    import torch

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: TypeRef
    required: bool
    default: Any = None
    description: str = ""
    annotation: Any = None

    @property
    def adapter(self) -> TypeAdapter | None:
        """A pydantic validator for literal values of this input (None for object ports)."""
        if not self.type.literal:
            return None
        return _adapter(self.annotation)


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(annotation: Any) -> TypeAdapter:
    key = repr(annotation)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = TypeAdapter(annotation)
    return _ADAPTERS[key]


@dataclass(frozen=True)
class OutputSpec:
    name: str
    type: TypeRef


@dataclass(frozen=True)
class NodeSpec:
    """Everything the engine knows about a node type."""

    type_name: str
    version: int
    description: str
    fn: Callable[..., Any]
    inputs: dict[str, InputSpec]
    outputs: dict[str, OutputSpec]
    context_arg: str | None = None
    random: bool = False
    refine: Callable[[dict[str, Any]], dict[str, TypeRef]] | None = None
    # Checks across inputs, run by the validator: given the type of every bound input, the problems
    # {input name: (message, hint[, code])} (e.g. conditioning the linked network does not take; the
    # code defaults to "input-not-taken").
    check: Callable[[dict[str, TypeRef]], dict[str, tuple[str, ...]]] | None = None
    tuple_output: bool = False
    pack: str = ""
    effect: bool = False

    @property
    def qualname(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def output_types(self, literals: dict[str, Any]) -> dict[str, TypeRef]:
        """Output types, refined from the node's literal inputs where the node says how (e.g. a Mel's profile)."""
        types = {name: out.type for name, out in self.outputs.items()}
        if self.refine is not None:
            try:
                refined = self.refine(literals) or {}
            except Exception:  # a refine hook must never hide the real validation error
                refined = {}
            types.update(refined)
        return types

    def call(self, context: "Context", arguments: dict[str, Any]) -> dict[str, Any]:
        """Run the node; returns its outputs by name."""
        kwargs = dict(arguments)
        if self.context_arg:
            kwargs[self.context_arg] = context
        result = self.fn(**kwargs)
        if self.tuple_output:
            return dict(zip(self.outputs, result))
        (name,) = self.outputs
        return {name: result}


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def node(type_name: str, *, version: int = 1, description: str | None = None, output: str | None = None,
         random: bool = False, refine: Callable[[dict[str, Any]], dict[str, TypeRef]] | None = None,
         check: Callable[[dict[str, TypeRef]], dict[str, tuple[str, ...]]] | None = None, effect: bool = False):
    """Declare a function as a node type (see the module docstring)."""
    if not _NAME.match(type_name):
        raise ValueError(f"node type name {type_name!r} must be dotted lowercase, like 'image.save'")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{type_name}: version must be a positive int")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = _spec_from_function(fn, type_name, version, description, output, random, refine, check)
        fn.__dgraph_node__ = dataclasses.replace(spec, effect=effect) if effect else spec
        return fn

    return wrap


def spec_of(obj: Any) -> NodeSpec | None:
    return getattr(obj, "__dgraph_node__", None)


def _spec_from_function(fn, type_name, version, description, output, random, refine, check) -> NodeSpec:
    hints = typing.get_type_hints(fn, include_extras=True)
    inputs: dict[str, InputSpec] = {}
    context_arg = None
    doc = inspect.getdoc(fn) or ""
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{type_name}: *args/**kwargs are not allowed in a node function")
        if name not in hints:
            raise TypeError(f"{type_name}: parameter {name!r} needs a type annotation")
        if hints[name] is Context:
            context_arg = name
            continue
        ref, optional = type_of(hints[name])
        has_default = param.default is not _MISSING
        inputs[name] = InputSpec(name, ref, required=not has_default and not optional,
                                 default=param.default if has_default else None,
                                 description=_param_doc(doc, name), annotation=hints[name])
    if "return" not in hints:
        raise TypeError(f"{type_name}: the function needs a return annotation (its output type)")
    returned = hints["return"]
    tuple_output = isinstance(returned, type) and issubclass(returned, tuple) and hasattr(returned, "_fields")
    if tuple_output:
        field_hints = typing.get_type_hints(returned, include_extras=True)
        outputs = {f: OutputSpec(f, type_of(field_hints[f])[0]) for f in returned._fields}
    else:
        ref, _ = type_of(returned)
        plain = ref.name in ("int", "float", "str", "bool", "Text", "Source", "enum", "list", "Any")
        name = output or ("value" if plain else snake_case(ref.name))
        outputs = {name: OutputSpec(name, ref)}
    summary = description or (doc.splitlines()[0] if doc else "")
    if not summary:
        raise TypeError(f"{type_name}: give a one-line description (docstring or description=)")
    return NodeSpec(type_name, version, summary, fn, inputs, outputs, context_arg, random, refine, check, tuple_output)


def _param_doc(doc: str, name: str) -> str:
    """The text after `name:` in the docstring's argument list, if there is one."""
    match = re.search(rf"^\s*{re.escape(name)}:\s*(.+)$", doc, re.MULTILINE)
    return match.group(1).strip() if match else ""


# ---------------------------------------------------------------------------------------------------
class CancelToken:
    """Set from another thread (or a signal handler) to stop a run at the next step boundary."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Context:
    """What a running node may use besides its inputs."""

    node: str
    device: torch.device
    seed: int
    random: bool = False
    output_dir: Path | None = None
    emit: Callable[[Any], None] | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    workflow: dict[str, Any] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    base: Any = None  # where relative sources resolve: the workflow file's folder, or its hub Source
    overwrite: bool = False  # written files replace earlier ones instead of taking the next free number
    effect: bool = False
    # The driver's file writer (engine.paths.write_new_files's signature); None: write from here.
    writer: Callable[..., list[Path]] | None = None

    def resolve_source(self, text: str):
        """A weights source written in the workflow, resolved against the workflow's own location."""
        from .hub import parse_source

        return parse_source(text, self.base)

    def generator(self, salt: str = "") -> torch.Generator:
        """A CPU generator seeded from the graph seed and this node's name (and `salt`).

        The same seed gives the same numbers whatever the device and whatever else the graph holds.
        """
        if not self.random:
            raise DgraphError(f"node {self.node!r} draws random numbers but its type is not declared random=True")
        import torch

        return torch.Generator("cpu").manual_seed(derive_seed(self.seed, self.node + salt))

    def progress(self, step: int, total: int) -> None:
        """Report step `step` of `total` inside a loop; also the point where cancellation takes effect."""
        self.check_cancelled()
        if self.emit is not None:
            from .engine.events import Event

            self.emit(Event("step", self.node, step=step, total=total))

    def resolve_path(self, text: str) -> Path:
        """A data file named by the user: relative to the current folder, else to the workflow's folder."""
        from .errors import SourceError

        path = Path(text).expanduser()
        if path.is_absolute() or path.exists():
            return path
        if isinstance(self.base, str) and (Path(self.base) / path).exists():
            return Path(self.base) / path
        if self.base is not None and not isinstance(self.base, str):  # a workflow from the Hub
            from .hub import fetch_file, parse_source

            source = parse_source(text, self.base)
            if source.kind != "folder":
                folder, _, name = source.path.rpartition("/")
                from dataclasses import replace

                return fetch_file(replace(source, path=folder), name)
        where = f" or in {self.base}" if self.base else ""
        raise SourceError(f"node {self.node!r}: no file {text!r} in the current folder{where}")

    def check_cancelled(self) -> None:
        if self.cancel.cancelled:
            raise Cancelled(f"cancelled during node {self.node!r}")

    def output_path(self, relative: str) -> Path:
        """A path inside the output folder; refuses anything that would leave it."""
        from .engine.paths import safe_output_path

        self._check_writes()
        return safe_output_path(self.output_dir, relative)

    def write_files(self, stem: str, suffix: str, payloads: list[bytes], *, plain_single: bool = False) -> list[Path]:
        """Write files `STEM_NNN{suffix}` in the output folder (numbers continue after earlier runs' files,
        each name claimed atomically; with `overwrite`, from 000); see `engine.paths.write_new_files`."""
        from .engine.paths import write_new_files

        self._check_writes()
        return (self.writer or write_new_files)(self.output_dir, stem, suffix, payloads, overwrite=self.overwrite,
                               plain_single=plain_single)


    def _check_writes(self) -> None:
        if not self.effect:  # a write the cache does not know about would be skipped on the next run
            raise DgraphError(f"node {self.node!r} writes files but its type is not declared effect=True")
        if self.output_dir is None:
            raise DgraphError(f"node {self.node!r} writes files but no output folder was given")


def derive_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
