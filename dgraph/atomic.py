"""Writing a file so that a reader never sees it half-written, and a crash leaves nothing behind for long.

The data goes to a temporary file beside the target (`.NAME.PID.RANDOM.tmp`), is flushed to disk, then
renamed over the target, and the folder is flushed so that the rename survives a power cut. The
result gets the permissions of the umask, whatever made the temporary file (mkstemp and safetensors
make 0600, which left saved weights unreadable to a group). A process killed between write and rename leaves its
temporary file; the next write of the same name removes those whose process is gone.
"""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Callable


def write_atomic(path: str | os.PathLike, write: Callable[[str], None], *, exclusive: bool = False) -> None:
    """Call `write(temporary_path)` to create the file, then move it into place at `path`.

    `exclusive`: only if `path` does not exist yet (`FileExistsError` otherwise) — the finished file is
    hard-linked to its name, which fails if the name is taken, so two processes racing for one name
    cannot both get it.
    """
    path = Path(path)
    remove_leftovers(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        write(str(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        _fsync(tmp, os.O_RDONLY)
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def write_bytes(path: str | os.PathLike, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to `path` atomically (see the module docstring and `write_atomic`)."""
    def write(tmp: str) -> None:
        with open(tmp, "xb") as handle:
            handle.write(data)

    write_atomic(path, write, exclusive=exclusive)


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of `path` left by processes that no longer run; returns them."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp$")
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match and not _alive(int(match.group(1))):
            (path.parent / name).unlink(missing_ok=True)
            removed.append(path.parent / name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process: leave its file alone
        return True
    return True


def _fsync(path: Path, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:  # a folder cannot be opened on some systems; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
