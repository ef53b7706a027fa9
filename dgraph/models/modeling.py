"""The base of every dgraph model: config recording, safetensors loading and saving in diffusers' layout.

A model folder holds `config.json` (the constructor's arguments) and its weights, either one file

    diffusion_pytorch_model.safetensors            (or diffusion_pytorch_model.fp16.safetensors, a variant)

or shards listed by an index

    diffusion_pytorch_model.safetensors.index.json (variant: diffusion_pytorch_model.safetensors.index.fp16.json)
    diffusion_pytorch_model-00001-of-00002.safetensors ...

`from_pretrained` builds the module on the meta device (no memory, no random init) and then assigns the
tensors read from the files into it, so the weights exist in memory once. Pickled weights (`.bin`) are
refused unless the caller passes `allow_pickle=True`, and are then read with `torch.load(weights_only=True)`.

A model family that keeps its weights under another file name sets the class attributes
`weights_name` / `pickle_weights_name` (e.g. "model.safetensors" / "pytorch_model.bin").
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import torch
from torch.overrides import TorchFunctionMode

from ..atomic import write_atomic
from ..configuration import ConfigMixin, read_json, write_text_atomic
from ..errors import ConfigError, WeightsError
from ..hub import Source, as_source, fetch_file

logger = logging.getLogger("dgraph")

DEFAULT_MAX_SHARD_SIZE = "10GB"
_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")
# How many keys an error lists before it says "and N more".
_LIST_LIMIT = 20


def add_variant(filename: str, variant: str | None) -> str:
    """Insert a variant before the last extension: `a.safetensors` -> `a.fp16.safetensors`.

    This is diffusers' naming, also for index files (`a.safetensors.index.json` -> `a.safetensors.index.fp16.json`).
    """
    if not variant:
        return filename
    stem, dot, ext = filename.rpartition(".")
    return f"{stem}.{variant}.{ext}" if dot else f"{filename}.{variant}"


def parse_size(size: int | str) -> int:
    """Bytes in a size such as 5_000_000, "5MB" (10**6) or "5MiB" (2**20)."""
    if isinstance(size, int) and not isinstance(size, bool):
        if size <= 0:
            raise ConfigError(f"max_shard_size must be positive, got {size}")
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(size))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _SIZE_UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"max_shard_size {size!r} is not a size; write bytes as an int, or e.g. '500MB', '2GiB'")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _listing(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_LIST_LIMIT])
    return shown + (f", ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else "")


class ModelMixin(torch.nn.Module, ConfigMixin):
    """A torch module whose constructor arguments are its config and whose weights live in safetensors files.

    Subclasses decorate `__init__` with `dgraph.configuration.register_to_config`.
    """

    config_name: ClassVar[str] = "config.json"
    # File names of the weights; a family stored under other names overrides these two.
    weights_name: ClassVar[str] = "diffusion_pytorch_model.safetensors"
    pickle_weights_name: ClassVar[str] = "diffusion_pytorch_model.bin"

    # ---- facts ------------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the first floating-point parameter (float32 for a model without any)."""
        for tensor in self.parameters():
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        """The device of the first parameter."""
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- loading ----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                        revision: str | None = None, variant: str | None = None,
                        torch_dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                        allow_pickle: bool = False, low_cpu_mem_usage: bool = True,
                        output_loading_info: bool = False, config: Mapping[str, Any] | None = None):
        """Build the model from `config.json` and load its weights.

        pretrained: a folder, a Hub repo id, or any source string of dgraph.hub (`hf://`, `pkg://`), or a
            single-file Stable Diffusion checkpoint (`model.safetensors`; see dgraph.models.single_file).
        variant: read `diffusion_pytorch_model.<variant>.safetensors` (e.g. "fp16") instead of the plain file.
        torch_dtype: dtype of the floating-point weights (default: float32, the dtype the module is built in).
        device: where the weights are read to (default: CPU).
        allow_pickle: accept pickled `.bin` weights when no safetensors file exists (read with weights_only=True).
        low_cpu_mem_usage: accepted for diffusers' callers; loading is always the low-memory kind (the
            module is built on the meta device and the weights are assigned into it).
        output_loading_info: also return diffusers' loading report, `(model, {"missing_keys": [],
            "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []})`. Its lists are always empty:
            a checkpoint that does not fit the config is refused with every problem named.
        config: the source's config.json when the caller has already read it (it is not read again).
        Returns the model in eval mode.
        """
        source = as_source(pretrained, subfolder, revision)
        if source.is_single_file:  # an original Stable Diffusion checkpoint (dgraph.models.single_file)
            from .auto import load_model

            return load_model(source, expect=(cls.__name__,), variant=variant, torch_dtype=torch_dtype, device=device)
        config = dict(config) if config is not None else cls.load_config(source)
        if config.get("_class_name") not in (None, cls.__name__, *cls.compatible_class_names):
            logger.warning("%s: config.json was written for %s, loading it as %s",
                           source, config.get("_class_name"), cls.__name__)
        files, pickled = cls._find_weight_files(source, variant, allow_pickle)
        with torch.device("meta"), _SkipWeightInit():
            model = cls.from_config(config)
        target_device = torch.device(device) if device is not None else torch.device("cpu")
        expected = {key: (tensor.shape, tensor.dtype) for key, tensor in model.state_dict().items()}
        state_dict = _read_weights(files, pickled, expected, torch_dtype, target_device)
        state_dict = cls.convert_legacy_state_dict(state_dict)
        model._assign_state_dict(state_dict, {key: shape for key, (shape, _) in expected.items()}, str(source))
        model._materialize_leftover_buffers(config, torch_dtype, target_device)
        if output_loading_info:
            report = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
            return model.eval(), report
        return model.eval()


    @classmethod
    def _find_weight_files(cls, source: Source, variant: str | None, allow_pickle: bool) -> tuple[list[Path], bool]:
        """The weight files to read (one, or every shard of an index) and whether they are pickles."""
        looked: list[str] = []
        for name, pickled in ((cls.weights_name, False), (cls.pickle_weights_name, True)):
            if pickled and not allow_pickle:
                continue
            index_name = add_variant(f"{name}.index.json", variant)
            single_name = add_variant(name, variant)
            looked += [single_name, index_name]
            # The single file first: it is the common case, and each probe may be a Hub request.
            single = fetch_file(source, single_name, required=False)
            if single is not None:
                return [single], pickled
            index = fetch_file(source, index_name, required=False)
            if index is not None:
                return [fetch_file(source, shard) for shard in _shards_of(index)], pickled
        if not allow_pickle:
            pickle_names = (add_variant(cls.pickle_weights_name, variant),
                            add_variant(f"{cls.pickle_weights_name}.index.json", variant))
            for name in pickle_names:
                if fetch_file(source, name, required=False) is not None:
                    raise WeightsError(
                        f"{source}: only pickled weights ({name}) were found, and pickles can run code when "
                        f"loaded; pass allow_pickle=True to read them with torch.load(weights_only=True), or "
                        f"convert them to safetensors")
        hint = " (drop variant= to read the plain weights)" if variant else ""
        raise WeightsError(f"{source}: no weights for {cls.__name__}: looked for {', '.join(looked)}{hint}")

    @classmethod
    def convert_legacy_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename the keys of checkpoints written in an older layout of the same model (default: none)."""
        return state_dict

    def _assign_state_dict(self, state_dict: dict[str, torch.Tensor], expected: Mapping[str, torch.Size],
                           where: str) -> None:
        """Put the tensors into the (meta) module in place of its parameters and buffers, after checking
        every key and shape. The tensors are used as they are (no copy); they are the model's own
        (`_read_weights` copies what would stay backed by the file's memory map)."""
        missing = expected.keys() - state_dict.keys()
        unexpected = state_dict.keys() - expected.keys()
        mismatched = [f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(shape)}"
                      for key, shape in sorted(expected.items())
                      if key in state_dict and state_dict[key].shape != shape]
        problems = []
        if missing:
            problems.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches ({len(mismatched)}): " + "; ".join(mismatched[:_LIST_LIMIT])
                            + (f"; ... and {len(mismatched) - _LIST_LIMIT} more" if len(mismatched) > _LIST_LIMIT else ""))
        if problems:
            raise WeightsError(f"{where}: the weights do not fit {type(self).__name__} as configured by its "
                               f"config.json: " + "; ".join(problems)
                               + ". Check that the folder holds this model's weights and an unedited config.json")
        modules = dict(self.named_modules())
        for key, tensor in state_dict.items():
            owner_name, _, leaf = key.rpartition(".")
            owner = modules[owner_name]
            if leaf in owner._parameters:
                # Direct assignment; load_state_dict(assign=True) does the same with much per-key overhead.
                owner._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=owner._parameters[leaf].requires_grad)
            else:
                owner._buffers[leaf] = tensor

    def _materialize_leftover_buffers(self, config: Mapping[str, Any], dtype: torch.dtype | None,
                                      device: torch.device) -> None:
        """Fill buffers that are not saved (persistent=False) and so are still on the meta device.

        They are computed constants; the only way to know them is to build the module for real. Models
        avoid this cost by computing such constants in `forward` instead of registering them.
        """
        leftover = [name for name, buffer in self.named_buffers() if buffer.is_meta]
        if not leftover:
            return
        logger.debug("%s: building a CPU copy to fill buffers %s", type(self).__name__, leftover)
        real = dict(type(self).from_config(config).named_buffers())
        for name in leftover:
            owner_name, _, buffer_name = name.rpartition(".")
            owner = self.get_submodule(owner_name)
            value = real[name]
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            owner._buffers[buffer_name] = value.to(device)

    # ---- saving -----------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
                        variant: str | None = None) -> None:
        """Write `config.json` and the weights as safetensors into `save_directory`.

        Weights larger than `max_shard_size` (bytes, or a string such as "500MB") are split into shards
        with an index file. Each file is written under a temporary name and renamed into place, and
        shards left by an earlier save of the same variant are removed, so the folder is never a mix.
        """
        from safetensors.torch import save_file

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_config(folder)
        state_dict = _unshared(self.state_dict())
        shards = _split_into_shards(state_dict, parse_size(max_shard_size))
        single_name = add_variant(self.weights_name, variant)
        index_name = add_variant(f"{self.weights_name}.index.json", variant)
        stem, _, ext = single_name.rpartition(".")
        if len(shards) == 1:
            names = [single_name]
        else:
            names = [f"{stem}-{i + 1:05d}-of-{len(shards):05d}.{ext}" for i in range(len(shards))]
        for name, keys in zip(names, shards):
            write_atomic(folder / name, lambda tmp, keys=keys: save_file(
                {key: state_dict[key] for key in keys}, str(tmp), metadata={"format": "pt"}))
        if len(shards) > 1:
            index = {"metadata": {"total_size": sum(_nbytes(t) for t in state_dict.values())},
                     "weight_map": {key: name for name, keys in zip(names, shards) for key in keys}}
            write_text_atomic(folder / index_name, json.dumps(index, indent=2, sort_keys=True) + "\n")
        # Remove what an earlier save of the same variant left that this one did not write.
        for old in folder.iterdir():
            old_stem = old.name[: -len(ext) - 1] if old.name.endswith(f".{ext}") else None
            stale_shard = old_stem is not None and _SHARD_SUFFIX.search(old_stem) and \
                _SHARD_SUFFIX.sub("", old_stem) == stem and old.name not in names
            stale_single = old.name == single_name and single_name not in names
            stale_index = old.name == index_name and len(shards) == 1
            if stale_shard or stale_single or stale_index:
                old.unlink()


