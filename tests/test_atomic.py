"""Atomic writes: the umask's permissions, flushed before the rename, no temporary file left by a failed
write, and leftovers of killed processes removed on the next write of the same name."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from dgraph import atomic
from dgraph.configuration import write_bytes_atomic


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_umask_permissions(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        write_bytes_atomic(tmp_path / "a.bin", b"x")
        from dgraph.models.unet_2d import UNet2DModel

        model = UNet2DModel(sample_size=8, block_out_channels=(8,), down_block_types=("DownBlock2D",),
                            up_block_types=("UpBlock2D",), layers_per_block=1, norm_num_groups=4)
        model.save_pretrained(tmp_path / "unet")
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == mode
    assert os.stat(tmp_path / "unet" / "diffusion_pytorch_model.safetensors").st_mode & 0o777 == mode
    assert os.stat(tmp_path / "unet" / "config.json").st_mode & 0o777 == mode


def test_data_is_flushed_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b)))
    write_bytes_atomic(tmp_path / "a.bin", b"data")
    assert calls == ["fsync", "replace", "fsync"]  # the file, then the folder holding the new name
    assert (tmp_path / "a.bin").read_bytes() == b"data"


def test_a_failed_write_leaves_nothing(tmp_path):
    def explode(tmp: str) -> None:
        open(tmp, "wb").write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_atomic(tmp_path / "a.bin", explode)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".a.bin.{dead_pid}.0123abcd.tmp"
    mine = tmp_path / f".a.bin.{os.getpid()}.0123abcd.tmp"  # a write in flight in this process
    other = tmp_path / f".b.bin.{dead_pid}.0123abcd.tmp"  # another file's: not this write's business
    for path in (stale, mine, other):
        path.write_bytes(b"half")
    write_bytes_atomic(tmp_path / "a.bin", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.bin", mine.name, other.name])
