"""The vocabulary of port types, and the values that travel along edges.

A node's inputs and outputs are annotated with these. Each type has a name (what a workflow file and the
validator speak of) and may carry parameters (a `Mel` carries its profile), and values carry their
meaning: an `Image` knows its value range, a `Latent` its scaling factor and the autoencoder that made it,
`Audio` its sample rate, a `Mel` its full front-end profile.

Compatibility between an output type and an input type is explicit (`fits`): the same name with no
conflicting parameter, or one of the few widenings listed in `WIDENINGS`. Nothing converts silently.
"""
from __future__ import annotations

import dataclasses
import enum
import sys
import types as _pytypes
import typing
from dataclasses import dataclass, field
from typing import Any, Annotated, Literal, Union, get_args, get_origin

if typing.TYPE_CHECKING:  # the audio library defines the profile; values only hold one; torch is imported where
    import torch  # values are made, never by validation

    from .audio.profile import MelProfile


# ---------------------------------------------------------------------------------------------------
# Type references: what the validator compares.
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TypeRef:
    """A port type as the validator sees it: a name, optional parameters, and (for enums) the choices."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    choices: tuple[Any, ...] = ()
    item: "TypeRef | None" = None  # for list types

    def with_params(self, **params: Any) -> "TypeRef":
        merged = dict(self.params)
        merged.update({k: v for k, v in params.items() if v is not None})
        return dataclasses.replace(self, params=tuple(sorted(merged.items())))

    @property
    def literal(self) -> bool:
        """Whether a workflow file may give this input a literal value."""
        if self.name == "list":
            return self.item is not None and self.item.literal
        return self.name in LITERAL_TYPES

    def __str__(self) -> str:
        if self.name == "list":
            return f"list[{self.item}]"
        if self.name == "enum":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.params:
            return f"{self.name}[" + ", ".join(f"{k}={v}" for k, v in self.params) + "]"
        return self.name


LITERAL_TYPES = {"int", "float", "str", "bool", "Text", "enum", "Source", "Any"}

# (from, to): an output of the first type may feed an input of the second.
WIDENINGS = {
    ("int", "float"),
    ("Text", "str"),
    ("str", "Text"),
    ("str", "Source"),
    ("Source", "str"),
    ("UNet", "DenoiserNetwork"),  # a UNet is one kind of denoiser network
}


def fits(source: TypeRef, target: TypeRef) -> bool:
    """Whether a value of type `source` may flow into an input of type `target`."""
    if target.name == "Any" or source.name == "Any":
        return True
    if source.name == "list" and target.name == "list":
        return source.item is None or target.item is None or fits(source.item, target.item)
    if target.name == "list" and source.name in ("Text", "str"):  # one text is a batch of one
        return target.item is None or target.item.name in ("Text", "str")
    if target.name == "enum":
        if source.name == "enum":
            return set(source.choices) <= set(target.choices)
        return source.name in ("str", "Text", "int") and all(type(c).__name__ in ("str", "int") for c in target.choices)
    if source.name == "enum":
        return target.name in ("str", "Text") and all(isinstance(c, str) for c in source.choices)
    if source.name != target.name and (source.name, target.name) not in WIDENINGS:
        return False
    wanted = dict(target.params)
    for key, value in source.params:
        if key in wanted and wanted[key] != value:
            return False
    return True


def mismatch_reason(source: TypeRef, target: TypeRef) -> str:
    """One line saying why `source` does not fit `target` (for error messages)."""
    if source.name == target.name:
        wanted = dict(target.params)
        for key, value in source.params:
            if key in wanted and wanted[key] != value:
                return f"{key} {value!r} where {wanted[key]!r} is expected"
    return f"{source} does not fit {target}"


# ---------------------------------------------------------------------------------------------------
# Annotations: how node functions spell types.
# ---------------------------------------------------------------------------------------------------
class Port:
    """Marker base for the annotation classes of object ports (models, schedulers, denoisers).

    The runtime value is whatever object the loader produced (an nn.Module, a scheduler...); the class
    only names the port type.
    """

    port_name: typing.ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.port_name = cls.__dict__.get("port_name") or cls.__name__
        PORT_CLASSES[cls.port_name] = cls


PORT_CLASSES: dict[str, type] = {}


@dataclass(frozen=True)
class Param:
    """Type parameters attached with `Annotated`, e.g. `Annotated[Mel, Param(profile="fastdiff")]`."""

    values: tuple[tuple[str, Any], ...]

    def __init__(self, **values: Any):
        object.__setattr__(self, "values", tuple(sorted(values.items())))


class _StrType(str):
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(cls, core_schema.str_schema())


class Text(_StrType):
    """Free text (a prompt). A plain `str` output fits a Text input and the other way round."""


class Source(_StrType):
    """A weights source string: a folder, `hf://owner/repo/sub@rev`, a repo id, or `pkg://package/sub`.

    Its syntax is checked when it is validated (empty, a malformed hf:// or pkg:// form, `..` in a repo
    path), so a workflow with a bad source fails validation, at its line, before any model loads.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(cls._checked, core_schema.str_schema())

    @classmethod
    def _checked(cls, text: str) -> "Source":
        from .errors import SourceError
        from .hub import check_source_syntax

        try:
            check_source_syntax(text)
        except SourceError as error:
            raise ValueError(str(error)) from None
        return cls(text)


