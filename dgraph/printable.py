"""Text that is safe to show: control characters escaped, and huge words shortened.

Names, paths and messages that end up on a terminal or in a text file can come from an untrusted
workflow file. A raw ESC clears the screen or retitles the window, a CR overwrites the line, a
bidirectional override reorders what the reader sees; an 8 MB node type name floods the terminal.
"""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MAX_WORD = 200


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character (but tab and newline) written as a visible escape (\\x1b)."""
    return _CONTROL.sub(_escape, text)


def clip(text: str, limit: int = MAX_WORD) -> str:
    """`text` with each run of more than `limit` non-space characters shortened to its start and length."""
    if len(text) <= limit:
        return text
    return re.sub(rf"\S{{{limit + 1},}}", lambda m: m.group()[:60] + f"...({len(m.group()):,} characters)", text)
