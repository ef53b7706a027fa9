"""Class labels by name for class-conditional networks (DiT's ImageNet classes).

A diffusers DiT repo keeps the names in model_index.json as `id2label` ({"0": "tench, Tinca tinca", ...});
each comma-separated synonym is a name of that class, as diffusers' DiTPipeline reads them.
"""
from __future__ import annotations

import difflib
import os

from ..configuration import read_json
from ..errors import ConfigError, DgraphError
from ..hub import Source, as_source, fetch_file


def read_labels(pretrained: str | os.PathLike | Source, file: str = "model_index.json") -> dict[str, int]:
    """Every class name (each synonym of `id2label`) -> its class id, from `file` in a folder or repo."""
    source = as_source(pretrained)
    data = read_json(fetch_file(source, file))
    id2label = data.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise ConfigError(f"{source}/{file} has no `id2label` mapping of class ids to names; a class-conditional "
                          f"pipeline repo (such as facebook/DiT-XL-2-256) keeps one there")
    labels: dict[str, int] = {}
    for key, value in id2label.items():
        if not str(key).isdigit() or not isinstance(value, str):
            raise ConfigError(f"{source}/{file}: id2label entry {key!r}: {value!r} is not a class id and its names")
        for name in value.split(","):
            labels[name.strip()] = int(key)
    return labels


def label_ids(labels: dict[str, int], names: list[str], where: str = "") -> list[int]:
    """The class ids of `names`; an unknown name is an error that lists the closest known ones."""
    ids = []
    for name in names:
        if name in labels:
            ids.append(labels[name])
            continue
        close = difflib.get_close_matches(name, list(labels), n=5, cutoff=0.5)
        folded = [known for known in labels if known.lower() == name.lower() and known not in close]
        close = folded + close
        hint = f"close matches: {', '.join(repr(c) for c in close)}" if close else \
            f"there are {len(labels)} names; none is close"
        raise DgraphError(f"{where + ': ' if where else ''}no class is named {name!r}; {hint}")
    return ids