_SCALARS = {int: "int", float: "float", str: "str", bool: "bool", Text: "Text", Source: "Source"}


def type_of(annotation: Any) -> tuple[TypeRef, bool]:
    """The TypeRef of an annotation, and whether it is Optional."""
    optional = False
    origin = get_origin(annotation)
    if origin is Union or origin is _pytypes.UnionType:
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"unions other than Optional[X] are not port types: {annotation!r}")
        ref, _ = type_of(args[0])
        return ref, optional
    if origin is Annotated:
        base, *extras = get_args(annotation)
        ref, optional = type_of(base)
        for extra in extras:
            if isinstance(extra, Param):
                ref = ref.with_params(**dict(extra.values))
        return ref, optional
    if origin is Literal:
        return TypeRef("enum", choices=tuple(get_args(annotation))), False
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        args = get_args(annotation)
        item = type_of(args[0])[0] if args else None
        return TypeRef("list", item=item), False
    if annotation is Any or annotation is object:
        return TypeRef("Any"), False
    if isinstance(annotation, type):
        if annotation in _SCALARS:
            return TypeRef(_SCALARS[annotation]), False
        if issubclass(annotation, enum.Enum):
            return TypeRef("enum", choices=tuple(m.value for m in annotation)), False
        torch = sys.modules.get("torch")  # an annotation can be torch.Tensor only once torch is imported
        if torch is not None and annotation is torch.Tensor:
            return TypeRef("Tensor"), False
        name = getattr(annotation, "port_name", None) or VALUE_CLASSES.get(annotation)
        if name:
            return TypeRef(name), False
    raise TypeError(f"{annotation!r} is not a port type; use one of dgraph.types' names")


