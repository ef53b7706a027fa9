"""Output paths that cannot leave the output folder."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from ..configuration import write_bytes_atomic
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


def write_new_files(output_dir: str | os.PathLike, stem: str, suffix: str, payloads: Sequence[bytes], *,
                    overwrite: bool = False, plain_single: bool = False) -> list[Path]:
    """Write each payload as `STEM_NNN{suffix}` inside the output folder and return the paths.

    Numbers continue after the highest one already there, and each name is claimed atomically (exclusive
    create), so neither a later run nor one running at the same time replaces an earlier picture.
    `overwrite` numbers from 000 and replaces. `plain_single`: one payload is written as `STEM{suffix}` while
    that name is free.
    """
    first = safe_output_path(output_dir, f"{stem}{suffix}")
    folder, name = first.parent, Path(stem).name
    if overwrite:
        if plain_single and len(payloads) == 1:
            write_bytes_atomic(first, payloads[0], exclusive=False)
            return [first]
        paths = [folder / f"{name}_{index:03d}{suffix}" for index in range(len(payloads))]
        for path, data in zip(paths, payloads):
            write_bytes_atomic(path, data, exclusive=False)
        return paths
    paths: list[Path] = []
    pending = list(payloads)
    if plain_single and len(pending) == 1:
        try:
            write_bytes_atomic(first, pending[0], exclusive=True)
            return [first]
        except FileExistsError:
            pass
    number = _next_number(folder, name, suffix)
    for data in pending:
        while True:
            path = folder / f"{name}_{number:03d}{suffix}"
            number += 1
            try:
                write_bytes_atomic(path, data, exclusive=True)
                break
            except FileExistsError:  # taken since the folder was listed: by another run, take the next
                continue
        paths.append(path)
    return paths


def _next_number(folder: Path, name: str, suffix: str) -> int:
    pattern = re.compile(re.escape(name) + r"_(\d+)" + re.escape(suffix) + "$")
    numbers = [int(m.group(1)) for entry in os.scandir(folder) if (m := pattern.match(entry.name))]
    return max(numbers) + 1 if numbers else (1 if (folder / f"{name}{suffix}").exists() else 0)
