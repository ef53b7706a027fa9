"""Conditioning that is not text: class labels by name, the image-size conditions of PixArt-α, and SDXL's
size/crop (or aesthetic-score) ids with its pooled text."""
from __future__ import annotations

from typing import Annotated, NamedTuple, Optional

import torch
from pydantic import Field

from dgraph.errors import DgraphError
from dgraph.models.class_labels import label_ids, read_labels
from dgraph.node import Context, node
from dgraph.sampling import network_conditioning, text_time_conditions
from dgraph.types import AddedConditions, ClassLabels, DenoiserNetwork, Image, Source, TextEmbedding

Size = Annotated[int, Field(ge=1, le=16384)]


class LabelPair(NamedTuple):
    cond: ClassLabels
    uncond: ClassLabels


@node("labels.from_names", description="Class labels chosen by name, and the null class for guidance.")
def labels_from_names(ctx: Context, network: DenoiserNetwork, names: list[str], labels: Source) -> LabelPair:
    """names: class names, one image each (each synonym of the repo's id2label is a name)
    labels: the folder or repo whose model_index.json holds `id2label`
    network: the class-conditional network; its null class is the unconditional branch
    """
    source = ctx.resolve_source(labels)
    ids = label_ids(read_labels(source), list(names), where=str(source))
    null = getattr(network, "null_class_label", None)
    if null is None:
        raise DgraphError(f"{type(network).__name__} has no null class, so there is no unconditional branch "
                          f"for guidance; use a class-conditional transformer such as DiT")
    cond = ClassLabels(torch.tensor(ids, dtype=torch.long), tuple(names))
    return LabelPair(cond, ClassLabels(torch.full((len(ids),), null, dtype=torch.long), ("",) * len(ids)))


@node("condition.image_size", description="PixArt-α's image-size conditions: resolution and aspect ratio.")
def image_size(height: Size, width: Size, network: Optional[DenoiserNetwork] = None) -> AddedConditions:
    """Empty for a network that embeds no image size (PixArt-α 256/512), so one workflow serves every size.

    height: image height in pixels
    width: image width in pixels
    network: the network the conditions are for (none are made for one that embeds no image size)
    """
    if network is not None and "added" not in network_conditioning(network):
        return AddedConditions({})
    return AddedConditions({"resolution": torch.tensor([[float(height), float(width)]]),
                            "aspect_ratio": torch.tensor([[float(height / width)]])})


class AddedPair(NamedTuple):
    cond: AddedConditions
    uncond: AddedConditions


@node("condition.text_time", description="SDXL's added conditions: the pooled text with the original size, crop "
                                         "and target size (base) or aesthetic score (refiner) as ids.")
def text_time(network: DenoiserNetwork, cond: TextEmbedding, uncond: TextEmbedding, height: Optional[Size] = None,
              width: Optional[Size] = None, image: Optional[Image] = None,
              original_height: Optional[Size] = None, original_width: Optional[Size] = None,
              crop_top: Annotated[int, Field(ge=0, le=16384)] = 0, crop_left: Annotated[int, Field(ge=0, le=16384)] = 0,
              aesthetic_score: Annotated[float, Field(ge=0, le=10)] = 6.0,
              negative_aesthetic_score: Annotated[float, Field(ge=0, le=10)] = 2.5) -> AddedPair:
    """Which ids the UNet reads (sizes, or the refiner's aesthetic score) follows from its config.

    network: the SDXL UNet (addition_embed_type "text_time")
    cond: the prompt's embedding, with its pooled vector (text.encode_prompt_sdxl)
    uncond: the negative prompt's embedding, with its pooled vector
    height: the image height in pixels (the target size; default: the image's)
    width: the image width in pixels (default: the image's)
    image: the image being worked on (image-to-image, inpainting): its size is the default height and width
    original_height: the size the model is told the image had before any resizing (default: height)
    original_width: (default: width)
    crop_top: the crop's top-left corner the model is told of (0, 0: an uncropped picture)
    crop_left: see crop_top
    aesthetic_score: the refiner's score for the prompt's branch
    negative_aesthetic_score: the refiner's score for the negative branch
    """
    if cond.pooled is None or uncond.pooled is None:
        raise DgraphError("condition.text_time needs pooled text vectors: encode the prompt with "
                          "text.encode_prompt_sdxl")
    if image is not None:
        height, width = height or image.tensor.shape[-2], width or image.tensor.shape[-1]
    if height is None or width is None:
        raise DgraphError("condition.text_time needs the image size: give height and width, or link image")
    original = (original_height or height, original_width or width)
    sizes = dict(original_size=original, crop=(crop_top, crop_left), target_size=(height, width))
    return AddedPair(
        AddedConditions(text_time_conditions(network.config, cond.pooled, aesthetic_score=aesthetic_score, **sizes)),
        AddedConditions(text_time_conditions(network.config, uncond.pooled, aesthetic_score=negative_aesthetic_score,
                                             **sizes)))
