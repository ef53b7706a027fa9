"""Shared fixtures. `hub_cache` gives an offline Hugging Face cache that tests fill with files, so the real
huggingface_hub code path (hf_hub_download, revisions, HF_HUB_OFFLINE) runs without the network."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest


class FakeHubCache:
    def __init__(self, root: Path):
        self.root = root

    def add(self, repo_id: str, path_in_repo: str, data: bytes | str, revision: str = "main") -> Path:
        """Put one file into the cache as if it had been downloaded from `repo_id` at `revision`."""
        if isinstance(data, str):
            data = data.encode()
        repo = self.root / ("models--" + repo_id.replace("/", "--"))
        commit = revision if len(revision) == 40 else hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
        if len(revision) != 40:
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / revision).write_text(commit)
        target = repo / "snapshots" / commit / path_in_repo
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target

    def add_folder(self, repo_id: str, folder: Path, path_in_repo: str = "", revision: str = "main") -> None:
        for file in Path(folder).rglob("*"):
            if file.is_file():
                rel = file.relative_to(folder).as_posix()
                self.add(repo_id, f"{path_in_repo}/{rel}".strip("/"), file.read_bytes(), revision)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> FakeHubCache:
    """An empty, offline Hub cache (HF_HUB_OFFLINE=1) in a temporary folder."""
    import huggingface_hub.constants as constants

    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return FakeHubCache(root)


@pytest.fixture
def cli(capsys):
    """The same `main`, in-process (fast): returns (exit code, stdout, stderr)."""
    from dgraph.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run
