"""`dgraph pull`: download exactly the files a workflow reads, at its locked commits, before running it.

The files come from the lock (the one beside the workflow, or in its Hub folder; made and written beside
a local workflow when there is none yet): for each source, the chosen variant's weights and the folder's
config files, never whole repos. The total size is printed first, then one progress bar over all bytes.
Files already in the huggingface_hub cache are not fetched again, so a pull that was interrupted continues
with what is missing; each file is checked against the lock's size and sha256. Afterwards the workflow
runs with HF_HUB_OFFLINE=1.
"""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..errors import HubError
from ..hub import HF_SCHEME, Source, parse_source
from . import ShareError
from .card import human_size
from .lock import build_lock, lock_path, lock_text, read_lock, repo_listing
from .sources import select_files, source_uses


@dataclass(frozen=True)
class Wanted:
    """One file to have in the cache: repo, path, the revision to ask for it by, and what the lock says."""

    repo: str
    path: str
    revision: str
    size: int
    sha256: str | None = None


def _cached(file: Wanted) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(file.repo, file.path, revision=file.revision), str)


class _Bar:
    """One progress line over every byte of a pull; huggingface_hub reports each file's bytes to it through
    its `tqdm_class` hook (an instance per file, all updating this bar)."""

    def __init__(self, total: int, stream: TextIO, enabled: bool):
        self.total, self.done, self.stream, self.enabled = total, 0, stream, enabled
        self.started = self._shown = time.perf_counter()
        self.tty = enabled and stream.isatty()

    def add(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (self.tty and now - self._shown > 0.1 or now - self._shown > 5 or self.done >= self.total):
            self._shown = now
            rate = self.done / max(now - self.started, 1e-6)
            line = (f"{human_size(self.done)} / {human_size(self.total)} "
                    f"({100 * self.done / max(self.total, 1):.0f}%, {human_size(int(rate))}/s)")
            self.stream.write(("\r" + line) if self.tty else line + "\n")
            self.stream.flush()

    def file_class(self):
        bar = self

        class FileProgress:
            def __init__(self, *args, **kwargs):
                bar.add(int(kwargs.get("initial") or 0))

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                pass

            def update(self, n=1):
                bar.add(int(n or 0))

            def close(self):
                pass

        return FileProgress


def _load(workflow: str):
    from ..graph import Graph
    from .repo import load_hub_graph

    return load_hub_graph(workflow) if workflow.startswith(HF_SCHEME) else Graph.load(workflow)


def needed_files(workflow: str, *, write_lock: bool = True) -> tuple[list[Wanted], list[str]]:
    """Every file running `workflow` reads from the Hub, and notes to print (a lock written)."""
    from .repo import lock_of, names_file

    graph = _load(workflow)
    text, where = lock_of(graph, workflow)
    notes = []
    if text is not None:
        lock = read_lock(where, text)
    else:
        lock = build_lock(graph, Path(workflow).name)
        if write_lock and not workflow.startswith(HF_SCHEME):
            from ..configuration import write_text_atomic

            write_text_atomic(lock_path(workflow), lock_text(lock))
            notes.append(f"wrote {lock_path(workflow)} (the commits these files come from)")
    wanted: dict[tuple[str, str, str], Wanted] = {}
    for entry in lock["sources"].values():
        for file in entry["files"]:
            item = Wanted(entry["repo"], file["path"], entry["commit"], file["size"], file.get("sha256"))
            wanted[(item.repo, item.path, item.revision)] = item
    base = graph.base
    if isinstance(base, Source) and base.kind == "hub":
        # The workflow's own repo: its card, workflow and lock by the revision written (so an offline run of
        # hf://owner/repo finds them), and the files its relative sources read, at the workflow's commit.
        listing = repo_listing(base.location, base.revision)
        asked = parse_source(workflow)
        target = parse_source(getattr(graph, "workflow_source", workflow))
        folder = target.path.rpartition("/")[0]
        lock_name = lock_path(target.path.rpartition("/")[2]).name
        card_folder = asked.path.rpartition("/")[0] if names_file(asked) else asked.path
        own = [f"{card_folder}/README.md".lstrip("/"), target.path, f"{folder}/{lock_name}".lstrip("/")]
        sizes = {f.path: f for f in listing.files}
        revision = asked.revision or "main"
        for path in own:
            if path in sizes:
                wanted[(base.location, path, revision)] = Wanted(base.location, path, revision, sizes[path].size,
                                                              sizes[path].sha256)
        for use in source_uses(graph):
            if use.source.kind == "hub" and use.source.location == base.location:
                for file in select_files(listing.files, use):
                    wanted[(base.location, file.path, listing.commit)] = Wanted(base.location, file.path,
                                                                                listing.commit, file.size, file.sha256)
    return sorted(wanted.values(), key=lambda w: (w.repo, w.path)), notes


def pull(workflow: str, *, stream: TextIO | None = None, progress: bool = True) -> dict[str, Any]:
    """Download what `workflow` needs (see the module docstring). Returns counts and sizes."""
    from huggingface_hub import hf_hub_download

    stream = stream or sys.stderr
    files, notes = needed_files(workflow)
    for note in notes:
        print(note, file=stream)
    missing = [f for f in files if not _cached(f)]
    total = sum(f.size for f in missing)
    have = sum(f.size for f in files) - total
    print(f"{len(files)} files: {len(missing)} to download ({human_size(total)}), "
          f"{len(files) - len(missing)} already in the cache ({human_size(have)})", file=stream)
    bar = _Bar(total, stream, progress)
    for file in missing:
        try:
            path = Path(hf_hub_download(file.repo, file.path, revision=file.revision, tqdm_class=bar.file_class()))
        except Exception as error:  # a network error, a file gone since the lock: say which file
            raise HubError(f"hf://{file.repo}/{file.path}@{file.revision}: download failed: {error}; "
                           "run `dgraph pull` again to continue") from None
        _verify(file, path)
    if progress and bar.tty and missing:
        stream.write("\n")
    for file in files:
        if file not in missing:
            from huggingface_hub import try_to_load_from_cache

            _verify(file, Path(try_to_load_from_cache(file.repo, file.path, revision=file.revision)))
    return {"files": len(files), "downloaded": len(missing), "bytes": total, "cached_bytes": have}


def _verify(file: Wanted, path: Path) -> None:
    size = path.stat().st_size
    if size != file.size:
        raise ShareError(f"hf://{file.repo}/{file.path}@{file.revision}: {size} bytes, the lock says {file.size}")
    if file.sha256 is not None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != file.sha256:
            raise ShareError(f"hf://{file.repo}/{file.path}@{file.revision}: sha256 {digest.hexdigest()}, "
                             f"the lock says {file.sha256}")
