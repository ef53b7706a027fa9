"""Output paths that cannot leave the output folder."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DgraphError


class OutputPathError(DgraphError):
    """A node tried to write outside the output folder."""


def safe_output_path(output_dir: str | os.PathLike, relative: str) -> Path:
    """`output_dir / relative`, refusing absolute paths, `..` and links that lead outside."""
    root = Path(output_dir).resolve()
    candidate = Path(relative)
    if candidate.is_absolute() or candidate.drive:
        raise OutputPathError(f"output path {relative!r} is absolute; give a path relative to the output folder {root}")
    target = (root / candidate).resolve()
    if target != root and root not in target.parents:
        raise OutputPathError(f"output path {relative!r} leaves the output folder {root}; remove the '..' or the link")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target
