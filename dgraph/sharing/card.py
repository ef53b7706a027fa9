"""The README.md model card `dgraph push` writes: front matter the Hub indexes (library_name, tags, the
base models, the license when the sources state one, the workflow's file name) and a body saying what the
workflow makes, its inputs, its graph as Mermaid and each source with its revision."""
from __future__ import annotations

from typing import Any

import yaml

from ..engine import viz
from .repo import CARD_KEY


def human_size(size: int) -> str:
    """Bytes for people: 1.2 MB, 340 kB, 12 B (powers of 1000, as the Hub shows sizes)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _tags(graph) -> list[str]:
    outputs = {getattr(t, "name", str(t)) for t in _output_types(graph)}
    tags = ["dgraph", "dgraph-workflow", "diffusion"]
    if "Image" in outputs:
        tags.append("text-to-image" if "prompt" in graph.resolved.inputs else "unconditional-image-generation")
    if "Audio" in outputs:
        tags.append("audio")
    return tags


def _output_types(graph) -> list[Any]:
    types = []
    for link in graph.resolved.outputs.values():
        node = graph.resolved.nodes.get(link.node)
        if node is not None and link.output in node.spec.outputs:
            types.append(node.spec.outputs[link.output].type)
    return types


def model_card(graph, workflow_name: str, repo_id: str, lock: dict[str, Any], licenses: dict[str, str]) -> str:
    """The card's text. `licenses` maps a locked source to the license its repo's card states."""
    data = graph.to_dict()
    sources = lock.get("sources") or {}
    meta: dict[str, Any] = {"library_name": "dgraph", "tags": _tags(graph)}
    base_models = sorted({entry["repo"] for entry in sources.values()})
    if base_models:
        meta["base_model"] = base_models
    stated = sorted(set(licenses.values()))
    if len(stated) == 1:
        meta["license"] = stated[0]
    meta[CARD_KEY] = workflow_name
    name = data.get("name") or workflow_name.rsplit(".", 1)[0]
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    if data.get("description"):
        lines += [data["description"], ""]
    outputs = ", ".join(f"`{n}`" for n in graph.resolved.outputs) or "none"
    lines += [f"A [dgraph](https://pypi.org/project/dgraph/) workflow (`{workflow_name}`); its outputs: {outputs}.",
              "", "## Run it", "", "```", f"dgraph pull hf://{repo_id}          # the files it needs, at the locked commits",
              f"dgraph run hf://{repo_id}" + (' --prompt "..."' if "prompt" in graph.resolved.inputs else ""), "```", ""]
    declared = data.get("inputs") or {}
    if graph.resolved.inputs:
        lines += ["## Inputs", "", "| input | type | default | description |", "|---|---|---|---|"]
        for input_name, (type_ref, has_default, default) in graph.resolved.inputs.items():
            description = (declared.get(input_name) or {}).get("description", "")
            shown = f"`{default!r}`" if has_default and default is not None else ("" if has_default else "required")
            lines.append(f"| `--{input_name.replace('_', '-')}` | {type_ref} | {_cell(shown)} | {_cell(description)} |")
        lines.append("")
    lines += ["## Graph", "", "```mermaid", viz.mermaid(graph.resolved).rstrip(), "```", ""]
    if sources:
        lines += ["## Sources", "", "Pinned in the lock file beside the workflow; `dgraph run --locked` refuses any drift.",
                  "", "| source | revision | commit | files | size | license |", "|---|---|---|---|---|---|"]
        for key, entry in sources.items():
            size = sum(f["size"] for f in entry["files"])
            lines.append(f"| `{key}` | {entry.get('revision') or 'main'} | `{entry['commit'][:12]}` | "
                         f"{len(entry['files'])} | {human_size(size)} | {licenses.get(key, '')} |")
        lines.append("")
    packages = sorted({u for u in _package_sources(graph)})
    if packages:
        lines += ["Also needs the Python package(s) " + ", ".join(f"`{p}`" for p in packages) + " installed.", ""]
    return "\n".join(lines)


def _package_sources(graph) -> list[str]:
    from .sources import source_uses

    return [u.source.location for u in source_uses(graph) if u.source.kind == "package"]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