# ---------------------------------------------------------------------------------------------------
# Values: what flows along the edges.
# ---------------------------------------------------------------------------------------------------
def _move(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    return value


class _Value:
    """Shared behaviour of value dataclasses: moving every tensor field to a device."""

    def to_device(self, device: torch.device | str, non_blocking: bool = False):
        import torch

        device = torch.device(device)
        changes = {f.name: _move(getattr(self, f.name), device, non_blocking) for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Tokens(_Value):
    """Token ids of a batch of texts, with the attention mask and the tokenizer's name."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None = None
    tokenizer: str = ""


@dataclass(frozen=True)
class TextEmbedding(_Value):
    """Per-token hidden states of a text encoder ([batch, tokens, dim]), optionally with a pooled vector."""

    hidden_states: torch.Tensor
    attention_mask: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    encoder: str = ""


@dataclass(frozen=True)
class ClassLabels(_Value):
    """Class ids ([batch] int64) for a class-conditional network, with the names they were chosen by."""

    ids: torch.Tensor
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class AddedConditions(_Value):
    """Extra conditioning tensors a network embeds besides text and class (PixArt-α's "resolution" [batch, 2]
    and "aspect_ratio" [batch, 1]), by the names the network reads them under; batch 1 is broadcast."""

    values: dict[str, torch.Tensor]

    def to_device(self, device: torch.device | str, non_blocking: bool = False) -> "AddedConditions":
        return AddedConditions({k: v.to(device, non_blocking=non_blocking) for k, v in self.values.items()})


@dataclass(frozen=True)
class ImageEmbedding(_Value):
    """One CLIP image embedding per image ([batch, dim], not normalised), and the model whose space it is in
    (a CLIP image encoder's projection, or a diffusion prior that predicts it)."""

    embeds: torch.Tensor
    encoder: str = ""


@dataclass(frozen=True)
class Latent(_Value):
    """A batch of latents ([batch, channels, ...]).

    `scaling_factor` is the factor already applied (decoders divide by it); `autoencoder` names the
    model whose latent space this is ("" for pixel-space diffusion).
    """

    tensor: torch.Tensor
    scaling_factor: float = 1.0
    autoencoder: str = ""


@dataclass(frozen=True)
class Image(_Value):
    """A batch of images, a tensor laid out [batch, channels, height, width] with values in `value_range`."""

    tensor: torch.Tensor
    value_range: tuple[float, float] = (0.0, 1.0)
    layout: str = "BCHW"

    def to_range(self, low: float, high: float) -> "Image":
        if tuple(self.value_range) == (low, high):
            return self  # unchanged, not even by rounding
        lo, hi = self.value_range
        scaled = (self.tensor - lo) / (hi - lo) * (high - low) + low
        return dataclasses.replace(self, tensor=scaled, value_range=(low, high))

    def to_pil(self) -> list[Any]:
        """The images of the batch as 8-bit PIL images."""
        return image_to_pil(self)


@dataclass(frozen=True)
class Audio(_Value):
    """A batch of waveforms ([batch, samples], float in [-1, 1]) and their sample rate."""

    waveform: torch.Tensor
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate


@dataclass(frozen=True)
class Mel(_Value):
    """A batch of mel spectrograms ([batch, n_mels, frames]) with the full front-end profile that made it."""

    tensor: torch.Tensor
    profile: "MelProfile" = field(default=None)  # type: ignore[assignment]


# Object ports: the value is the loaded object itself.
class DenoiserNetwork(Port):
    """The network a sampling loop's denoiser calls: a UNet, a transformer (DiT, PixArt-α), ...

    It declares the conditioning it takes (dgraph.sampling.network_conditioning). Where a loader knows
    the network's class before loading, the port type carries it as the parameter `takes` (the kinds,
    comma-separated), so the validator can refuse conditioning the network does not take.
    """


class UNet(Port):
    """A UNet denoiser network (UNet2DModel, UNet2DConditionModel, ...); it fits any DenoiserNetwork input."""


class VAE(Port):
    """An autoencoder with encode/decode (AutoencoderKL, VQModel)."""


class TextEncoder(Port):
    """A text encoder with its name and output width."""


class Tokenizer(Port):
    """A tokenizer."""


class ImageEncoder(Port):
    """A CLIP image encoder with projection (CLIPVisionModelWithProjection)."""


class TextProjection(Port):
    """unCLIP's UnCLIPTextProjModel: CLIP embeddings into the decoder's context tokens and time embedding."""


class Scheduler(Port):
    """A noise scheduler / sampler."""


class Denoiser(Port):
    """A callable `(x, t) -> model output` used by the sampling loop: a model with its conditioning,
    possibly wrapped in guidance."""


class Vocoder(Port):
    """A network that turns a Mel into Audio."""


class NoisedCLIP(Port):
    """GLIDE's noised CLIP for CLIP guidance: an image encoder that reads the timestep, its text encoder and
    that encoder's tokenizer."""


VALUE_CLASSES: dict[type, str] = {
    ClassLabels: "ClassLabels",
    AddedConditions: "AddedConditions",
    Tokens: "Tokens",
    TextEmbedding: "TextEmbedding",
    ImageEmbedding: "ImageEmbedding",
    Latent: "Latent",
    Image: "Image",
    Audio: "Audio",
    Mel: "Mel",
}

def type_names() -> list[str]:
    """Every name a workflow file may use as a graph input's `type`, including the port types node packs
    defined after this module was imported (a list frozen at import refused them)."""
    return sorted({"int", "float", "str", "bool", "Text", "Source", "Tensor", "Any",
                   *VALUE_CLASSES.values(), *PORT_CLASSES})


def coerce(value: Any, target: TypeRef) -> Any:
    """The one conversion an edge makes: a single text given where a list of texts is expected."""
    if target.name == "list" and isinstance(value, str) and (target.item is None or target.item.name in ("Text", "str")):
        return [value]
    return value


def move_to_device(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move a value crossing an edge to the consuming node's device (models stay where they were loaded).

    `non_blocking` lets a copy between CUDA devices (or from pinned memory) overlap the host; the caller
    then orders it with stream events."""
    import torch

    if isinstance(value, torch.Tensor):
        return value if value.device == device else value.to(device, non_blocking=non_blocking)
    if isinstance(value, _Value):
        return value.to_device(device, non_blocking)
    if isinstance(value, (list, tuple)):
        return type(value)(move_to_device(v, device, non_blocking) for v in value)
    return value


def image_to_pil(image: Image) -> list[Any]:
    """The images of a batch as 8-bit PIL images (values clamped to the image's range)."""
    import torch
    from PIL import Image as PILImage

    unit = image.to_range(0.0, 1.0).tensor.detach().float().clamp(0, 1).cpu()
    arrays = (unit * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [PILImage.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]
