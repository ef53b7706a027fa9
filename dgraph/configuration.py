"""Config I/O in the on-disk format diffusers uses, shared by models and schedulers.

A class that mixes in `ConfigMixin` records the arguments of its `__init__` (decorated with
`register_to_config`) as `self.config`, writes them as JSON with a `_class_name` key, and is rebuilt
from such a file with `from_config` / `from_pretrained`. The class names match diffusers' so the
files are interchangeable in both directions.
"""
from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Mapping

from .atomic import write_bytes
from .errors import ConfigError
from .hub import Source, as_source, fetch_file, push_folder

logger = logging.getLogger("dgraph")

# Keys diffusers writes for its own bookkeeping; they carry no meaning for the object.
_BOOKKEEPING = {"_class_name", "_diffusers_version", "_name_or_path", "_use_default_values", "_dgraph_version"}


class FrozenConfig(dict):
    """A read-only dict that also allows attribute access (`config.num_train_timesteps`).

    It is a real `dict` so that code written for diffusers, whose `from_config` accepts only dicts,
    takes a dgraph config as it is (`diffusers.DDIMScheduler.from_config(dgraph_scheduler.config)`).
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def _refuse(self, *args, **kwargs):
        raise AttributeError("a config is read-only; build a new object with from_config(config, key=value)")

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = _refuse
    update = pop = popitem = clear = setdefault = __ior__ = _refuse

    def __repr__(self) -> str:
        return f"FrozenConfig({dict(self)!r})"

    def __reduce__(self):  # copy.deepcopy and pickle rebuild it from a plain dict
        return (FrozenConfig, (dict(self),))


def register_to_config(init):
    """Decorate `__init__` so that its bound arguments (defaults filled in) become `self.config`."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        values.pop("self")
        for name, param in signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                values.update(values.pop(name, {}))
            elif param.kind is inspect.Parameter.VAR_POSITIONAL:
                values.pop(name, None)
        ignore = set(getattr(type(self), "ignore_for_config", ()))
        self._internal_config = FrozenConfig({k: _jsonable(v) for k, v in values.items() if k not in ignore})
        init(self, *args, **kwargs)

    wrapper.__signature__ = signature
    return wrapper


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if hasattr(value, "tolist"):  # numpy / torch
        return value.tolist()
    return value


# Upper bounds of the config keys that size a model or a schedule. Real checkpoints stay far below them;
# above them a config would loop for hours building layers, or allocate tens of GB, before failing.
CONFIG_BOUNDS: dict[str, int] = {
    "layers_per_block": 64, "transformer_layers_per_block": 64, "num_attention_heads": 1024,
    "attention_head_dim": 4096, "block_out_channels": 65536, "down_block_types": 32, "up_block_types": 32,
    "in_channels": 4096, "out_channels": 4096, "latent_channels": 4096, "cross_attention_dim": 65536,
    "sample_size": 16384, "num_train_timesteps": 1_000_000, "num_layers": 1024, "residual_channels": 65536,
    # unCLIP's prior and text projection
    "embedding_dim": 65536, "num_embeddings": 65536, "additional_embeddings": 1024, "time_embed_dim": 65536,
    "embedding_proj_dim": 65536, "clip_embed_dim": 65536, "clip_embeddings_dim": 65536,
    "clip_extra_context_tokens": 1024,
}


def check_bounds(owner: str, config: Mapping[str, Any]) -> None:
    """Raise ConfigError for a sizing key over its bound (a list's length and each of its numbers count)."""
    for key, limit in CONFIG_BOUNDS.items():
        value = config.get(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        sizes = [len(values)] if isinstance(value, (list, tuple)) and key.endswith("_types") else values
        for size in sizes:
            if isinstance(size, (int, float)) and not isinstance(size, bool) and not size <= limit:
                raise ConfigError(f"{owner}: config key {key} = {value!r} is over the limit of {limit:,} "
                                  "(real checkpoints stay far below it); fix the config")


class ConfigMixin:
    """Config recording and diffusers-format config files. Subclasses set `config_name`."""

    config_name: ClassVar[str] = "config.json"
    ignore_for_config: ClassVar[tuple[str, ...]] = ()
    # Other class names whose config files this class reads without complaint (diffusers' aliases).
    compatible_class_names: ClassVar[tuple[str, ...]] = ()

    @property
    def config(self) -> FrozenConfig:
        return self._internal_config

    # ---- building ---------------------------------------------------------------------------------
    @classmethod
    def init_parameters(cls) -> dict[str, inspect.Parameter]:
        params = inspect.signature(cls.__init__).parameters
        return {k: p for k, p in params.items() if k != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}

    @classmethod
    def split_config(cls, config: Mapping[str, Any], warn_unknown: bool = True,
                     source: str = "config") -> dict[str, Any]:
        """The subset of `config` that `__init__` accepts; other keys are logged as warnings."""
        accepted = cls.init_parameters()
        kwargs, unknown = {}, []
        for key, value in config.items():
            if key in accepted:
                kwargs[key] = value
            elif key not in _BOOKKEEPING and not key.startswith("_"):
                unknown.append(key)
        if unknown and warn_unknown:
            logger.warning("%s: %s ignores unknown config keys: %s", source, cls.__name__, ", ".join(sorted(unknown)))
        return kwargs

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, warn_unknown: bool | None = None, **overrides):
        """Build from a config (dict, FrozenConfig, or another object's `.config`), with `overrides` applied.

        Keys this class does not take are ignored; they are reported when the config came from a
        class of another family (so that `DDIMScheduler.from_config(ddpm.config)` stays quiet).
        """
        config = dict(config or {})
        config.update(overrides)
        if warn_unknown is None:
            warn_unknown = config.get("_class_name") in (None, cls.__name__, *cls.compatible_class_names)
        kwargs = cls.split_config(config, warn_unknown=warn_unknown)
        check_bounds(cls.__name__, kwargs)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{cls.__name__}: cannot build from config: {error}") from error

    @classmethod
    def load_config(cls, pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                    revision: str | None = None) -> dict[str, Any]:
        """Read `config_name` from a folder, Hub repo or package folder (see dgraph.hub)."""
        source = as_source(pretrained, subfolder, revision)
        path = fetch_file(source, cls.config_name)
        return read_json(path)

    def save_config(self, save_directory: str | os.PathLike) -> Path:
        """Write `config_name` into `save_directory` (created if needed); returns the file's path."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        data = {"_class_name": type(self).__name__, **self.config}
        path = folder / self.config_name
        write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path

    def push_to_hub(self, repo_id: str, subfolder: str | None = None, *, token: str | None = None,
                    private: bool | None = None, commit_message: str | None = None) -> str:
        """Save into a temporary folder and upload it to `repo_id` (under `subfolder`)."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            return push_folder(tmp, repo_id, subfolder, token=token, private=private,
                               commit_message=commit_message or f"Upload {type(self).__name__}")

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        self.save_config(save_directory)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON object from a file, with an error that names the file and the line."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file so that a reader never sees it half-written."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, exclusive: bool = False) -> None:
    """Write a file so that a reader never sees it half-written (dgraph.atomic); `exclusive`: only if `path`
    does not exist yet (`FileExistsError` otherwise), also against another process racing for the name."""
    write_bytes(path, data, exclusive=exclusive)
