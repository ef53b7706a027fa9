"""Text encoders (CLIP text, T5 encoder, BERT family, CLAP text, LDM-BERT) behind one `encode`.

BERT and LDM-BERT are dgraph's own modules (no transformers import); CLIP, T5, CLAP and the rest of the
BERT family (RoBERTa, ...) come from transformers.

Every family gives the same thing: the last hidden state, (batch, length, width), and the attention
mask of the tokens. For CLIP that is the output of the final layer norm, as Stable Diffusion uses it.
`embed` gives the one projected, unit-length vector per text of the encoders that have a projection
(CLAP's, which conditions AudioLDM). `encode_clip` reads an earlier layer of a CLIP text encoder and its
pooled vector, as Stable Diffusion's `clip_skip` and SDXL's two encoders use them.
"""
from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from ..configuration import read_json
from ..errors import ConfigError, WeightsError
from ..hub import Source, as_source, fetch_file
from .files import local_folder, resolve_source, weight_files
from .imports import TRANSFORMERS_LOCK
from .tokenizers import TokenBatch, load_tokenizer, tokenize

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}

# model_type in config.json -> the transformers class that holds just the text encoder.
_ENCODER_CLASSES = {
    "clip": "CLIPTextModel", "clip_text_model": "CLIPTextModel",
    "t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel",
    "clap_text_model": "ClapTextModelWithProjection",
}
# Families trained without an attention mask: their padding positions carry meaning (SD uses all 77
# CLIP states, LDM text2img all 77 LDM-BERT states), so the mask is returned but not applied.
_UNMASKED_FAMILIES = ("clip", "clip_text_model", "ldmbert")
# `architectures` of a BERT checkpoint whose encoder dgraph's BertModel reads (heads are dropped).
_NATIVE_BERT = {"BertModel", "BertForMaskedLM", "BertForPreTraining"}


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from a dtype or its name ("float16", "bf16", ...)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.removeprefix("torch.")]
    raise ConfigError(f"unknown dtype {dtype!r}; use one of float32, float16, bfloat16")


def load_text_encoder(pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                      revision: str | None = None, torch_dtype: torch.dtype | str | None = None,
                      device: torch.device | str | None = None, variant: str | None = None,
                      allow_pickle: bool = False) -> nn.Module:
    """Load a text encoder from a folder, Hub repo or package folder (any dgraph source string).

    The class follows `model_type` in config.json: CLIP -> CLIPTextModel, T5 -> T5EncoderModel,
    CLAP text -> ClapTextModelWithProjection, ldmbert -> dgraph's LDMBertModel, bert (BERT, MiniLM) ->
    dgraph's BertModel, anything else (RoBERTa, ...) -> AutoModel.
    Weights come from safetensors; pickled `pytorch_model.bin` loads only with `allow_pickle=True`,
    and then with `weights_only=True`. The model is returned in eval mode.
    A single-file Stable Diffusion checkpoint (`model.safetensors`, or `model.safetensors#text_encoder_2` to
    name one of SDXL's two) gives its CLIP text encoder (dgraph.models.single_file).
    """
    dtype = as_dtype(torch_dtype)
    source = as_source(pretrained, subfolder, revision)
    if source.is_single_file:  # an original Stable Diffusion checkpoint: one of its CLIP text encoders
        from ..models.single_file import load_component

        if variant:
            raise ConfigError(f"{source}: variant={variant!r} names files in a model folder; a single-file "
                              f"checkpoint has none (drop the variant)")
        return load_component(source, ("text_encoder", "text_encoder_2"), "text encoder", dtype, device)
    source = resolve_source(source)
    config = read_json(fetch_file(source, "config.json"))
    native = _native_class(config)
    if native is not None:
        model = native.from_pretrained(source, variant=variant, torch_dtype=dtype, device=device,
                                       allow_pickle=allow_pickle)
        return model.eval()
    with TRANSFORMERS_LOCK:  # resolving the class imports transformers lazily, which is not thread-safe
        model_class = _model_class(config, source)
    return load_transformers_model(source, model_class, dtype, device, variant, allow_pickle)


