"""Tokenizers loaded from any dgraph source, and one `tokenize` for every family.

BERT-family tokenizers are read from their tokenizer.json by dgraph (tokenizer_file.py); the others
through transformers.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from ..configuration import read_json
from ..errors import ConfigError, SourceError
from ..hub import Source
from .files import TOKENIZER_FILES, local_folder, resolve_source
from .tokenizer_file import NATIVE_CLASSES, FileTokenizer
from .imports import TRANSFORMERS_LOCK

logger = logging.getLogger("dgraph")

# transformers' stand-in for "no limit" (int(1e30)); anything this large means the tokenizer has no max length.
_UNBOUNDED = 10**9
PADDING_MODES = ("max_length", "longest")


@dataclass(frozen=True)
class TokenBatch:
    """Token ids and their attention mask (1 = a real token, 0 = padding), both (batch, length) int64."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def to(self, device: torch.device | str) -> "TokenBatch":
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device))


def load_tokenizer(pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                   revision: str | None = None):
    """Load a tokenizer (CLIP, T5, BERT family, ...) from a folder, Hub repo or package folder.

    `pretrained` is a dgraph source string (`./folder`, `hf://owner/repo/sub@rev`, `owner/repo`,
    `pkg://package/sub`). Only tokenizer files are read; no code from the folder is run. A BERT-family
    folder with a tokenizer.json gives dgraph's FileTokenizer; any other a transformers tokenizer.
    """
    source = resolve_source(pretrained, subfolder, revision)
    folder = local_folder(source, required=("tokenizer_config.json",), optional=TOKENIZER_FILES)
    config = read_json(folder / "tokenizer_config.json")
    if config.get("tokenizer_class") in NATIVE_CLASSES and (folder / "tokenizer.json").is_file():
        special = folder / "special_tokens_map.json"
        if special.is_file():
            config = {**read_json(special), **config}
        try:
            return FileTokenizer.from_folder(folder, config)
        except Exception as error:  # the Rust parser's own error says what is wrong with the file
            raise SourceError(f"{source}: cannot load a tokenizer from {folder}: {error}") from None

    try:
        with TRANSFORMERS_LOCK:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as error:
        raise SourceError(f"{source}: cannot load a tokenizer from {folder}: {error}") from None


def tokenize(tokenizer, texts: str | list[str], max_length: int | None = None, padding: str = "max_length",
             truncation: bool = True) -> TokenBatch:
    """Tokenize `texts` into a TokenBatch.

    padding="max_length" pads every text to `max_length` (what diffusion models were trained with,
    e.g. 77 for CLIP and LDM-BERT); padding="longest" pads to the longest text of the batch.
    `max_length` defaults to the tokenizer's own limit. With `truncation` texts longer than
    `max_length` are cut (special tokens kept), as diffusers' pipelines cut prompts at CLIP's 77 tokens,
    and a warning names the words dropped; without it they raise.
    An empty prompt "" gives the tokenizer's special tokens only (the unconditional branch of guidance).
    """
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise ConfigError(f"tokenize: texts must be a string or a list of strings, got {texts!r}")
    if padding not in PADDING_MODES:
        raise ConfigError(f"tokenize: padding={padding!r} is not one of {', '.join(PADDING_MODES)}")
    if max_length is None:
        max_length = tokenizer.model_max_length
        if max_length is None or max_length >= _UNBOUNDED:
            if padding == "max_length" or truncation:
                raise ConfigError(f"tokenize: {type(tokenizer).__name__} has no maximum length of its own; "
                                  f"pass max_length (for example 77 or 128)")
            max_length = None
    elif max_length < 1:
        raise ConfigError(f"tokenize: max_length must be at least 1, got {max_length}")
    batch = tokenizer(list(texts), padding=padding, max_length=max_length, truncation=truncation,
                      return_tensors="pt")
    if truncation and max_length is not None:
        _warn_if_cut(tokenizer, texts, batch["attention_mask"], max_length)
    if not truncation and max_length is not None and batch["input_ids"].shape[1] > max_length:
        longest = int(batch["attention_mask"].sum(dim=1).max())
        raise ConfigError(f"tokenize: a text is {longest} tokens long, more than max_length={max_length}; "
                          f"shorten it, raise max_length, or allow truncation")
    return TokenBatch(batch["input_ids"].long(), batch["attention_mask"].long())


def _warn_if_cut(tokenizer, texts: list[str], mask: torch.Tensor, max_length: int) -> None:
    """Log the words a cut to `max_length` dropped (only texts that fill every position can have been cut)."""
    full = [text for text, row in zip(texts, mask) if int(row.sum()) >= max_length]
    if not full:
        return
    for text in full:
        quiet = {} if isinstance(tokenizer, FileTokenizer) else {"verbose": False}  # our warning says it better
        whole = tokenizer([text], padding="longest", max_length=None, truncation=False, return_tensors="pt", **quiet)
        ids = whole["input_ids"][0][whole["attention_mask"][0].bool()].tolist()
        if len(ids) > max_length:
            # The cut keeps the end-of-text token; what it dropped sits before the last one.
            decode = getattr(tokenizer, "decode", None) or tokenizer.backend.decode
            logger.warning("a text of %d tokens was cut to %d; dropped: %r", len(ids), max_length,
                           decode(ids[max_length - 1:-1]).strip())
