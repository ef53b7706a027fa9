"""GLIDE's two tokenizers as `tokenizer.json` files, built from the vocabularies its release ships
(dgraph/text/vocab/, MIT, see NOTICE.txt), so that dgraph's FileTokenizer reads them like any other.

- The UNet's: GPT-2's byte-level BPE over the lower-cased prompt, cut at `text_ctx` tokens and padded
  with the end token (id 50256) under a mask (`padded_tokens_and_mask`).
- The noised CLIP's: CLIP's BPE (whitespace collapsed, lower-cased), between the start and end tokens,
  cut to fit `max_text_len` and padded with id 0 (`padded_tokens_and_len`); the text length is the
  mask's sum. The release also runs ftfy and html.unescape first, which change only mis-encoded text.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from ..configuration import write_text_atomic

VOCAB = Path(__file__).resolve().parent / "vocab"
GLIDE_TOKENIZER_CLASS = "GlideTokenizer"
GLIDE_CLIP_TOKENIZER_CLASS = "GlideCLIPTokenizer"
# The GPT-2 end token GLIDE pads with, and the id 0 ("!") CLIP pads with.
GLIDE_PAD_TOKEN = "<|endoftext|>"
CLIP_PAD_TOKEN = "!"
_CLIP_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's printable stand-ins for the 256 byte values (CLIP's base vocabulary is these, in this order).
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def glide_tokenizer():
    """GPT-2's BPE as GLIDE reads prompts (a `tokenizers.Tokenizer`)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    with gzip.open(VOCAB / "encoder.json.gz", "rt", encoding="utf-8") as handle:
        vocab = json.load(handle)
    with gzip.open(VOCAB / "vocab.bpe.gz", "rt", encoding="utf-8") as handle:
        merges = [tuple(line.split()) for line in handle.read().split("\n")[1:-1]]
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def clip_tokenizer():
    """CLIP's BPE as GLIDE's noised CLIP reads prompts (a `tokenizers.Tokenizer`)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    with gzip.open(VOCAB / "bpe_simple_vocab_16e6.txt.gz", "rt", encoding="utf-8") as handle:
        # The release keeps the first 49152 - 256 - 2 merges.
        merges = [tuple(line.split()) for line in handle.read().split("\n")[1:49152 - 256 - 2 + 1]]
    base = list(_bytes_to_unicode().values())
    words = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {word: i for i, word in enumerate(words)}
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix="</w>",
                              unk_token="<|endoftext|>", fuse_unk=False))
    tokenizer.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                                 normalizers.Strip(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", vocab["<|startoftext|>"]), ("<|endoftext|>", vocab["<|endoftext|>"])])
    return tokenizer


def write_tokenizer(folder: str | Path, kind: str, max_length: int) -> None:
    """Write tokenizer.json and tokenizer_config.json of GLIDE's tokenizer ("glide") or its CLIP's ("clip")
    into `folder`, padding to `max_length` tokens."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "glide":
        tokenizer, name, pad = glide_tokenizer(), GLIDE_TOKENIZER_CLASS, GLIDE_PAD_TOKEN
    elif kind == "clip":
        tokenizer, name, pad = clip_tokenizer(), GLIDE_CLIP_TOKENIZER_CLASS, CLIP_PAD_TOKEN
    else:
        raise ValueError(f"kind must be 'glide' or 'clip', got {kind!r}")
    write_text_atomic(folder / "tokenizer.json", tokenizer.to_str())
    config = {"tokenizer_class": name, "model_max_length": max_length, "pad_token": pad}
    write_text_atomic(folder / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