def load_transformers_model(source: Source, model_class, dtype: torch.dtype | None = None,
                            device: torch.device | str | None = None, variant: str | None = None,
                            allow_pickle: bool = False) -> nn.Module:
    """`model_class.from_pretrained` (a transformers class) on a resolved source, offline, never running the
    repo's code, from safetensors (a pickle only with `allow_pickle`, then `weights_only=True`); in eval mode."""
    weights = weight_files(source, variant, allow_pickle)
    if not weights:
        suffix = f".{variant}" if variant else ""
        if not allow_pickle and fetch_file(source, f"pytorch_model{suffix}.bin", required=False) is not None:
            raise WeightsError(f"{source}: only pickled weights (pytorch_model{suffix}.bin) are there; convert them to "
                               f"safetensors, or pass allow_pickle=True to load them with weights_only=True")
        raise WeightsError(f"{source}: no weights file model{suffix}.safetensors (nor a sharded index) found")
    folder = local_folder(source, required=("config.json", *weights))
    kwargs = {"local_files_only": True, "trust_remote_code": False, "use_safetensors": weights[0].endswith(
        (".safetensors", ".safetensors.index.json")), "weights_only": True}
    if variant:
        kwargs["variant"] = variant
    if dtype is not None:
        kwargs["dtype"] = dtype
    with TRANSFORMERS_LOCK:  # its lazy imports and the progress-bar switch are not thread-safe
        try:
            with _quiet_transformers():
                model = model_class.from_pretrained(folder, **kwargs)
        except (OSError, ValueError) as error:
            raise WeightsError(f"{source}: cannot load {model_class.__name__} from {folder}: {error}") from None
    if device is not None:
        model = model.to(device)
    return model.eval()


def _native_class(config: dict):
    """dgraph's own module for this config, or None when transformers must load it."""
    model_type = config.get("model_type")
    if model_type == "ldmbert":
        from ..models.ldm_bert import LDMBertModel

        return LDMBertModel
    if model_type == "bert" and set(config.get("architectures") or ["BertModel"]) <= _NATIVE_BERT:
        from ..models.bert import BertModel

        return BertModel
    return None


@contextlib.contextmanager
def _quiet_transformers():
    """No "Loading weights" progress bar from transformers: dgraph reports progress itself."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _model_class(config: dict, source: Source):
    import transformers

    model_type = config.get("model_type")
    if model_type is None:
        raise ConfigError(f"{source}: config.json has no 'model_type'; is this a transformers text encoder folder?")
    name = _ENCODER_CLASSES.get(model_type, "AutoModel")
    if model_type in ("clip", "clip_text_model") and "CLIPTextModelWithProjection" in config.get("architectures", ()):
        name = "CLIPTextModelWithProjection"  # SDXL's second encoder keeps its projection weights
    if name == "AutoModel" and model_type not in transformers.CONFIG_MAPPING:
        raise ConfigError(f"{source}: model_type {model_type!r} is not known to transformers "
                          f"{transformers.__version__}; upgrade transformers or use a supported encoder")
    return getattr(transformers, name)


def _family(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) or getattr(model, "model_type", None) or type(model).__name__.lower()


@torch.no_grad()
def encode(text_encoder: nn.Module, tokens: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `text_encoder` on `tokens`: (last hidden state (batch, length, width), attention mask (batch, length)).

    BERT-family and T5 encoders see the attention mask; CLIP and LDM-BERT do not (they were trained
    with full-length padded prompts, and the diffusion models expect the states of the padding too),
    unless a CLIP config sets `use_attention_mask`.
    """
    device = next(text_encoder.parameters()).device
    input_ids = tokens.input_ids.to(device)
    mask = tokens.attention_mask.to(device)
    family = _family(text_encoder)
    use_mask = family not in _UNMASKED_FAMILIES or getattr(text_encoder.config, "use_attention_mask", False)
    output = text_encoder(input_ids=input_ids, attention_mask=mask if use_mask else None)
    if isinstance(output, torch.Tensor):  # dgraph's own encoders return the hidden state itself
        return output, mask
    hidden = output[0] if isinstance(output, (tuple, list)) else output.last_hidden_state
    return hidden, mask


