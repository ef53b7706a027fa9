"""Lock files: every Hub source of a workflow pinned to a commit, with the files it reads.

`imagen.lock.json` beside `imagen.yaml` records, for each `hf://` source, the revision as written, the
commit it resolved to and each file the node reads there (path, size, sha256 where the Hub gives it); the
node types with their versions and the packs they come from; the dgraph version. A run of a workflow with
a lock beside it reads each source at its locked commit; `--locked` makes any difference an error.

Sources inside the repo a workflow was itself fetched from (its `./unet` when run as hf://owner/repo) are
not locked separately: they are read at the commit the workflow file came from.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..configuration import write_text_atomic
from ..errors import HubError
from ..hub import Source, offline
from . import ShareError
from .sources import RemoteFile, SourceUse, select_files, source_uses

LOCK_FORMAT = 1
LOCK_SUFFIX = ".lock.json"


def lock_path(workflow: str | Path) -> Path:
    """Where the lock of a workflow file lives: `imagen.yaml` -> `imagen.lock.json` beside it."""
    workflow = Path(workflow)
    return workflow.with_name(workflow.name.rsplit(".", 1)[0] + LOCK_SUFFIX)


@dataclass(frozen=True)
class Listing:
    """A Hub repo at one commit: the commit, every file, and the model card's metadata."""

    commit: str
    files: list[RemoteFile]
    card: dict[str, Any]


_LISTINGS: dict[tuple[str, str], Listing] = {}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def repo_listing(repo_id: str, revision: str | None) -> Listing:
    """The commit `revision` (default: main) of a Hub repo resolves to, and its files with sizes and sha256s.

    A commit's listing never changes, so it is asked once per process; a branch or tag is asked each time.
    """
    key = (repo_id, revision or "main")
    if key not in _LISTINGS or not _COMMIT.match(key[1]):
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

        if offline():
            raise HubError(f"hf://{repo_id}: resolving revision {key[1]!r} needs the Hub, and HF_HUB_OFFLINE is set")
        try:
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        except RevisionNotFoundError:
            raise HubError(f"hf://{repo_id}: revision {key[1]!r} does not exist") from None
        except RepositoryNotFoundError:
            raise HubError(f"hf://{repo_id}: no Hub repo {repo_id!r} (or it is private: run `hf auth login`)") from None
        except (HfHubHTTPError, OSError) as error:
            raise HubError(f"hf://{repo_id}: cannot list the repo at {key[1]!r}: {error}") from None
        files = [RemoteFile(s.rfilename, s.size or 0, s.lfs.sha256 if s.lfs else None) for s in info.siblings or []]
        card = info.card_data.to_dict() if info.card_data is not None else {}
        _LISTINGS[key] = _LISTINGS[(repo_id, info.sha)] = Listing(info.sha, files, card)
    return _LISTINGS[key]


def forget_listings() -> None:
    """Ask the Hub again next time (a repo may have moved since)."""
    _LISTINGS.clear()


def _key(source: Source) -> str:
    return str(source)


def _locked_uses(graph) -> list[SourceUse]:
    """Hub sources the lock pins: not those inside the Hub folder the workflow itself came from."""
    base = graph.base if isinstance(graph.base, Source) and graph.base.kind == "hub" else None
    return [u for u in source_uses(graph) if u.source.kind == "hub"
            and not (base is not None and u.source.location == base.location)]


def source_entry(uses: list[SourceUse]) -> dict[str, Any]:
    """The lock entry of one source (all the nodes that read it), resolved on the Hub now."""
    source = uses[0].source
    listing = repo_listing(source.location, source.revision)
    files: dict[str, RemoteFile] = {}
    for use in uses:
        files.update({f.path: f for f in select_files(listing.files, use)})
    variants = sorted({u.variant or "" for u in uses})
    return {"repo": source.location, "path": source.path, "revision": source.revision, "commit": listing.commit,
            "variant": variants[0] or None if len(variants) == 1 else variants,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in sorted(files.values(),
                                                                                          key=lambda f: f.path)]}


def build_lock(graph, workflow_name: str) -> dict[str, Any]:
    """The lock of a loaded graph (resolving every Hub source on the Hub)."""
    grouped: dict[str, list[SourceUse]] = {}
    for use in _locked_uses(graph):
        grouped.setdefault(_key(use.source), []).append(use)
    nodes = {}
    for node in graph.resolved.nodes.values():
        nodes[node.spec.type_name] = {"version": node.spec.version, "pack": node.spec.pack or None}
    return {"dgraph_lock": LOCK_FORMAT, "dgraph": __version__, "workflow": workflow_name,
            "sources": {key: source_entry(uses) for key, uses in sorted(grouped.items())},
            "nodes": dict(sorted(nodes.items()))}


def lock_text(lock: dict[str, Any]) -> str:
    return json.dumps(lock, indent=2) + "\n"


