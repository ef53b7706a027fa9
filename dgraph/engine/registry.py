"""The node registry, filled from the `dgraph.nodes` entry-point group.

An entry point names a callable returning node functions, or a module whose node functions are
collected. The built-in catalogue (`nodes:catalogue`) registers exactly the way a third-party pack does.
Two packs defining the same type name is an error naming both: nothing is silently overridden.

A pack that ships a current node manifest (dgraph.engine.manifest) is read from it, not imported: its node
functions, and torch with them, are imported when a graph first runs one.
"""
from __future__ import annotations

import difflib
import types
from importlib.metadata import entry_points
from typing import Any, Iterable

from ..errors import DgraphError
from ..node import NodeSpec, spec_of

GROUP = "dgraph.nodes"


class RegistryError(DgraphError):
    """Node packs conflict or cannot be loaded."""


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, NodeSpec] = {}

    def add(self, obj: Any, pack: str = "") -> NodeSpec:
        """Register a node function (decorated with @node)."""
        spec = spec_of(obj)
        if spec is None:
            raise RegistryError(f"{obj!r} is not a node type (decorate it with @dgraph.node.node)")
        return self.add_spec(spec, pack)

    def add_spec(self, spec: NodeSpec, pack: str = "") -> NodeSpec:
        """Register a node spec (one a manifest describes, or a function's)."""
        existing = self._specs.get(spec.type_name)
        if existing is not None and existing.fn is not spec.fn:
            raise RegistryError(
                f"node type {spec.type_name!r} is defined twice: by {existing.qualname} (pack {existing.pack or '?'}) "
                f"and by {spec.qualname} (pack {pack or '?'}); uninstall one of the packs or rename the type")
        spec = _with_pack(spec, pack)
        self._specs[spec.type_name] = spec
        return spec

    def add_pack(self, name: str, provided: Any) -> None:
        """Register everything an entry point provides: a module's node functions, or a callable's result."""
        if isinstance(provided, types.ModuleType):
            items: Iterable[Any] = [v for v in vars(provided).values() if spec_of(v) is not None]
        elif callable(provided) and spec_of(provided) is None:
            items = provided()
        else:
            items = [provided]
        for item in items:
            self.add(item, name)

    def get(self, type_name: str) -> NodeSpec | None:
        return self._specs.get(type_name)

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._specs

    def __iter__(self):
        return iter(sorted(self._specs.values(), key=lambda s: s.type_name))

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def suggest(self, type_name: str, n: int = 3) -> list[str]:
        """Close known names, for 'did you mean' hints."""
        if len(type_name) > 200:  # no name is that long; comparing a hostile 8 MB one costs seconds
            return []
        close = difflib.get_close_matches(type_name, self.names(), n=n, cutoff=0.5)
        if not close:  # same last part in another namespace ("save" -> "image.save")
            tail = type_name.rsplit(".", 1)[-1]
            close = [name for name in self.names() if name.rsplit(".", 1)[-1] == tail][:n]
        return close


def _with_pack(spec: NodeSpec, pack: str) -> NodeSpec:
    from dataclasses import replace

    return replace(spec, pack=pack) if pack and spec.pack != pack else spec


def load_installed(manifests: bool = True) -> Registry:
    """A registry holding every node type that installed packs declare; `manifests=False` imports every pack
    even where its manifest would do (what a manifest is generated from)."""
    from .manifest import read_pack

    registry = Registry()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        specs = read_pack(ep.name, ep.value) if manifests else None
        if specs is not None:
            for spec in specs:
                registry.add_spec(spec, ep.name)
            continue
        try:
            provided = ep.load()
        except Exception as error:  # a broken pack must say which one it is
            raise RegistryError(f"node pack {ep.name!r} ({ep.value}) failed to load: {error}") from error
        registry.add_pack(ep.name, provided)
    return registry


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The registry of installed packs, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_installed()
    return _DEFAULT
