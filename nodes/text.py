"""Tokenizers, text encoders, and prompt encoding with the unconditional branch for guidance."""
from __future__ import annotations

from typing import Annotated, Literal, NamedTuple, Optional

import torch
from pydantic import Field

from dgraph.models.auto import DTYPES
from dgraph.node import Context, node
from dgraph.text import embed, encode, load_text_encoder, load_tokenizer, tokenize
from dgraph.text.tokenizers import TokenBatch
from dgraph.types import Source, TextEmbedding, TextEncoder, Tokenizer, Tokens

Dtype = Literal["float32", "float16", "bfloat16"]
MaxLength = Optional[Annotated[int, Field(ge=1, le=4096)]]


@node("load.tokenizer", description="Load a tokenizer (CLIP, T5, BERT family...) from a folder, hf:// or pkg://.")
def load_tokenizer_node(ctx: Context, source: Source) -> Tokenizer:
    """source: the folder holding tokenizer_config.json (and its vocabulary files)"""
    return load_tokenizer(ctx.resolve_source(source))


@node("load.text_encoder", description="Load a text encoder (CLIP text, T5 encoder, BERT family, LDM-BERT).")
def load_text_encoder_node(ctx: Context, source: Source, dtype: Dtype = "float32", variant: str = "") -> TextEncoder:
    """source: the folder holding the encoder's config.json and weights
    variant: weights variant such as fp16 (model.fp16.safetensors, as DeepFloyd IF's T5 ships)
    """
    return load_text_encoder(ctx.resolve_source(source), torch_dtype=DTYPES[dtype], device=ctx.device,
                             variant=variant or None)


@node("text.tokenize", description="Tokenize a batch of texts.")
def tokenize_node(tokenizer: Tokenizer, text: list[str], max_length: MaxLength = None,
                  padding: Literal["max_length", "longest"] = "max_length") -> Tokens:
    """text: one text or a list of texts
    max_length: pad/truncate to this many tokens (default: the tokenizer's own limit)
    """
    batch = tokenize(tokenizer, list(text), max_length=max_length, padding=padding)
    return Tokens(batch.input_ids, batch.attention_mask, type(tokenizer).__name__)


@node("text.encode", description="Encode tokens into per-token hidden states.")
def encode_node(text_encoder: TextEncoder, tokens: Tokens) -> TextEmbedding:
    hidden, mask = encode(text_encoder, TokenBatch(tokens.input_ids, tokens.attention_mask))
    return TextEmbedding(hidden, mask, encoder=type(text_encoder).__name__)


class PromptEmbeddings(NamedTuple):
    cond: TextEmbedding
    uncond: TextEmbedding


@node("text.encode_prompt", description="Encode prompts and their negative (or empty) prompts for guidance.")
def encode_prompt(tokenizer: Tokenizer, text_encoder: TextEncoder, prompt: list[str],
                  negative_prompt: str = "", max_length: MaxLength = None, lowercase: bool = False) -> PromptEmbeddings:
    """Both branches are padded to the same length, so they batch into one forward pass.

    prompt: one prompt or a list of prompts
    negative_prompt: what to steer away from ("" gives the plain unconditional branch)
    lowercase: lower-case and strip every text first (as DeepFloyd IF's and PixArt-α's pipelines do)
    """
    prompts = list(prompt)
    texts = prompts + [negative_prompt] * len(prompts)
    if lowercase:
        texts = [text.lower().strip() for text in texts]
    batch = tokenize(tokenizer, texts, max_length=max_length)
    with torch.no_grad():
        hidden, mask = encode(text_encoder, batch)
    n, name = len(prompts), type(text_encoder).__name__
    return PromptEmbeddings(TextEmbedding(hidden[:n], mask[:n], encoder=name),
                            TextEmbedding(hidden[n:], mask[n:], encoder=name))


@node("text.embed_prompt", description="One projected, unit-length embedding per prompt and per negative prompt "
                                       "(CLAP's text embedding, as AudioLDM is conditioned).")
def embed_prompt(tokenizer: Tokenizer, text_encoder: TextEncoder, prompt: list[str], negative_prompt: str = "",
                 max_length: MaxLength = None) -> PromptEmbeddings:
    """Each embedding is the `pooled` vector of its TextEmbedding (the hidden states hold it as one token).

    prompt: one prompt or a list of prompts
    negative_prompt: what to steer away from ("" gives the plain unconditional branch)
    max_length: pad/truncate to this many tokens (default: the tokenizer's own limit)
    """
    prompts = list(prompt)
    batch = tokenize(tokenizer, prompts + [negative_prompt] * len(prompts), max_length=max_length)
    vectors = embed(text_encoder, batch)
    n, name = len(prompts), type(text_encoder).__name__
    return PromptEmbeddings(TextEmbedding(vectors[:n, None], pooled=vectors[:n], encoder=name),
                            TextEmbedding(vectors[n:, None], pooled=vectors[n:], encoder=name))