def write_lock(graph, workflow: str | Path) -> Path:
    """Write the lock beside a local workflow file; returns its path."""
    path = lock_path(workflow)
    write_text_atomic(path, lock_text(build_lock(graph, Path(workflow).name)))
    return path


def read_lock(path: str | Path, text: str | None = None) -> dict[str, Any]:
    """A lock file, checked for its format."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8") if text is None else text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ShareError(f"{path}: not a readable lock file ({error}); write it again with `dgraph lock`") from None
    if not isinstance(data, dict) or data.get("dgraph_lock") != LOCK_FORMAT or not isinstance(data.get("sources"), dict):
        raise ShareError(f"{path}: not a dgraph lock file of format {LOCK_FORMAT}; write it again with `dgraph lock`")
    return data


def drift(graph, lock: dict[str, Any], *, resolve: bool = True) -> list[str]:
    """Every difference between a workflow as it is now and its lock, one sentence each (empty: none).

    With `resolve`, each source's revision is asked of the Hub again (a branch may have moved); without it
    (offline) only what can be known locally is compared.
    """
    changes = []
    if lock.get("dgraph") != __version__:
        changes.append(f"dgraph is version {__version__}, the lock was made with {lock.get('dgraph')}")
    locked_nodes = lock.get("nodes") or {}
    for node in graph.resolved.nodes.values():
        spec, entry = node.spec, locked_nodes.get(node.spec.type_name)
        if entry is None:
            changes.append(f"node type {spec.type_name}: not in the lock")
        elif entry.get("version") != spec.version:
            changes.append(f"node type {spec.type_name}: version {spec.version}, the lock has {entry.get('version')}")
        elif (entry.get("pack") or None) != (spec.pack or None):
            changes.append(f"node type {spec.type_name}: comes from pack {spec.pack or '?'}, "
                           f"the lock has {entry.get('pack')}")
    used = {node.spec.type_name for node in graph.resolved.nodes.values()}
    changes += [f"node type {name}: in the lock but no longer used" for name in locked_nodes if name not in used]
    grouped: dict[str, list[SourceUse]] = {}
    for use in _locked_uses(graph):
        grouped.setdefault(_key(use.source), []).append(use)
    locked_sources = lock["sources"]
    for key, uses in grouped.items():
        entry = locked_sources.get(key)
        if entry is None:
            changes.append(f"{key} (node {uses[0].node!r}): not in the lock")
            continue
        variants = sorted({u.variant or "" for u in uses})
        variant = variants[0] or None if len(variants) == 1 else variants
        if variant != entry.get("variant"):
            changes.append(f"{key}: variant {variant!r}, the lock has {entry.get('variant')!r}")
        if resolve:
            now = source_entry(uses)
            if now["commit"] != entry.get("commit"):
                changes.append(f"{key}: revision {entry.get('revision') or 'main'!r} now resolves to commit "
                               f"{now['commit']}, the lock has {entry.get('commit')}"
                               + _file_changes(entry.get("files") or [], now["files"]))
            elif now["files"] != entry.get("files"):
                changes.append(f"{key}: the files it reads differ from the lock" +
                               _file_changes(entry.get("files") or [], now["files"]))
    changes += [f"{key}: in the lock but no longer used" for key in locked_sources if key not in grouped]
    return changes


def _file_changes(old: list[dict], new: list[dict]) -> str:
    before, after = {f["path"]: f for f in old}, {f["path"]: f for f in new}
    parts = [f"{p} added" for p in after if p not in before]
    parts += [f"{p} removed" for p in before if p not in after]
    for path in after.keys() & before.keys():
        a, b = before[path], after[path]
        if a.get("size") != b.get("size"):
            parts.append(f"{path} size {a.get('size')} -> {b.get('size')}")
        elif a.get("sha256") != b.get("sha256"):
            parts.append(f"{path} sha256 {str(a.get('sha256'))[:12]} -> {str(b.get('sha256'))[:12]}")
    return f" ({'; '.join(sorted(parts))})" if parts else ""


def pin(graph, lock: dict[str, Any]) -> list[str]:
    """Make each locked Hub source of the graph read its locked commit. Returns the sources the lock does not
    know (read as written)."""
    unknown = []
    for use in _locked_uses(graph):
        entry = lock["sources"].get(_key(use.source))
        if entry is None:
            unknown.append(_key(use.source))
            continue
        pinned = str(replace(use.source, revision=entry["commit"]))
        graph.set(use.graph_input or f"{use.node}.{use.input}", pinned)
    return unknown


def commit_of(path: str | Path) -> str | None:
    """The commit a file in the huggingface_hub cache belongs to (`.../snapshots/<commit>/...`)."""
    parts = Path(path).parts
    if "snapshots" in parts:
        index = parts.index("snapshots")
        if index + 1 < len(parts):
            return parts[index + 1]
    return None
