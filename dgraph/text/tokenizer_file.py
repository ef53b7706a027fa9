"""A tokenizer read straight from its `tokenizer.json` with the `tokenizers` library, without transformers.

transformers' fast tokenizers are this same file driven by the same Rust library; what transformers adds
on top (the special tokens, the maximum length) comes from `tokenizer_config.json`. For the families listed
in NATIVE_CLASSES that is all there is to it, so dgraph reads them itself and saves the cost of importing
transformers (seconds) when a workflow only needs to tokenize a prompt. Other families go to transformers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

# tokenizer_config.json `tokenizer_class` values whose tokenizer.json says everything transformers does.
NATIVE_CLASSES = ("BertTokenizer", "BertTokenizerFast", "GlideTokenizer", "GlideCLIPTokenizer")
# transformers' stand-in for "no limit" (int(1e30)).
_UNBOUNDED = int(1e30)


class Encoding(dict):
    """`input_ids` and `attention_mask` tensors, by key or attribute (as transformers' BatchEncoding)."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class FileTokenizer:
    """Called like a transformers tokenizer: `tokenizer(texts, padding=, max_length=, truncation=, return_tensors="pt")`.

    `model_max_length` is the limit from tokenizer_config.json; `name` the tokenizer class it names.
    """

    def __init__(self, backend: Any, model_max_length: int, pad_token: str, name: str):
        self.backend = backend
        self.model_max_length = model_max_length
        self.pad_token = pad_token
        self.pad_token_id = backend.token_to_id(pad_token)
        if self.pad_token_id is None:
            raise ConfigError(f"{name}: the padding token {pad_token!r} is not in the vocabulary of tokenizer.json")
        self.name = name
        # A saved tokenizer.json may carry a padding/truncation setting of its own; each call sets its own.
        backend.no_padding()
        backend.no_truncation()

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any]) -> "FileTokenizer":
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        pad = config.get("pad_token", "[PAD]")
        if isinstance(pad, dict):  # an AddedToken written out in full
            pad = pad.get("content", "[PAD]")
        max_length = config.get("model_max_length", _UNBOUNDED)
        return cls(backend, int(max_length) if isinstance(max_length, (int, float)) else _UNBOUNDED, pad,
                   config.get("tokenizer_class", "BertTokenizer"))

    def __call__(self, texts: list[str], padding: str = "max_length", max_length: int | None = None,
                 truncation: bool = True, return_tensors: str = "pt") -> Encoding:
        backend = self.backend
        if truncation and max_length is not None:
            backend.enable_truncation(max_length)
        else:
            backend.no_truncation()
        fixed = max_length if padding == "max_length" else None
        backend.enable_padding(pad_id=self.pad_token_id, pad_token=self.pad_token, length=fixed)
        encodings = backend.encode_batch(list(texts))
        return Encoding(input_ids=torch.tensor([e.ids for e in encodings], dtype=torch.long),
                        attention_mask=torch.tensor([e.attention_mask for e in encodings], dtype=torch.long))