class _SkipWeightInit(TorchFunctionMode):
    """Make torch.nn.init's initialisers return their tensor untouched while a model is built on meta.

    Random initialisation of meta tensors computes nothing but still costs Python time per layer
    (a third of building a UNet); the values are replaced by the checkpoint's anyway. A torch-function
    mode is local to the thread that enters it, so models built elsewhere at the same time are unaffected.
    """

    _INITIALISERS = frozenset(getattr(torch.nn.init, name) for name in (
        "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
        "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_"))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._INITIALISERS:
            tensor = args[0] if args else kwargs["tensor"]
            if tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


def _shards_of(index_path: Path) -> list[str]:
    index = read_json(index_path)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightsError(f"{index_path}: an index file needs a non-empty 'weight_map' object (tensor name -> file)")
    return sorted(set(weight_map.values()))


def _read_weights(files: list[Path], pickled: bool, expected: Mapping[str, tuple[torch.Size, torch.dtype]],
                  dtype: torch.dtype | None, device: torch.device) -> dict[str, torch.Tensor]:
    """All tensors of `files`, cast one by one (so at most one tensor exists twice) and on `device`."""
    # Without a requested dtype, floating weights take the dtype the module was built with.
    model_dtypes = {key: kind for key, (_, kind) in expected.items()}
    fallback = next((t for t in model_dtypes.values() if t.is_floating_point), torch.get_default_dtype())
    state_dict: dict[str, torch.Tensor] = {}

    def put(key: str, tensor: torch.Tensor) -> None:
        read = tensor
        if tensor.is_floating_point():
            # Keys in an older layout are renamed later; they take the model's floating dtype.
            tensor = tensor.to(dtype or model_dtypes.get(key, fallback))
        tensor = tensor.to(device)
        if tensor.device.type == "cpu" and tensor.data_ptr() == read.data_ptr():
            # Still the file's memory map: own a copy, or editing the file changes a loaded model in
            # place and truncating it kills the process (SIGBUS).
            tensor = tensor.clone()
        state_dict[key] = tensor

    for path in files:
        if pickled:
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as error:  # a pickle that weights_only refuses is the user's file, not our bug
                raise WeightsError(f"{path}: cannot read as a weights-only pickle: {error}") from None
            for key in list(loaded):
                put(key, loaded.pop(key))
            continue
        from safetensors import safe_open
        from safetensors import SafetensorError

        # safetensors reads straight onto an accelerator when asked; CPU reads stay CPU.
        read_device = str(device) if device.type in ("cuda", "cpu") else "cpu"
        try:
            with safe_open(str(path), framework="pt", device=read_device) as handle:
                for key in handle.keys():
                    put(key, handle.get_tensor(key))
        except SafetensorError as error:
            raise WeightsError(f"{path}: not a readable safetensors file: {error}") from None
    return state_dict


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _split_into_shards(state_dict: Mapping[str, torch.Tensor], max_bytes: int) -> list[list[str]]:
    """Keys grouped in order into shards of at most `max_bytes` (a bigger tensor gets a shard to itself)."""
    shards: list[list[str]] = [[]]
    size = 0
    for key, tensor in state_dict.items():
        nbytes = _nbytes(tensor)
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    return shards


def _unshared(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors, none sharing memory with another (safetensors refuses shared storage)."""
    seen: set[tuple[int, int]] = set()
    result = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach()
        if tensor.device.type == "meta":
            raise WeightsError(f"cannot save {key}: it is on the meta device (the model was never loaded)")
        span = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if span in seen or not tensor.is_contiguous():
            tensor = tensor.contiguous() if span not in seen else tensor.clone()
        seen.add(span)
        result[key] = tensor
    return result