@torch.no_grad()
def embed(text_encoder: nn.Module, tokens: TokenBatch) -> torch.Tensor:
    """One L2-normalised projected embedding per text, (batch, projection_dim), from an encoder with a
    projection head (CLAP's `text_embeds`, as AudioLDM conditions on them)."""
    if not hasattr(text_encoder, "text_projection"):
        raise ConfigError(f"{type(text_encoder).__name__} has no projection head; embed needs a text encoder "
                          f"with one (e.g. CLAP's ClapTextModelWithProjection)")
    device = next(text_encoder.parameters()).device
    output = text_encoder(input_ids=tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device))
    return torch.nn.functional.normalize(output.text_embeds, dim=-1)


@torch.no_grad()
def encode_clip(text_encoder: nn.Module, tokens: TokenBatch, layers_back: int = 0,
                final_norm: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(hidden states (batch, length, width), pooled (batch, dim) or None) of a CLIP text encoder.

    `layers_back` counts layers back from the last: 0 is the last layer, 1 the penultimate (diffusers'
    `clip_skip` for Stable Diffusion 1.x/2.x; SDXL reads `clip_skip + 1` layers back). `final_norm` passes
    an earlier layer through the encoder's final layer norm, as Stable Diffusion's pipelines do; SDXL takes
    the raw state. The pooled vector is CLIPTextModelWithProjection's projected `text_embeds` (SDXL's second
    encoder), None for an encoder without a projection.
    """
    if layers_back < 0:
        raise ConfigError(f"layers_back must be 0 or more, got {layers_back}")
    model = getattr(text_encoder, "text_model", text_encoder)
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    if layers is None or not hasattr(model, "final_layer_norm"):
        raise ConfigError(f"{type(text_encoder).__name__} is not a CLIP text encoder; clip_skip and SDXL's "
                          f"hidden states need one (CLIPTextModel or CLIPTextModelWithProjection)")
    if layers_back >= len(layers):
        raise ConfigError(f"cannot go {layers_back} layers back in a CLIP text encoder of {len(layers)} layers")
    device = next(text_encoder.parameters()).device
    mask = tokens.attention_mask.to(device) if getattr(text_encoder.config, "use_attention_mask", False) else None
    output = text_encoder(input_ids=tokens.input_ids.to(device), attention_mask=mask, output_hidden_states=True)
    # hidden_states holds the embeddings then every layer's output; the last is before the final norm.
    hidden = output.hidden_states[-1 - layers_back]
    if final_norm:
        hidden = model.final_layer_norm(hidden)
    pooled = getattr(output, "text_embeds", None)
    return hidden, pooled


class TextEncoder:
    """A tokenizer and its text encoder, used together: `TextEncoder.from_pretrained(src).encode(texts)`."""

    def __init__(self, tokenizer, model: nn.Module, max_length: int | None = None, padding: str = "max_length"):
        self.tokenizer = tokenizer
        self.model = model
        self.max_length = max_length
        self.padding = padding

    @classmethod
    def from_pretrained(cls, pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                        tokenizer_subfolder: str | None = None, revision: str | None = None,
                        torch_dtype: torch.dtype | str | None = None, device: torch.device | str | None = None,
                        max_length: int | None = None, padding: str = "max_length") -> "TextEncoder":
        """Tokenizer from `tokenizer_subfolder` (default: `subfolder`), encoder from `subfolder` of one source."""
        tokenizer = load_tokenizer(pretrained, tokenizer_subfolder or subfolder, revision)
        model = load_text_encoder(pretrained, subfolder, revision, torch_dtype=torch_dtype, device=device)
        return cls(tokenizer, model, max_length=max_length, padding=padding)

    def tokenize(self, texts: str | list[str]) -> TokenBatch:
        return tokenize(self.tokenizer, texts, max_length=self.max_length, padding=self.padding)

    def encode(self, texts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden states (batch, length, width), attention mask (batch, length)) for `texts`."""
        return encode(self.model, self.tokenize(texts))
