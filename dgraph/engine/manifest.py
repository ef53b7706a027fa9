"""Node manifests: what validation knows of a pack's node types, as data, so that `dgraph validate`, `nodes`
and `schema` read one JSON file instead of importing the pack (and torch with it).

A pack ships `manifest.json` in its top-level package, generated from its real node types with
`dgraph nodes --manifest PACK -o PACKAGE/manifest.json`. It holds, per node type, the version, the flags, the
port types, each literal input's annotation rebuilt from data (so its pydantic validator, error messages and
JSON schema are the real ones), the defaults and the refine/check rules as data (dgraph.rules). The registry
builds node specs from it whose function is imported on its first call, when a graph executes. A manifest is
used only while it matches the pack's sources (a digest of its .py files) and names only its own modules (and
dgraph's); otherwise, and for a pack without one, the pack is imported as before.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

from ..errors import DgraphError
from ..node import InputSpec, NodeSpec, OutputSpec, spec_of
from ..rules import rule_data, rule_from
from ..types import Source, Text, TypeRef

FORMAT = 1
FILE_NAME = "manifest.json"
_SCALARS: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "Text": Text, "Source": Source}
_NAMES = {cls: name for name, cls in _SCALARS.items()}


class ManifestError(DgraphError):
    """A node type cannot be described as data (say which, and how to declare it instead)."""


# ---------------------------------------------------------------------------------------------------
# Port types and literal annotations as data
# ---------------------------------------------------------------------------------------------------
def type_data(ref: TypeRef) -> dict[str, Any]:
    data: dict[str, Any] = {"name": ref.name}
    if ref.params:
        data["params"] = [list(pair) for pair in ref.params]
    if ref.choices:
        data["choices"] = list(ref.choices)
    if ref.item is not None:
        data["item"] = type_data(ref.item)
    return data


def type_from(data: dict[str, Any]) -> TypeRef:
    return TypeRef(data["name"], tuple(tuple(pair) for pair in data.get("params", ())), tuple(data.get("choices", ())),
                   type_from(data["item"]) if "item" in data else None)


def annotation_data(annotation: Any, where: str) -> dict[str, Any]:
    """A literal input's annotation as data: scalars, Optional, Literal, list, and Annotated with pydantic
    Field constraints and module-level AfterValidator functions."""
    from pydantic import AfterValidator
    from pydantic.fields import FieldInfo

    if annotation in _NAMES:
        return {"scalar": _NAMES[annotation]}
    if annotation is Any:
        return {"any": True}
    origin = get_origin(annotation)
    if origin is Union or origin is getattr(__import__("types"), "UnionType"):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return {"optional": annotation_data(args[0], where)}
    if origin is Literal:
        return {"literal": list(get_args(annotation))}
    if origin is list or annotation is list:
        args = get_args(annotation)
        return {"list": annotation_data(args[0], where) if args else {"any": True}}
    if origin is Annotated:
        base, *extras = get_args(annotation)
        described: list[dict[str, Any]] = []
        for extra in extras:
            if isinstance(extra, FieldInfo):
                constraints: dict[str, Any] = {}
                for item in extra.metadata:
                    values = ({f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
                              if dataclasses.is_dataclass(item) else dict(vars(item)))
                    constraints.update({k: v for k, v in values.items() if v is not None})
                described.append({"field": constraints})
            elif isinstance(extra, AfterValidator) and "<locals>" not in extra.func.__qualname__:
                described.append({"after": f"{extra.func.__module__}:{extra.func.__qualname__}"})
            else:
                raise ManifestError(f"{where}: {extra!r} has no data form; use Field(...) constraints or an "
                                    "AfterValidator of a module-level function")
        return {"annotated": annotation_data(base, where), "extras": described}
    raise ManifestError(f"{where}: the annotation {annotation!r} has no data form in a manifest")


def annotation_from(data: dict[str, Any]) -> Any:
    """The annotation `annotation_data` described (its validators are imported by module and name)."""
    if "scalar" in data:
        return _SCALARS[data["scalar"]]
    if "any" in data:
        return Any
    if "optional" in data:
        return Optional[annotation_from(data["optional"])]
    if "literal" in data:
        return Literal[tuple(data["literal"])]
    if "list" in data:
        return list[annotation_from(data["list"])]
    from pydantic import AfterValidator, Field

    extras = []
    for extra in data["extras"]:
        if "field" in extra:
            extras.append(Field(**extra["field"]))
        else:
            module, _, name = extra["after"].partition(":")
            extras.append(AfterValidator(getattr(importlib.import_module(module), name)))
    return Annotated[(annotation_from(data["annotated"]), *extras)]


# ---------------------------------------------------------------------------------------------------
# Node specs as data
# ---------------------------------------------------------------------------------------------------
def spec_data(spec: NodeSpec) -> dict[str, Any]:
    where = f"node type {spec.type_name!r}"
    inputs = {}
    for name, ispec in spec.inputs.items():
        entry: dict[str, Any] = {"type": type_data(ispec.type), "required": ispec.required}
        if ispec.default is not None:
            if json.loads(json.dumps(ispec.default)) != ispec.default or type(ispec.default) in (tuple, set):
                raise ManifestError(f"{where}, input {name!r}: the default {ispec.default!r} is not JSON data")
            entry["default"] = ispec.default
        if ispec.description:
            entry["description"] = ispec.description
        if ispec.type.literal:
            entry["annotation"] = annotation_data(ispec.annotation, f"{where}, input {name!r}")
        inputs[name] = entry
    try:
        refine, check = rule_data(spec.refine), rule_data(spec.check)
    except TypeError as error:
        raise ManifestError(f"{where}: {error}") from None
    data: dict[str, Any] = {"type": spec.type_name, "version": spec.version, "description": spec.description,
                            "module": spec.fn.__module__, "inputs": inputs,
                            "outputs": {name: type_data(out.type) for name, out in spec.outputs.items()}}
    for key, value in (("context_arg", spec.context_arg), ("random", spec.random), ("effect", spec.effect),
                       ("tuple_output", spec.tuple_output), ("refine", refine), ("check", check)):
        if value:
            data[key] = value
    return data


class _Deferred:
    """A node function imported on its first call: the module the manifest names, the function in it that
    registers the node type."""

    def __init__(self, module: str, type_name: str) -> None:
        self.__module__, self.type_name, self._fn = module, type_name, None
        self.__qualname__ = type_name

    def load(self):
        if self._fn is None:
            found = [value for value in vars(importlib.import_module(self.__module__)).values()
                     if getattr(spec_of(value), "type_name", None) == self.type_name]
            if not found:
                raise ManifestError(f"node type {self.type_name!r}: module {self.__module__} no longer defines it; "
                                    "regenerate the pack's manifest (dgraph nodes --manifest)")
            self._fn = found[0]
        return self._fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)


def spec_from(data: dict[str, Any], pack: str) -> NodeSpec:
    inputs = {}
    for name, entry in data["inputs"].items():
        annotation = annotation_from(entry["annotation"]) if "annotation" in entry else None
        inputs[name] = InputSpec(name, type_from(entry["type"]), entry["required"], entry.get("default"),
                                 entry.get("description", ""), annotation)
    outputs = {name: OutputSpec(name, type_from(ref)) for name, ref in data["outputs"].items()}
    fn = _Deferred(data["module"], data["type"])
    spec = NodeSpec(data["type"], data["version"], data["description"], fn, inputs, outputs, data.get("context_arg"),
                    data.get("random", False), rule_from(data.get("refine")), rule_from(data.get("check")),
                    data.get("tuple_output", False), pack, data.get("effect", False))
    fn.__dgraph_node__ = spec  # like a decorated function: `registry.add(spec.fn)` registers it again
    return spec


# ---------------------------------------------------------------------------------------------------
# A pack's manifest file
# ---------------------------------------------------------------------------------------------------
def package_folder(entry_point_value: str) -> Path | None:
    """The folder of the top-level package an entry point lives in, found without importing it."""
    top = entry_point_value.split(":")[0].split(".")[0].strip()
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0])


def sources_digest(folder: Path) -> str:
    """A digest of a package's Python sources: a manifest is used only for the sources it was made from."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def pack_manifest(pack: str, entry_point_value: str, specs: typing.Iterable[NodeSpec]) -> dict[str, Any]:
    """The manifest of one pack, from its real (imported) node specs."""
    folder = package_folder(entry_point_value)
    return {"dgraph-manifest": FORMAT, "pack": pack, "entry_point": entry_point_value,
            "sources": sources_digest(folder) if folder else "",
            "nodes": [spec_data(spec) for spec in sorted(specs, key=lambda s: s.type_name)]}


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"


def _modules_named(data: Any):
    """Every module a manifest's data would import: node modules and validator functions."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "module" and isinstance(value, str):
                yield value
            elif key == "after" and isinstance(value, str):
                yield value.partition(":")[0]
            else:
                yield from _modules_named(value)
    elif isinstance(data, list):
        for value in data:
            yield from _modules_named(value)


def _own(module: str, package: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in (package, "dgraph"))


def read_pack(pack: str, entry_point_value: str) -> list[NodeSpec] | None:
    """The node specs of a pack from its manifest, or None where it has none that matches its sources."""
    folder = package_folder(entry_point_value)
    if folder is None or not (folder / FILE_NAME).is_file():
        return None
    try:
        manifest = json.loads((folder / FILE_NAME).read_text(encoding="utf-8"))
        if (manifest.get("dgraph-manifest") != FORMAT or manifest.get("entry_point") != entry_point_value
                or manifest.get("sources") != sources_digest(folder)):
            return None
        if not all(_own(name, folder.name) for name in _modules_named(manifest["nodes"])):
            return None  # a manifest names only its own pack's code (and dgraph's)
        return [spec_from(entry, pack) for entry in manifest["nodes"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
        return None  # a damaged or foreign manifest: importing the pack is always right
