"""Tokenizers, text encoders, and prompt encoding with the unconditional branch for guidance."""
from __future__ import annotations

from typing import Annotated, Literal, NamedTuple, Optional

import torch
from pydantic import Field

from dgraph.errors import DgraphError
from dgraph.models.auto import DTYPES
from dgraph.node import Context, node
from dgraph.text import embed, encode, encode_clip, encode_sdxl, load_text_encoder, load_tokenizer, tokenize
from dgraph.text.tokenizers import TokenBatch
from dgraph.types import Source, TextEmbedding, TextEncoder, Tokenizer, Tokens

Dtype = Literal["float32", "float16", "bfloat16"]
MaxLength = Optional[Annotated[int, Field(ge=1, le=4096)]]
ClipSkip = Annotated[int, Field(ge=0, le=48)]


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
                  negative_prompt: str = "", max_length: MaxLength = None, lowercase: bool = False,
                  clip_skip: ClipSkip = 0) -> PromptEmbeddings:
    """Both branches are padded to the same length, so they batch into one forward pass. Texts longer
    than max_length are cut there (as diffusers' pipelines cut at CLIP's 77 tokens), with a warning.

    prompt: one prompt or a list of prompts
    negative_prompt: what to steer away from ("" gives the plain unconditional branch)
    max_length: pad/truncate to this many tokens (default: the tokenizer's own limit)
    lowercase: lower-case and strip every text first (as DeepFloyd IF's and PixArt-α's pipelines do)
    clip_skip: CLIP only: take the states this many layers before the last, through the final layer norm
        (diffusers' clip_skip; 1 is the penultimate layer); applied to both branches
    """
    prompts = list(prompt)
    texts = prompts + [negative_prompt] * len(prompts)
    if lowercase:
        texts = [text.lower().strip() for text in texts]
    batch = tokenize(tokenizer, texts, max_length=max_length)
    with torch.no_grad():
        if clip_skip:
            hidden, _ = encode_clip(text_encoder, batch, layers_back=clip_skip)
            mask = batch.attention_mask.to(hidden.device)
        else:
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


@node("text.encode_prompt_sdxl", description="SDXL's prompt encoding: two CLIP encoders' penultimate states joined, "
                                            "the pooled embedding from the second.")
def encode_prompt_sdxl(tokenizer_2: Tokenizer, text_encoder_2: TextEncoder, prompt: list[str],
                       tokenizer: Optional[Tokenizer] = None, text_encoder: Optional[TextEncoder] = None,
                       negative_prompt: str = "", zero_empty_negative: bool = True,
                       clip_skip: ClipSkip = 0, prompt_2: Optional[list[str]] = None,
                       negative_prompt_2: Optional[str] = None) -> PromptEmbeddings:
    """Each TextEmbedding carries the pooled vector (the UNet's `text_embeds`). Prompts longer than 77 tokens
    are cut there, with a warning, as diffusers does.

    tokenizer_2: the second tokenizer (OpenCLIP bigG's)
    text_encoder_2: the second encoder, a CLIPTextModelWithProjection (the pooled vector comes from it)
    tokenizer: the first tokenizer (absent for the refiner, which has only the second encoder)
    text_encoder: the first encoder (CLIP ViT-L)
    negative_prompt: what to steer away from
    zero_empty_negative: an empty negative prompt gives zero states and a zero pooled vector
        (the pipeline's force_zeros_for_empty_prompt, set for SDXL base)
    clip_skip: go this many layers further back than the penultimate (diffusers' clip_skip); both branches
    prompt_2: what the second encoder reads instead of the prompt (default: the prompt), one per prompt;
        a pipeline with one encoder (the refiner) reads the prompt
    negative_prompt_2: what the second encoder reads instead of the negative prompt (default: it)
    """
    if (tokenizer is None) != (text_encoder is None):
        raise DgraphError("text.encode_prompt_sdxl: give the first tokenizer and the first text encoder together, "
                          "or neither (the refiner has only the second)")
    encoders = ([(tokenizer, text_encoder)] if tokenizer is not None else []) + [(tokenizer_2, text_encoder_2)]
    prompts = list(prompt)
    seconds = list(prompt_2) if prompt_2 else prompts
    if len(seconds) != len(prompts):
        raise DgraphError(f"text.encode_prompt_sdxl: {len(prompts)} prompts but {len(seconds)} prompt_2 texts; "
                          f"give one prompt_2 per prompt")
    negative_2 = negative_prompt if negative_prompt_2 is None else negative_prompt_2
    zeros = zero_empty_negative and negative_prompt == "" and negative_2 == ""
    firsts = prompts if zeros else prompts + [negative_prompt] * len(prompts)
    seconds = seconds if zeros else seconds + [negative_2] * len(prompts)
    # The refiner has the second encoder only, and it reads the prompt (diffusers pairs prompts with encoders).
    texts = [firsts, seconds][:len(encoders)]
    with torch.no_grad():
        hidden, pooled, mask = encode_sdxl(encoders, texts, clip_skip)
    n, name = len(prompts), type(text_encoder_2).__name__
    mask = mask.to(hidden.device)
    if zeros:
        uncond = TextEmbedding(torch.zeros_like(hidden), mask, torch.zeros_like(pooled), encoder=name)
    else:
        uncond = TextEmbedding(hidden[n:], mask[n:], pooled[n:], encoder=name)
    return PromptEmbeddings(TextEmbedding(hidden[:n], mask[:n], pooled[:n], encoder=name), uncond)
