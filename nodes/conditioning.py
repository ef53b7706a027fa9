"""Conditioning that is not text: class labels by name, and the image-size conditions of PixArt-α."""
from __future__ import annotations

from typing import Annotated, NamedTuple, Optional

import torch
from pydantic import Field

from dgraph.errors import DgraphError
from dgraph.models.class_labels import label_ids, read_labels
from dgraph.node import Context, node
from dgraph.sampling import network_conditioning
from dgraph.types import AddedConditions, ClassLabels, DenoiserNetwork, Source

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
