"""What a model's forward returns: diffusers' output shapes, so that diffusers-style code runs unchanged.

diffusers' models return an output object (`unet(x, t).sample`, `vae.encode(x).latent_dist`,
`vae.decode(z).sample`) or, with `return_dict=False`, a plain tuple (`unet(x, t, return_dict=False)[0]`).
Every dgraph model does the same through one helper. A model adopts it in two lines of its forward
(and of `encode` / `decode` where diffusers has those):

    def forward(self, sample, timestep, ..., return_dict: bool = True):
        ...
        return model_output(return_dict, sample=hidden)

The field names are diffusers' for that model (`sample`, `latent_dist`, `latents`, `commit_loss`,
`last_hidden_state`); fields that are None are left out, as diffusers leaves them out.
"""
from __future__ import annotations

from typing import Any

import torch


class ModelOutput(dict):
    """Named results that read as attributes, by name, or by position: `out.sample`, `out["sample"]`, `out[0]`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            fields = ", ".join(self) or "none"
            raise AttributeError(f"this model output has no field {name!r}; its fields: {fields}") from None

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def to_tuple(self) -> tuple:
        """The fields in order, as `return_dict=False` gives them."""
        return tuple(self.values())

    def __repr__(self) -> str:
        shapes = {key: tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                  for key, value in self.items()}
        return f"ModelOutput({shapes})"


def model_output(return_dict: bool, **fields: Any) -> ModelOutput | tuple:
    """A forward's return value: the non-None `fields` as a ModelOutput, or as a tuple with return_dict=False."""
    present = {key: value for key, value in fields.items() if value is not None}
    return ModelOutput(present) if return_dict else tuple(present.values())


def first_output(output: Any) -> torch.Tensor:
    """The main tensor of whatever a network returned: a bare tensor, a ModelOutput, or a tuple.

    For callers that take any network (a dgraph model, a diffusers one, or a plain function).
    """
    if isinstance(output, torch.Tensor):
        return output
    return output[0]
