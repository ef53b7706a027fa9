"""Print what README.md's Quickstart promises, for .ci/run: its commands, one a line, then the file the
first one makes (`commands`), or check that file (`check PATH`).

CI runs the very strings README shows, so README and CI cannot drift apart.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart(text: str) -> tuple[list[str], str]:
    """The commands in the Quickstart's first code block, and the output file the text after it names."""
    section = text.split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```[a-z]*\n(.*?)```", section, re.S)
    if block is None:
        raise SystemExit("README.md: the Quickstart has no code block")
    commands = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    made = re.search(r"makes `([^`]+\.png)`", section)
    if made is None:
        raise SystemExit("README.md: the Quickstart does not say which file its first command makes")
    return commands, made.group(1)


def check_png(path: str) -> None:
    """The main job's picture: a PNG that remembers the workflow and the seed that made it."""
    import json

    from PIL import Image

    with Image.open(path) as picture:
        if picture.format != "PNG" or picture.size != (32, 32):
            raise SystemExit(f"{path}: expected a 32x32 PNG, got {picture.format} {picture.size}")
        inputs = json.loads(picture.text["dgraph:inputs"])
        json.loads(picture.text["dgraph:workflow"])
    print(f"{path}: 32x32 PNG, made with seed {inputs['seed']}")


if __name__ == "__main__":
    commands, made = quickstart(README.read_text(encoding="utf-8"))
    if sys.argv[1:2] == ["check"]:
        check_png(sys.argv[2] if len(sys.argv) > 2 else made)
    else:
        print("\n".join(commands + [made]))
