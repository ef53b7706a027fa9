"""Turn a source (folder, hf://, bare repo id, pkg://) into one local folder that transformers can read.

transformers is given a plain folder and `local_files_only=True`, so every download goes through
dgraph.hub (one cache, one set of error messages, `HF_HUB_OFFLINE` honoured) and transformers never
reaches the network on its own.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import SourceError
from ..hub import Source, as_source, fetch_file, single_file_holds_no
from ..configuration import read_json
from ..models.modeling import add_variant

# Files a tokenizer of any transformers family may need; absent ones are skipped.
TOKENIZER_FILES = (
    "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "config.json",
)


def resolve_source(pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                   revision: str | None = None) -> Source:
    """`as_source` with a check that a folder source exists, so the error names the folder."""
    source = as_source(pretrained, subfolder, revision)
    if source.is_single_file:
        raise SourceError(single_file_holds_no(source, "a tokenizer or a text encoder's folder"))
    if source.kind == "folder" and not Path(source.location).is_dir():
        raise SourceError(f"{source}: folder {source.location} does not exist (check the path, or write "
                          f"hf://owner/repo/subfolder for a Hub repo)")
    return source


def local_folder(source: Source, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Path:
    """The local folder holding `required` files (errors if one is missing) and any of `optional`.

    For a Hub source the files are downloaded into the huggingface_hub cache, where they sit side by
    side in one snapshot folder.
    """
    folders = set()
    for name in required:
        folders.add(fetch_file(source, name, required=True).parent)
    for name in optional:
        path = fetch_file(source, name, required=False)
        if path is not None:
            folders.add(path.parent)
    if len(folders) != 1:  # a Hub branch moved between two downloads
        raise SourceError(f"{source}: files came from different snapshots ({', '.join(map(str, sorted(folders)))}); "
                          f"pin a revision with @<commit>")
    return folders.pop()


def weight_files(source: Source, variant: str | None, allow_pickle: bool) -> tuple[str, ...]:
    """Names of the weight files to fetch: safetensors (single or sharded), else pickles if allowed.

    Variants are named as transformers names them: `model.fp16.safetensors`, `model.safetensors.index.fp16.json`.
    """
    stems = ["model.safetensors"] + (["pytorch_model.bin"] if allow_pickle else [])
    for stem in stems:
        single = add_variant(stem, variant)
        if fetch_file(source, single, required=False) is not None:
            return (single,)
        index_name = add_variant(f"{stem}.index.json", variant)
        index = fetch_file(source, index_name, required=False)
        if index is not None:
            shards = sorted(set(read_json(index).get("weight_map", {}).values()))
            return (index_name, *shards)
    return ()
