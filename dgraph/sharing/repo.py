"""The workflow of a Hub repo, for `dgraph run hf://owner/repo[@rev]`, and the lock that comes with it.

A repo's workflow is the file its model card names (`dgraph_workflow:` in the front matter, which
`dgraph push` writes), else the one workflow file at its root; a diffusers repo (model_index.json) runs
the graph of its pipeline. A workflow read from the Hub is read at one commit: its relative sources and
its lock come from the same commit as the file itself.
"""
from __future__ import annotations

from dataclasses import replace

from ..errors import HubError
from ..hub import HF_SCHEME, Source, fetch_file, hub_reachable, offline, parse_source
from . import ShareError
from .lock import commit_of, drift, lock_path, pin, read_lock, repo_listing

WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")
CARD_KEY = "dgraph_workflow"


def names_file(source: Source) -> bool:
    return source.path.lower().endswith(WORKFLOW_SUFFIXES)


def card_metadata(source: Source) -> dict:
    """The front matter of the README.md at `source` (empty when there is none)."""
    from huggingface_hub.repocard import metadata_load

    path = fetch_file(source, "README.md", required=False)
    return (metadata_load(path) or {}) if path is not None else {}


def repo_workflow(text: str) -> str:
    """What `dgraph run TEXT` reads for a Hub source: a workflow file `hf://owner/repo/file.yaml@rev`, or the
    repo folder itself when it is a diffusers pipeline. Raises when the repo holds neither."""
    source = parse_source(text)
    if names_file(source):
        return text
    named = card_metadata(source).get(CARD_KEY)
    if isinstance(named, str) and named:
        return str(source.join(named))
    if fetch_file(source, "model_index.json", required=False) is not None:
        return text
    if offline() or not hub_reachable():
        fetch_file(source, "README.md")  # not in the cache: the usual error, saying how to fetch it
    prefix = f"{source.path}/" if source.path else ""
    candidates = [f.path[len(prefix):] for f in repo_listing(source.location, source.revision).files
                  if f.path.startswith(prefix) and "/" not in f.path[len(prefix):]
                  and f.path.lower().endswith((".yaml", ".yml"))]
    if len(candidates) == 1:
        return str(source.join(candidates[0]))
    found = f"workflow files {', '.join(candidates)}" if candidates else "no workflow file and no model_index.json"
    raise HubError(f"{text}: the repo has {found}; name the workflow, e.g. "
                   f"hf://{source.location}/{(candidates or ['workflow.yaml'])[0]}"
                   + (f"@{source.revision}" if source.revision else ""))


def load_hub_graph(text: str):
    """The Graph of a Hub source (see `repo_workflow`), its relative sources read at the workflow's commit."""
    from ..graph import Graph

    target = repo_workflow(text)
    source = parse_source(target)
    if not names_file(source):
        return Graph.from_pretrained(target)
    graph = Graph.load(target)
    folder, _, name = source.path.rpartition("/")
    commit = commit_of(fetch_file(replace(source, path=folder), name))
    if commit is not None and isinstance(graph.base, Source):
        graph.base = replace(graph.base, revision=commit)
    graph.workflow_source = target
    return graph


def use_lock(graph, workflow: str, *, locked: bool = False) -> list[str]:
    """Apply the lock beside a workflow (a local file, or the one in the workflow's Hub folder): each locked
    source reads its locked commit. With `locked`, any drift is an error naming the source and what changed;
    so is a missing lock. Returns notes to print (sources the lock does not know)."""
    text, where = lock_of(graph, workflow)
    if text is None:
        if locked:
            raise ShareError(f"{workflow}: --locked, but there is no lock file {where}; "
                             f"write one with `dgraph lock {workflow}`")
        return []
    lock = read_lock(where, text)
    if locked:
        changes = drift(graph, lock, resolve=not offline() and hub_reachable())
        if changes:
            raise ShareError(f"{workflow}: differs from its lock {where}:\n  - " + "\n  - ".join(changes) +
                             f"\nrun `dgraph lock {workflow}` to accept the changes, or undo them")
    unknown = pin(graph, lock)
    return [f"{key}: not in the lock {where}; read as written" for key in unknown]


def lock_of(graph, workflow: str) -> tuple[str | None, str]:
    """The text of a workflow's lock (None when it has none) and where it is: beside a local file, or in the
    workflow's Hub folder at the workflow's commit."""
    if workflow.startswith(HF_SCHEME):
        target = getattr(graph, "workflow_source", None)
        if target is None:  # a diffusers pipeline repo: nothing of ours to lock it with
            return None, f"in {workflow}"
        name = lock_path(parse_source(target).path.rpartition("/")[2]).name
        path = fetch_file(graph.base, name, required=False)
        where = str(graph.base.join(name))
        return (path.read_text(encoding="utf-8") if path is not None else None), where
    path = lock_path(workflow)
    return (path.read_text(encoding="utf-8") if path.is_file() else None), str(path)
