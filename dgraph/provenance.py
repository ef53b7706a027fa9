"""What a written picture remembers of how it was made: the workflow, its input values (the seed among
them) and where the workflow's relative sources resolve — PNG text chunks that `dgraph run --from-image`
reads back. The one home of those keys.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import DgraphError

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


def read_png(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """The workflow, input values and base embedded in a PNG dgraph wrote."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as picture:
            text = dict(getattr(picture, "text", {}) or {})
    except OSError as error:
        raise DgraphError(f"{path}: cannot read PNG text metadata: {error}") from None
    if WORKFLOW_KEY not in text:
        raise DgraphError(f"{path}: this PNG carries no dgraph workflow (it was not written by image.save "
                          "with embed_workflow: true)")
    workflow = _json_object(path, WORKFLOW_KEY, text[WORKFLOW_KEY])
    inputs = _json_object(path, INPUTS_KEY, text.get(INPUTS_KEY, "{}"))
    base = text.get(BASE_KEY)
    return workflow, inputs, base if isinstance(base, str) and base else None


def _json_object(path: Any, key: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise DgraphError(f"{path}: the PNG's {key!r} text is not valid JSON") from None
    if not isinstance(value, dict):
        raise DgraphError(f"{path}: the PNG's {key!r} text must be a JSON object, not {type(value).__name__}")
    return value


def _jsonable(values: dict) -> dict:
    out = {}
    for key, value in values.items():
        try:
            json.dumps(value)
            out[key] = value
        except TypeError:
            out[key] = repr(value)
    return out
