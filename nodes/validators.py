"""Validators of literal node inputs that validation runs; torch-free, so a node manifest can name them."""
from __future__ import annotations

import re

_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def check_prefix(prefix: str) -> str:
    """A file-name prefix inside the output folder: letters, digits, '_', '-', '.' and '/', no '.' or '..' part."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"prefix {prefix!r} may hold only letters, digits, '_', '-', '.' and '/'")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise ValueError(f"prefix {prefix!r} leaves the output folder ('.' and '..' are not allowed in it)")
    return prefix
