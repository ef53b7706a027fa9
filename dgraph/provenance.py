"""What a written picture remembers of how it was made: the workflow, its input values (the seed among
them) and where the workflow's relative sources resolve — PNG text chunks that `dgraph run --from-image`
reads back (safely, as any workflow file: see `cli._graph_from_image`). The one home of those keys.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


WORKFLOW_KEY = "dgraph:workflow"
INPUTS_KEY = "dgraph:inputs"
BASE_KEY = "dgraph:base"  # the folder (or hf:// location) relative sources in the workflow resolve against


def png_text(workflow: dict[str, Any], inputs: dict[str, Any], base: Any) -> dict[str, str]:
    """The text chunks to embed. A local base is recorded as an absolute folder, so the picture reproduces
    from wherever the command runs."""
    chunks = {WORKFLOW_KEY: json.dumps(workflow, sort_keys=False), INPUTS_KEY: json.dumps(_jsonable(inputs))}
    if base is not None:
        chunks[BASE_KEY] = str(base) if not isinstance(base, (str, os.PathLike)) else str(Path(base).resolve())
    return chunks


def _jsonable(values: dict) -> dict:
    out = {}
    for key, value in values.items():
        try:
            json.dumps(value)
            out[key] = value
        except TypeError:
            out[key] = repr(value)
    return out
