"""Reading files a user names: only regular files, within a size (or pixel) limit, checked before reading.

A FIFO or a device (`/dev/zero`) named as a prompt file or an image would block forever or fill the
memory; a 20 KB PNG can claim 13,000 x 13,000 pixels and decode to gigabytes.
"""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Any

from .errors import DgraphError

MAX_IMAGE_PIXELS_ENV = "DGRAPH_MAX_IMAGE_PIXELS"
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # 8192 x 8192: 768 MiB as float32 RGB


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """`path`, if it names an existing regular file; else a DgraphError saying what `what` needs."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise DgraphError(f"{what} {path}: cannot read it: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise DgraphError(f"{what} {path}: not a regular file (a folder, pipe or device); give a file")
    return path


def read_text_limited(path: str | os.PathLike, what: str, limit: int, how_to_raise: str = "") -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes (`how_to_raise` ends the message if not)."""
    path = regular_file(path, what)
    size = path.stat().st_size
    if size > limit:
        raise DgraphError(f"{what} {path}: {size:,} bytes, over the limit of {limit:,}"
                          + (f"; {how_to_raise}" if how_to_raise else ""))
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DgraphError(f"{what} {path}: not a UTF-8 text file") from None
    except OSError as error:
        raise DgraphError(f"{what} {path}: cannot read it: {error.strerror or error}") from None


def max_image_pixels() -> int:
    """The pixel limit: MAX_IMAGE_PIXELS, or the number in $DGRAPH_MAX_IMAGE_PIXELS."""
    value = os.environ.get(MAX_IMAGE_PIXELS_ENV, "")
    return int(value) if value.isdigit() else MAX_IMAGE_PIXELS


def open_image(path: str | os.PathLike, what: str = "image") -> Any:
    """A PIL image opened lazily (nothing decoded yet), refused when it claims more pixels than the limit."""
    from PIL import Image, UnidentifiedImageError

    path = regular_file(path, what)
    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():  # the limit below is ours; PIL's own warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(path)
    except Image.DecompressionBombError as error:
        raise DgraphError(f"{what} {path}: {error}; the limit is {limit:,} pixels") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise DgraphError(f"{what} {path}: cannot read it as an image: {error}") from None
    width, height = picture.size
    if width * height > limit:
        picture.close()
        raise DgraphError(f"{what} {path}: {width} x {height} is {width * height:,} pixels, over the limit of "
                          f"{limit:,}; raise it with the environment variable {MAX_IMAGE_PIXELS_ENV}=PIXELS")
    return picture
