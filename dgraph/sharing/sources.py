"""What a workflow reads: its Hub sources (and the exact files of each), and the local files it names.

A node input typed `Source` names a folder of weights; the node's own `variant` and `allow_pickle`
literals say which weight files in that folder it reads. That choice is made here once, from a Hub
listing, so the lock file, `dgraph pull` and the model card agree on the same files — the weights of the
chosen variant in the one format the loaders read, with the folder's config and tokenizer files, never a
whole repo.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.workflow import GraphRef, Literal
from ..hub import SINGLE_FILE_COMPONENTS, Source, parse_source

# Weight formats: only safetensors are read, pickles only with allow_pickle; the others never.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".pb", ".gguf")
# Other files a loader reads from a folder: configs, tokenizer vocabularies, sentencepiece models.
READ_SUFFIXES = (".json", ".txt", ".model")
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
_INDEX = re.compile(r"^(?P<stem>.+?)(?P<format>\.safetensors|\.bin)\.index(?:\.(?P<variant>[^.]+))?\.json$")


@dataclass(frozen=True)
class SourceUse:
    """One node input that names a source."""

    node: str
    input: str
    text: str  # as written in the file
    source: Source  # resolved against the workflow's folder (or its Hub folder)
    variant: str | None = None
    allow_pickle: bool = False
    graph_input: str | None = None  # the graph input whose default this is, when the node reads `$name`


@dataclass(frozen=True)
class RemoteFile:
    """A file in a Hub repo at one commit: its path in the repo, size, and sha256 (the Hub gives it for
    files stored with LFS)."""

    path: str
    size: int
    sha256: str | None = None


def source_uses(graph) -> list[SourceUse]:
    """Every `Source` input of the graph's nodes given in the file: a literal, or a graph input's default."""
    uses = []
    for name, node in graph.resolved.nodes.items():
        literals = {k: b.value for k, b in node.bindings.items() if isinstance(b, Literal)}
        defaults = {k: b.name for k, b in node.bindings.items() if isinstance(b, GraphRef)}
        variant = literals.get("variant") if "variant" in node.spec.inputs else None
        for key in node.bindings:
            if str(node.spec.inputs[key].type) != "Source":
                continue
            graph_input = defaults.get(key)
            if graph_input is not None:
                _, has_default, value = graph.resolved.inputs[graph_input]
                value = value if has_default else None
            else:
                value = literals.get(key)
            if isinstance(value, str):
                uses.append(SourceUse(name, key, value, parse_source(value, graph.base), variant or None,
                                      bool(literals.get("allow_pickle", False)), graph_input))
    return uses


def path_literals(graph) -> list[tuple[str, str]]:
    """(where, text) of every string literal that may name a local file: node inputs and graph-input
    defaults. `where` is `node.input` or `$input`."""
    found = []
    for name, node in graph.resolved.nodes.items():
        for key, binding in node.bindings.items():
            if isinstance(binding, Literal) and _pathlike(binding.value):
                found.append((f"{name}.{key}", binding.value))
    for name, (_, has_default, default) in graph.resolved.inputs.items():
        if has_default and _pathlike(default):
            found.append((f"${name}", default))
    return found


def _pathlike(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) < 1024 and "\n" not in value and not value.startswith(
        ("hf://", "pkg://", "@", "$"))


def file_variant(name: str) -> tuple[str, str | None]:
    """(format suffix, variant) of a weight file name: `diffusion_pytorch_model.fp16-00001-of-00002.safetensors`
    -> (".safetensors", "fp16"); `model.safetensors.index.fp16.json` -> (".safetensors", "fp16")."""
    index = _INDEX.match(name)
    if index:
        return index["format"], index["variant"]
    stem, dot, suffix = name.rpartition(".")
    stem = _SHARD.sub("", stem)
    parts = stem.split(".")
    return f"{dot}{suffix}", parts[-1] if len(parts) > 1 else None


def select_files(listing: list[RemoteFile], use: SourceUse) -> list[RemoteFile]:
    """The files of `listing` (a whole repo at one commit) that the node of `use` reads from its folder
    (a single-file checkpoint: that file)."""
    if use.source.is_single_file:
        return [f for f in listing if f.path == use.source.path]
    prefix = f"{use.source.path}/" if use.source.path else ""
    here = [f for f in listing if f.path.startswith(prefix) and "/" not in f.path[len(prefix):]]
    weights, others = [], []
    for file in here:
        name = file.path[len(prefix):]
        if name.endswith(WEIGHT_SUFFIXES) or _INDEX.match(name):
            weights.append((file, *file_variant(name)))
        elif name.endswith(READ_SUFFIXES):
            others.append(file)
    wanted = [(f, fmt) for f, fmt, variant in weights if variant == use.variant]
    chosen = [f for f, fmt in wanted if fmt == ".safetensors"]
    if not chosen and use.allow_pickle:
        chosen = [f for f, fmt in wanted if fmt == ".bin"]
    return sorted(others + chosen, key=lambda f: f.path)


def local_path(text: str, folder: Path) -> Path | None:
    """The local file or folder a literal names, relative to the workflow's folder, if one exists."""
    if text.rpartition("#")[2] in SINGLE_FILE_COMPONENTS:  # model.safetensors#vae reads model.safetensors
        text = text.rpartition("#")[0] or text
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = folder / path
    try:
        return path if path.exists() else None
    except OSError:  # a name too long for the file system is not a path
        return None
