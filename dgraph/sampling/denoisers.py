"""Denoisers: a model with its conditioning, and the guidance that wraps them.

Each is a small callable `(x, t) -> output`. Classifier-free guidance over two conditionings of the same
model runs one batched forward pass (as a hand-written loop would), not two.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..errors import DgraphError
from ..models.outputs import first_output
from .compiled import compiled_network

DenoiserFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# The kinds of conditioning a denoiser network may declare, and what each is.
CONDITIONING_KINDS = {
    "context": "text hidden states [batch, tokens, dim] for cross-attention",
    "context_mask": "the keep-mask of those tokens [batch, tokens] (1 = attend)",
    "pooled": "a pooled text embedding [batch, dim]",
    "class_labels": "class ids [batch]",
    "added": "named extra conditions (e.g. PixArt-α's resolution and aspect ratio), passed as one dict",
}
# How a network that declares nothing is called: the UNet keywords, as dgraph's UNets and diffusers' take them.
_UNDECLARED = {"context": "encoder_hidden_states", "context_mask": "encoder_attention_mask",
               "class_labels": "class_labels"}


def network_conditioning(model: nn.Module) -> dict[str, str]:
    """What a denoiser network takes: conditioning kind -> the keyword of its forward that receives it.

    A network declares this as its `conditioning` attribute (a class attribute naming every kind the class
    can take; an instance may narrow it to its configuration). A module without the attribute is taken to
    be a UNet-style `model(x, t, encoder_hidden_states=..., class_labels=...)`.
    """
    declared = getattr(model, "conditioning", None)
    return dict(_UNDECLARED if declared is None else declared)


class ModelDenoiser:
    """A denoiser network with fixed conditioning: `model(x, timestep=t, **conditioning)`.

    Each piece of conditioning given (text `context` and its `context_mask`, `pooled` text, `class_labels`,
    `added` conditions) goes to the forward keyword the network declares for it (`network_conditioning`);
    one the network does not take is an error, except a context mask, which only networks that attend
    with it receive. A conditioning with batch 1 is broadcast to x's batch.

    `compile` (a `torch.compile` mode: "default", "reduce-overhead", "max-autotune") runs the network's
    forward compiled (`dgraph.sampling.compiled`); `model` stays the eager network.
    """

    def __init__(self, model: nn.Module, context: torch.Tensor | None = None,
                 context_mask: torch.Tensor | None = None, class_labels: torch.Tensor | None = None, *,
                 pooled: torch.Tensor | None = None, added: dict[str, torch.Tensor] | None = None,
                 compile: str | None = None):
        self.model = model
        self._network = compiled_network(model, compile) if compile else model
        self.takes = network_conditioning(model)
        given = {"context": context, "context_mask": context_mask, "pooled": pooled, "class_labels": class_labels,
                 "added": added or None}
        refused = [kind for kind, value in given.items()
                   if value is not None and kind not in self.takes and kind != "context_mask"]
        if refused:
            raise DgraphError(f"{type(model).__name__} takes no {' and no '.join(refused)}; "
                              f"it takes: {', '.join(self.takes) or 'no conditioning'}")
        self.conditioning = {kind: value for kind, value in given.items() if value is not None and kind in self.takes}
        # Networks that declare their conditioning are called with keywords; others UNet-style, (x, t, ...).
        self._keyword_timestep = getattr(model, "conditioning", None) is not None
        # The conditioning a forward pass needs is the same at every step: build it once per batch shape.
        self._prepared: dict[tuple, dict[str, Any]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _kwargs(self, batch: int, parts: list["ModelDenoiser"] | None = None) -> dict[str, Any]:
        key = (batch, *(id(p) for p in parts or [self]))
        if key not in self._prepared:
            self._prepared[key] = self._build_kwargs(batch, parts or [self])
        return self._prepared[key]

    def _build_kwargs(self, batch: int, parts: list["ModelDenoiser"]) -> dict[str, Any]:
        per = batch // len(parts)
        kwargs: dict[str, Any] = {}
        for kind, keyword in self.takes.items():
            values = [p.conditioning.get(kind) for p in parts]
            if all(v is None for v in values):
                continue
            if kind == "context_mask":  # a branch without a mask attends to all of its tokens
                values = [v if v is not None else torch.ones(p.conditioning["context"].shape[:2], dtype=torch.long)
                          for v, p in zip(values, parts)]
            elif any(v is None for v in values):
                raise DgraphError(f"the branches batched into one forward pass differ: some give {kind}, "
                                  f"some do not; give it to every branch")
            if kind == "added":
                kwargs[keyword] = {name: self._place(torch.cat([_fit(v[name], per) for v in values]))
                                   for name in values[0]}
            else:
                kwargs[keyword] = self._place(torch.cat([_fit(v, per) for v in values]))
        return kwargs

    def _place(self, tensor: torch.Tensor) -> torch.Tensor:
        """On the network's device; floating-point conditioning also in its dtype."""
        return tensor.to(self.device, self.dtype) if tensor.is_floating_point() else tensor.to(self.device)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
        if self._keyword_timestep:
            return self._network(x, timestep=t, **kwargs)
        return self._network(x, t, **kwargs)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = first_output(self._forward(x.to(self.device, self.dtype), t, self._kwargs(x.shape[0])))
        return out.to(x.dtype) if out.dtype != x.dtype else out

    def batched_with(self, other: "ModelDenoiser", x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs of `self` and `other` (same model, other conditioning) from one forward pass."""
        both = torch.cat([x, x]).to(self.device, self.dtype)
        out = first_output(self._forward(both, t, self._kwargs(both.shape[0], [self, other]))).to(x.dtype)
        return out[: x.shape[0]], out[x.shape[0]:]


def _fit(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat a batch-1 (or batch-divisor) conditioning up to `batch` rows."""
    if tensor.shape[0] == batch:
        return tensor
    if batch % tensor.shape[0]:
        raise ValueError(f"conditioning of batch {tensor.shape[0]} does not divide the sample batch {batch}")
    return tensor.repeat_interleave(batch // tensor.shape[0], dim=0)


class ClassifierFreeGuidance:
    """`uncond + scale · (cond − uncond)` (Ho & Salimans 2022), with optional guidance rescale
    (Lin et al. 2023, §3.4) that pulls the result's per-sample std back towards the conditional one.

    Outputs with learned-variance channels (2× the sample's channels, as GLIDE's) are guided on the
    first half only; the variance comes from the conditional branch.
    """

    def __init__(self, cond: DenoiserFn, uncond: DenoiserFn, scale: float, rescale: float = 0.0):
        self.cond, self.uncond, self.scale, self.rescale = cond, uncond, scale, rescale

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0 and self.rescale == 0.0:
            return self.cond(x, t)
        if isinstance(self.cond, ModelDenoiser) and isinstance(self.uncond, ModelDenoiser) \
                and self.cond.model is self.uncond.model:
            uncond, cond = self.uncond.batched_with(self.cond, x, t)
        else:
            cond, uncond = self.cond(x, t), self.uncond(x, t)
        channels = x.shape[1]
        variance = None
        if cond.shape[1] == 2 * channels:
            cond, variance = cond[:, :channels], cond[:, channels:]
            uncond = uncond[:, :channels]
        guided = uncond + self.scale * (cond - uncond)
        if self.rescale > 0:
            dims = list(range(1, cond.dim()))
            std_cond = cond.std(dim=dims, keepdim=True)
            std_guided = guided.std(dim=dims, keepdim=True)
            rescaled = guided * (std_cond / std_guided)
            guided = self.rescale * rescaled + (1 - self.rescale) * guided
        return guided if variance is None else torch.cat([guided, variance], dim=1)


class DynamicThresholding:
    """Imagen's dynamic thresholding (Saharia et al. 2022, §2.3) as a denoiser wrapper.

    The wrapped denoiser's epsilon is turned into x0 with the scheduler's alpha_bar(t); x0 is clipped
    per sample at s = max(1, `ratio`-quantile of |x0|) (capped at `max_value`) and divided by s; the
    epsilon that gives that x0 is returned. Works with epsilon-predicting models.
    """

    def __init__(self, denoiser: DenoiserFn, alphas_cumprod: torch.Tensor, ratio: float = 0.995,
                 max_value: float = 1.0):
        self.denoiser, self.alphas_cumprod, self.ratio, self.max_value = denoiser, alphas_cumprod, ratio, max_value

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.denoiser(x, t)
        channels = x.shape[1]
        eps, rest = out[:, :channels], out[:, channels:]
        index = int(torch.as_tensor(t).reshape(-1)[0].round().clamp(0, len(self.alphas_cumprod) - 1))
        alpha_bar = self.alphas_cumprod[index].to(torch.float64)
        a, s = alpha_bar.sqrt().item(), (1 - alpha_bar).sqrt().item()
        x0 = (x.float() - s * eps.float()) / a
        flat = x0.reshape(x0.shape[0], -1).abs()
        limit = torch.quantile(flat, self.ratio, dim=1).clamp(min=1.0, max=self.max_value)
        limit = limit.view(-1, *([1] * (x0.dim() - 1)))
        x0 = torch.maximum(torch.minimum(x0, limit), -limit) / limit
        eps = ((x.float() - a * x0) / s).to(out.dtype)
        return eps if rest.numel() == 0 else torch.cat([eps, rest], dim=1)


class VocoderDenoiser:
    """A diffusion vocoder (FastDiff, DiffWave) conditioned on a mel: `model(sample=x, timestep=t, mel=mel)`."""

    def __init__(self, model: nn.Module, mel: torch.Tensor):
        self.model, self.mel = model, mel

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        parameter = next(self.model.parameters())
        timestep = torch.as_tensor(t, dtype=torch.float32, device=parameter.device).reshape(-1)
        out = self.model(sample=x.to(parameter.device, parameter.dtype), timestep=timestep,
                         mel=self.mel.to(parameter.device, parameter.dtype))
        return out.reshape(x.shape).to(x.dtype)
