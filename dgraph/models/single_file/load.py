"""Loading one component of a single-file checkpoint: resolve the file, tell its architecture, build the
component on the meta device, and read only that component's tensors into it, renamed to diffusers' keys."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import torch

from ...errors import WeightsError
from ...hub import Source, fetch_file, parse_source
from ..modeling import _SkipWeightInit, _listing
from .architecture import COMPONENTS, Architecture, Shapes, detect
from .clip import Plan, clip_config, clip_plan
from .reader import Checkpoint, refuse_pickle
from .unet import unet_config, unet_key
from .vae import IGNORED as VAE_IGNORED
from .vae import vae_config, vae_key, vae_tensor

TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


def checkpoint_path(source: Source) -> Path:
    """The local path of a single-file source (a Hub file is fetched into the huggingface_hub cache first)."""
    if source.kind == "folder":
        path = Path(source.location)
        refuse_pickle(path)
        if not path.is_file():
            raise WeightsError(f"{source}: no such checkpoint file {path}")
        return path
    name = PurePosixPath(source.path)
    refuse_pickle(Path(name.name), source)
    parent = replace(source, path=str(name.parent) if str(name.parent) != "." else "", component="")
    return fetch_file(parent, name.name)


def read_architecture(path: str | Path) -> Architecture:
    """The architecture a single file holds (from its header alone)."""
    with Checkpoint(path) as checkpoint:
        return detect(checkpoint.shapes, str(path))


def choose_component(requested: str, where: str, arch: Architecture, allowed: tuple[str, ...], what: str) -> str:
    """The component a loader of `what` reads from the file `where`: `requested` (the name after `#`), else
    the only one of `allowed` the file holds."""
    held = [name for name in COMPONENTS if name in arch.components]
    named = f"{where}#{requested}"
    if requested:
        if requested not in COMPONENTS:
            raise WeightsError(f"{named}: no component {requested!r}; a single file's components are "
                               f"{', '.join(COMPONENTS)}")
        if requested not in allowed:
            raise WeightsError(f"{named}: a {what} is expected here, not the {requested}; "
                               f"write {'#' + ' or #'.join(allowed)} (this {arch.name} file holds {', '.join(held)})")
        if requested not in arch.components:
            raise WeightsError(f"{named}: this {arch.name} file holds no {requested}; it holds {', '.join(held)}")
        return requested
    present = [name for name in allowed if name in arch.components]
    if len(present) == 1:
        return present[0]
    if not present:
        raise WeightsError(f"{where}: this {arch.name} file holds no {what} ({' or '.join(allowed)}); "
                           f"it holds {', '.join(held) or 'none of ' + ', '.join(COMPONENTS)}")
    raise WeightsError(f"{where}: this {arch.name} file holds {' and '.join(present)}; name the one to load: "
                       + " or ".join(f"{where}#{name}" for name in present))


@dataclass
class Component:
    """One component of a single file in diffusers' terms: the class and config to build, and its tensors
    under diffusers' (for text encoders: transformers' `text_model.*`) key names."""

    name: str  # "unet", "vae", "text_encoder", "text_encoder_2"
    architecture: Architecture
    class_name: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    originals: dict[str, str]  # diffusers key -> the file's key it was read from
    unused: list[str]  # the file's keys under the component's prefix that the layout has no place for
    where: str


@dataclass
class ComponentPlan:
    """What reading one component takes, decided from the header alone: its class and config, and where
    each diffusers key comes from (`plan`: diffusers key -> (file key without `prefix`, transform))."""

    name: str
    architecture: Architecture
    class_name: str
    config: dict[str, Any]
    prefix: str
    plan: Plan
    unused: list[str]
    where: str


def plan_component(shapes: Shapes, where: str, requested: str = "", allowed: tuple[str, ...] = COMPONENTS,
                   what: str = "component") -> ComponentPlan:
    """The plan for reading one component of a file whose tensor names and shapes are `shapes`: the
    `requested` one, else the only one of `allowed` the file holds. `where` names the file in errors."""
    arch = detect(shapes, where)
    name = choose_component(requested, where, arch, allowed, what)
    where = f"{where} ({arch.name}, {name})"
    prefix = arch.components[name]
    own = {key[len(prefix):]: shape for key, shape in shapes.items() if key.startswith(prefix)}
    if name == "unet":
        class_name, config = "UNet2DConditionModel", unet_config(own, arch, shapes, where)
        layers = config["layers_per_block"]
        plan, unused = _plan(own, lambda key: unet_key(key, layers), lambda _key, tensor: tensor)
    elif name == "vae":
        class_name, config = "AutoencoderKL", vae_config(own, arch, where)
        levels = len(config["block_out_channels"])
        kept = {key: shape for key, shape in own.items() if not key.startswith(VAE_IGNORED)}
        plan, unused = _plan(kept, lambda key: vae_key(key, levels), vae_tensor)
    else:
        layout = arch.text_layouts[name]
        class_name, config = clip_config(own, layout, name, arch.family, where)
        plan, unused = clip_plan(list(own), layout, config["num_hidden_layers"], config["hidden_size"],
                                 projection=class_name == "CLIPTextModelWithProjection")
    return ComponentPlan(name, arch, class_name, config, prefix, plan, [prefix + key for key in unused], where)


def read_component(source: Source | str | Path, allowed: tuple[str, ...] = COMPONENTS, what: str = "component",
                   torch_dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> Component:
    """Read one component of a single-file checkpoint (only its tensors): the one named after `#`, else the
    only one of `allowed` the file holds. Floating tensors come as `torch_dtype` (default float32)."""
    source = source if isinstance(source, Source) else parse_source(source)
    path = checkpoint_path(source)
    target = torch.device(device) if device is not None else torch.device("cpu")
    with Checkpoint(path) as checkpoint:
        where = str(replace(source, component=""))
        p = plan_component(checkpoint.shapes, where, source.component, allowed, what)
        state = {key: _own(transform(checkpoint.tensor(p.prefix + original)), torch_dtype or torch.float32, target)
                 for key, (original, transform) in p.plan.items()}
    originals = {key: p.prefix + original for key, (original, _) in p.plan.items()}
    return Component(p.name, p.architecture, p.class_name, p.config, state, originals, p.unused, p.where)


def load_component(source: Source, allowed: tuple[str, ...], what: str, torch_dtype: torch.dtype | None = None,
                   device: str | torch.device | None = None) -> torch.nn.Module:
    """One component of a single-file checkpoint, in eval mode: a dgraph UNet2DConditionModel or AutoencoderKL,
    or a transformers CLIP text encoder. `allowed` lists the components the caller can take."""
    component = read_component(source, allowed, what, torch_dtype, device)
    target = torch.device(device) if device is not None else torch.device("cpu")
    if component.name in TEXT_ENCODERS:
        model = _text_encoder(component, target)
    else:
        model = _dgraph_model(component, torch_dtype, target)
    return model.eval()


def _dgraph_model(component: Component, dtype: torch.dtype | None,
                  device: torch.device) -> torch.nn.Module:
    from .. import AutoencoderKL, UNet2DConditionModel

    cls = {"UNet2DConditionModel": UNet2DConditionModel, "AutoencoderKL": AutoencoderKL}[component.class_name]
    with torch.device("meta"), _SkipWeightInit():
        model = cls.from_config(component.config)
    expected = {key: tensor.shape for key, tensor in model.state_dict().items()}
    _check_keys(component, expected)
    model._assign_state_dict(component.state_dict, expected, component.where)
    model._materialize_leftover_buffers(component.config, dtype, device)
    return model


def _plan(shapes, rename: Callable[[str], str | None],
          transform: Callable[[str, torch.Tensor], torch.Tensor]) -> tuple[Plan, list[str]]:
    plan: Plan = {}
    unused = []
    for key in shapes:
        new = rename(key)
        if new is None:
            unused.append(key)
        else:
            plan[new] = (key, lambda tensor, new=new: transform(new, tensor))
    return plan, unused


def _text_encoder(component: Component, device: torch.device) -> torch.nn.Module:
    from ...text.imports import TRANSFORMERS_LOCK

    with TRANSFORMERS_LOCK:  # transformers' lazy imports are not thread-safe
        import transformers

        cls = getattr(transformers, component.class_name)
        config = transformers.CLIPTextConfig(**component.config, architectures=[component.class_name])
    with torch.device("meta"):
        model = cls(config)
    if not hasattr(model, "text_model"):  # transformers keeps a bare CLIPTextModel flat
        component.state_dict = {key.removeprefix("text_model."): t for key, t in component.state_dict.items()}
        component.originals = {key.removeprefix("text_model."): old for key, old in component.originals.items()}
    expected = {key: tensor.shape for key, tensor in model.state_dict().items()}
    _check_keys(component, expected)
    wrong = [f"{key}: file {tuple(component.state_dict[key].shape)} vs model {tuple(shape)}"
             for key, shape in expected.items() if component.state_dict[key].shape != shape]
    if wrong:
        raise WeightsError(f"{component.where}: shape mismatches in {component.class_name}: {'; '.join(wrong[:10])}")
    model.load_state_dict(component.state_dict, strict=True, assign=True)
    for name, buffer in list(model.named_buffers()):
        if buffer.is_meta:  # position_ids is a computed, unsaved buffer
            if not name.endswith("position_ids"):
                raise WeightsError(f"{component.where}: {component.class_name} buffer {name} is neither in the "
                                   f"file nor computable")
            owner = model.get_submodule(name.rpartition(".")[0])
            owner._buffers["position_ids"] = torch.arange(buffer.shape[-1], device=device).expand(1, -1)
    return model


def _check_keys(component: Component, expected: dict) -> None:
    """Every model key filled and every file key of the component used, or an error naming the rest."""
    state = component.state_dict
    missing = expected.keys() - state.keys()
    unexpected = component.unused + [f"{component.originals[key]} (as {key})" for key in state.keys() - expected.keys()]
    problems = []
    if missing:
        problems.append(f"missing {component.class_name} keys ({len(missing)}): {_listing(missing)}")
    if unexpected:
        problems.append(f"file keys with no place in it ({len(unexpected)}): {_listing(unexpected)}")
    if problems:
        raise WeightsError(f"{component.where}: the file's tensors do not map onto the {component.class_name} "
                           f"inferred from them: " + "; ".join(problems)
                           + ". The file may be damaged, or hold a variant dgraph does not read")


def _own(tensor: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The tensor in `dtype` on `device`, never still backed by the file's memory map."""
    read = tensor
    if tensor.is_floating_point():
        tensor = tensor.to(dtype)
    tensor = tensor.to(device)
    if tensor.device.type == "cpu" and tensor.data_ptr() == read.data_ptr():
        tensor = tensor.clone()
    return tensor.contiguous()
