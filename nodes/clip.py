"""CLIP nodes: projected text and image embeddings, their similarity, and reranking images by it."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

import torch
from pydantic import Field

from dgraph.errors import DgraphError
from dgraph.models.auto import DTYPES
from dgraph.node import Context, node
from dgraph.text import tokenize
from dgraph.text.clip import embed_images, encode_with_projection, load_image_encoder, read_image_preprocessing, \
    similarity
from dgraph.types import Image, ImageEmbedding, ImageEncoder, Source, TextEmbedding, TextEncoder, Tokenizer
from nodes.text import PromptEmbeddings

Dtype = Literal["float32", "float16", "bfloat16"]
MaxLength = Optional[Annotated[int, Field(ge=1, le=4096)]]


@node("clip.encode_prompt", description="CLIP text states, keep-mask and projected text embedding of prompts and of "
                                        "their negative (or empty) prompts.")
def clip_encode_prompt(tokenizer: Tokenizer, text_encoder: TextEncoder, prompt: list[str], negative_prompt: str = "",
                       max_length: MaxLength = None) -> PromptEmbeddings:
    """Each TextEmbedding holds the last hidden states, the tokens' keep-mask and, as `pooled`, the projected
    embedding (`text_embeds`, not normalised), as unCLIP's prior and decoder read them.

    text_encoder: a CLIP text encoder with projection (CLIPTextModelWithProjection)
    prompt: one prompt or a list of prompts
    negative_prompt: the unconditional branch's text ("" as unCLIP's pipelines use)
    max_length: pad/truncate to this many tokens (default: the tokenizer's own limit, 77 for CLIP)
    """
    prompts = list(prompt)
    batch = tokenize(tokenizer, prompts + [negative_prompt] * len(prompts), max_length=max_length)
    embeds, hidden, mask = encode_with_projection(text_encoder, batch)
    n, name = len(prompts), type(text_encoder).__name__
    return PromptEmbeddings(TextEmbedding(hidden[:n], mask[:n], embeds[:n], encoder=name),
                            TextEmbedding(hidden[n:], mask[n:], embeds[n:], encoder=name))


@node("load.image_encoder", description="Load a CLIP image encoder with projection (CLIPVisionModelWithProjection).")
def load_image_encoder_node(ctx: Context, source: Source, dtype: Dtype = "float32", variant: str = "") -> ImageEncoder:
    """source: the folder holding the encoder's config.json and model.safetensors
    variant: weights variant such as fp16
    """
    return load_image_encoder(ctx.resolve_source(source), torch_dtype=DTYPES[dtype], device=ctx.device,
                              variant=variant or None)


@node("clip.encode_image", description="CLIP image embeddings, the pixels prepared as the preprocessor config says.")
def clip_encode_image(ctx: Context, image_encoder: ImageEncoder, image: Image, preprocessor: Source) -> ImageEmbedding:
    """preprocessor: the folder with preprocessor_config.json (a pipeline's feature_extractor): resize of the
    shortest side, center crop, rescale and normalisation are read from it"""
    pixels = read_image_preprocessing(ctx.resolve_source(preprocessor))(image.to_range(0.0, 1.0).tensor)
    return ImageEmbedding(embed_images(image_encoder, pixels), encoder=type(image_encoder).__name__)


@node("clip.score", description="CLIP score: the cosine similarity of every image with every prompt, "
                                "[images, prompts].", output="scores")
def clip_score(ctx: Context, image_encoder: ImageEncoder, image: Image, prompt: TextEmbedding,
               preprocessor: Source) -> torch.Tensor:
    """prompt: the prompts' projected text embeddings (clip.encode_prompt's cond), from the CLIP text tower that
    belongs to this image encoder
    preprocessor: the folder with the image encoder's preprocessor_config.json
    """
    if prompt.pooled is None:
        raise DgraphError("clip.score: this text embedding has no projected vector; make it with clip.encode_prompt")
    embedded = clip_encode_image(ctx, image_encoder, image, preprocessor)
    return similarity(embedded.embeds, prompt.pooled)


@node("clip.rerank", description="Keep the best `keep` images of each prompt by CLIP score, best first "
                                 "(as DALL-E's sampling reranks its candidates).")
def clip_rerank(image: Image, scores: torch.Tensor, keep: Annotated[int, Field(ge=0, le=4096)] = 0) -> Image:
    """The images are those of clip.score, prompt by prompt (each prompt's images together, as the pipelines
    make them), so image i belongs to prompt i // (images / prompts).

    scores: clip.score's [images, prompts] similarities
    keep: how many images to keep per prompt (0 keeps all, sorted best first)
    """
    images, prompts = scores.shape
    if images % prompts or image.tensor.shape[0] != images:
        raise DgraphError(f"clip.rerank: {image.tensor.shape[0]} images and scores for {images} images of "
                          f"{prompts} prompts do not match; score the images being reranked")
    per_prompt = images // prompts
    if keep > per_prompt:
        raise DgraphError(f"clip.rerank: keep={keep} is more than the {per_prompt} images made per prompt; "
                          f"raise --images-per-prompt or lower keep")
    chosen = []
    for k in range(prompts):
        own = scores[k * per_prompt:(k + 1) * per_prompt, k]
        chosen += (torch.argsort(own, descending=True, stable=True)[:keep or per_prompt] + k * per_prompt).tolist()
    return Image(image.tensor[torch.tensor(chosen, device=image.tensor.device)], value_range=image.value_range)
