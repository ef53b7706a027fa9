"""Where a training run may write: inside its root folder, into folders it made itself.

A recipe's output and checkpoint folders resolve inside the root (the current folder for `dgraph train`);
`..` and absolute paths that lead out are refused, as run outputs are. A folder that already holds files
is written to only when a marker in it says a recipe made it, so a recipe pointed at a model folder
or a user's folder cannot overwrite its config.json or delete its shards. A checkpoint folder also
records which recipe it belongs to: resuming another recipe's checkpoints is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MARKER = ".dgraph-train.json"


def recipe_fingerprint(recipe: Any) -> str:
    """What makes checkpoints of `recipe` resumable: everything but its folders and its schedule of steps."""
    data = recipe.model_dump(mode="json", exclude={"output", "checkpoints", "train"})
    train = recipe.train.model_dump(mode="json", exclude={"steps", "checkpoint_every", "keep_checkpoints",
                                                          "log_every", "device", "mixed_precision"})
    text = json.dumps({"recipe": data, "train": train}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def claim(folder: str | os.PathLike, what: str, root: Path, owner: str | None = None, create: bool = True) -> Path:
    """Make `folder` (inside `root`) the run's own, or raise ConfigError saying why it cannot be.

    `owner` (a recipe fingerprint) must match the one recorded in the folder, if any; None accepts any
    recipe. With `create=False` only the checks run (the folder is made, and marked, when it is written).
    """
    root = root.resolve()
    path = Path(folder).resolve()
    if path != root and root not in path.parents:
        raise ConfigError(f"{what}: {path} is outside {root}; a recipe writes only inside the folder it is run "
                          f"from (run `dgraph train` from a folder above it, or change `{what}`)")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what}: {path} is a file, not a folder")
    marker = path / MARKER
    if path.is_dir() and any(path.iterdir()):
        if not marker.is_file():
            raise ConfigError(f"{what}: {path} already holds files a recipe did not write; give a new or empty "
                              f"folder (nothing in it is changed)")
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8")).get("recipe")
        except (OSError, ValueError, AttributeError):
            raise ConfigError(f"{what}: {marker} is damaged; delete {path} to start over") from None
        if owner is not None and recorded != owner:
            raise ConfigError(f"{what}: {path} holds checkpoints of another recipe (its model, data or "
                              f"optimiser differ); give another folder, or delete it to start over")
    if create:
        path.mkdir(parents=True, exist_ok=True)
        mark(path, owner)
    return path


def mark(folder: Path, owner: str | None = None) -> None:
    """Record in `folder` that a recipe (`owner`, or any) made it."""
    from ..configuration import write_text_atomic

    if folder.is_dir() and not (folder / MARKER).is_file():
        write_text_atomic(folder / MARKER, json.dumps({"recipe": owner, "made_by": "dgraph train"}) + "\n")
