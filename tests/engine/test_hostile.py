"""Hostile inputs end cleanly: each case below runs the real command line (in-process) on files the test
generates, and must exit with its pinned code (0, 1 or 2) and message, print no traceback and no raw
control character, stay under a memory bound, and leave nothing outside its output folder."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Callable

import pytest

from dgraph.cli import main

ADD = "  a: {type: math.add, inputs: {a: 1.0, b: 2.0}}\n"
SIMPLE = "dgraph: 1\nnodes:\n" + ADD + "outputs:\n  total: '@a.value'\n"
MEMORY_BOUND = 256 * 1024 * 1024  # Python allocations of one case, traced
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _write(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text, encoding="utf-8")
    return name


def _png(tmp: Path, name: str, texts: dict[str, str | bytes], compressed: bool = False, size=(4, 4)) -> str:
    """A small valid PNG with the given text chunks (zTXt when `compressed`); bytes are written as they are."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    width, height = size
    # The pixel data of a large claimed size is left short: the size is refused before anything decodes.
    raw = b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height)) if width * height <= 4096 else b"\x00"
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))]
    for key, value in texts.items():
        data = value if isinstance(value, bytes) else value.encode("latin-1")
        if compressed:
            parts.append(chunk(b"zTXt", key.encode() + b"\x00\x00" + zlib.compress(data)))
        else:
            parts.append(chunk(b"tEXt", key.encode() + b"\x00" + data))
    parts += [chunk(b"IDAT", zlib.compress(raw)), chunk(b"IEND", b"")]
    (tmp / name).write_bytes(b"".join(parts))
    return name


def _big_ztxt_png(tmp: Path, name: str, megabytes: int) -> str:
    """A PNG whose zTXt workflow chunk inflates to `megabytes` MB (compressed in a stream: ~100 KB on disk)."""
    deflate = zlib.compressobj(9)
    block = b" " * (1 << 20)
    data = b"".join(deflate.compress(block) for _ in range(megabytes)) + deflate.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"\x00" + b"\x80" * 12
    (tmp / name).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 1, 8, 2, 0, 0, 0))
                             + chunk(b"zTXt", b"dgraph:workflow\x00\x00" + data)
                             + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return name


def _alias_scalar_bomb(tmp: Path) -> list[str]:
    # The attack was 150,000 aliases of a 1 MB string in 1.6 MB; this keeps the ratio at a tenth of the size.
    text = f"dgraph: 1\nx: &s {'x' * 100_000}\nnodes:\n{ADD}  b: {{type: text.join, inputs: {{parts: [{', '.join(['*s'] * 1000)}]}}}}\n"
    return ["run", _write(tmp, "w.yaml", text), "-o", "out"]


def _billion_laughs(tmp: Path) -> list[str]:
    lines = ["dgraph: 1", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return ["validate", _write(tmp, "w.yaml", "\n".join(lines) + "\n")]


def _fifo(tmp: Path) -> list[str]:
    os.mkfifo(tmp / "pipe.png")
    text = f"dgraph: 1\nnodes:\n  i: {{type: image.load, inputs: {{path: {tmp / 'pipe.png'}}}}}\noutputs:\n  i: '@i.image'\n"
    return ["run", _write(tmp, "w.yaml", text), "-o", "out"]


def _huge_pixels(tmp: Path) -> list[str]:
    _png(tmp, "big.png", {}, size=(13000, 13000))
    text = "dgraph: 1\nnodes:\n  i: {type: image.load, inputs: {path: big.png}}\noutputs:\n  i: '@i.image'\n"
    return ["run", _write(tmp, "w.yaml", text), "-o", "out"]


RECIPE = """\
kind: autoencoder
output: {output}
data: {{dataset: digits, size: 8}}
model: {{in_channels: 1, out_channels: 1, block_out_channels: [4], norm_num_groups: 4, latent_channels: 2,
        down_block_types: [DownEncoderBlock2D], up_block_types: [UpDecoderBlock2D], sample_size: 8}}
train: {{steps: 1, batch_size: 2}}
"""


def _recipe_into_model_folder(tmp: Path) -> list[str]:
    (tmp / "out" / "model").mkdir(parents=True)
    (tmp / "out" / "model" / "config.json").write_text("{}")
    return ["train", "-q", _write(tmp, "r.yaml", RECIPE.format(output="out/model"))]


# name -> (build the files and return the argv, exit code, a line the output must hold)
CASES: dict[str, tuple[Callable[[Path], list[str]], int, str]] = {
    "alias-scalar-bomb": (_alias_scalar_bomb, 1, "expands to more than 67,108,864 characters of text"),
    "billion-laughs": (_billion_laughs, 1, "expands to more than 1,000,000 elements"),
    "nesting-500": (lambda t: ["validate", _write(t, "w.yaml", "dgraph: 1\nx: " + "[" * 500 + "]" * 500 + "\n")],
                    1, "w.yaml:2:67: error[yaml-syntax]: the document nests deeper than 64 levels; refusing it"),
    "nesting-json-100k": (lambda t: ["validate", _write(t, "w.json", '{"dgraph": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")],
                          1, "error[yaml-syntax]"),
    "integer-5000-digits": (lambda t: ["validate", _write(t, "w.yaml", SIMPLE.replace("1.0", "9" * 5000, 1))],
                            1, "w.yaml:3:35: error[yaml-syntax]: cannot read '99999"),
    "text-too-large": (lambda t: ["validate", _write(t, "w.yaml", SIMPLE + "#" * (17 << 20) + "\n")],
                       1, "w.yaml:1:1: error[unreadable]: workflow file w.yaml: 17,825,887 bytes, over the limit of 16,777,216; "
                          "split it, or raise the limit with the environment variable DGRAPH_MAX_YAML_BYTES=BYTES"),
    "control-characters-in-file": (lambda t: ["validate", _write(t, "w.yaml", SIMPLE + "x: \x1b[2J\n")],
                                   1, "w.yaml:6:4: error[yaml-syntax]: character #x001b is not allowed"),
    "escapes-in-output-name": (lambda t: ["run", _write(t, "w.yaml", SIMPLE.replace("total", '"t\\e]0;pwned\\a\\e[2J\\u202e"')),
                                          "-o", "out", "-q"], 0, "t\\x1b]0;pwned\\x07\\x1b[2J\\u202e: 3.0"),
    "escapes-in-viz": (lambda t: ["viz", _write(t, "w.yaml", SIMPLE.replace("total", '"t\\e[2J\\"]"'))],
                       0, '[/"t\\x1b[2J#quot;]"/]'),
    "type-name-8mb": (lambda t: ["validate", _write(t, "w.yaml", SIMPLE.replace("math.add", "m" * (8 << 20)))],
                      1, "unknown node type '" + "m" * 59 + "...(8,388,610 characters)\n"),
    "empty-file": (lambda t: ["validate", _write(t, "w.yaml", "")], 1, "error[not-a-mapping]"),
    "description-not-text": (lambda t: ["validate", _write(t, "w.yaml", SIMPLE + "description: [1, 2]\n")],
                             1, "w.yaml:6:14: error[invalid-value]"),
    "descriptions-not-text-run": (lambda t: ["run", _write(t, "w.yaml", "dgraph: 1\nnodes:\n  a: {type: math.add, "
                                                          "description: [1], version: true, device: 5, inputs: {a: 1.0}}\n"
                                                          "inputs:\n  x: {type: int, description: 5, default: 1}\n"), "-o", "out"],
                                  1, "w.yaml:3:36: error[invalid-value]: node 'a': `description` must be a string"),
    "format-version-true": (lambda t: ["validate", _write(t, "w.yaml", SIMPLE.replace("dgraph: 1", "dgraph: true"))],
                            1, "w.yaml:1:9: error[format-version]"),
    "seed-declared-str": (lambda t: ["validate", _write(t, "w.yaml", SIMPLE + "inputs:\n  seed: {type: str}\n")],
                          1, "w.yaml:7:16: error[bad-type-name]: graph input 'seed' is the run's seed: its type is int, not 'str'"),
    "shape-of-bool-float-str": (lambda t: ["validate", _write(t, "w.yaml", "dgraph: 1\nnodes:\n  n: {type: tensor.noise, "
                                                                       "inputs: {shape: [true, 2.0, '3']}}\n")],
                                1, "w.yaml:3:43: error[invalid-value]: node 'n', input 'shape': Input should be a valid integer (got True)"),
    "device-bogus": (lambda t: ["run", _write(t, "w.yaml", SIMPLE), "--device", "bogus", "-o", "out"],
                     2, "--device 'bogus' is not a device"),
    "prompt-file-dev-zero": (lambda t: ["run", _write(t, "w.yaml", SIMPLE), "--prompt-file", "/dev/zero", "-o", "out"],
                             1, "--prompt-file /dev/zero: not a regular file (a folder, pipe or device); give a file"),
    "set-alias-bomb": (lambda t: ["run", _write(t, "w.yaml", SIMPLE),
                                  "--set", "a.a=[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
                                           "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], "
                                           "&e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e], "
                                           "[*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]]", "-o", "out"],
                       1, "error[invalid-value]"),
    "png-not-a-png": (lambda t: ["run", "--from-image", _write(t, "x.png", "not a png"), "-o", "out"],
                      1, "--from-image x.png: cannot read it as an image"),
    "png-missing": (lambda t: ["run", "--from-image", "nowhere.png", "-o", "out"], 1,
                    "--from-image nowhere.png: cannot read it: No such file or directory"),
    "png-no-workflow": (lambda t: ["run", "--from-image", _png(t, "x.png", {}), "-o", "out"],
                        1, "x.png: this PNG carries no dgraph workflow"),
    "png-workflow-list": (lambda t: ["run", "--from-image", _png(t, "x.png", {"dgraph:workflow": "[1, 2]"}), "-o", "out"],
                          1, "x.png#workflow:1:1: error[not-a-mapping]"),
    "png-workflow-null": (lambda t: ["run", "--from-image", _png(t, "x.png", {"dgraph:workflow": "null"}), "-o", "out"],
                          1, "x.png#workflow:1:1: error[not-a-mapping]"),
    "png-workflow-number": (lambda t: ["run", "--from-image", _png(t, "x.png", {"dgraph:workflow": "3"}), "-o", "out"],
                            1, "x.png#workflow:1:1: error[not-a-mapping]"),
    "png-workflow-json-string": (lambda t: ["run", "--from-image", _png(t, "x.png", {"dgraph:workflow": '"hf://a/b/w.yaml"'}),
                                            "-o", "out"], 1, "x.png#workflow:1:1: error[not-a-mapping]"),
    "png-workflow-bad-json": (lambda t: ["run", "--from-image", _png(t, "x.png", {"dgraph:workflow": '{"dgraph": 1,'}),
                                         "-o", "out"], 1, "x.png#workflow:2:1: error[yaml-syntax]"),
    "png-workflow-duplicate-keys": (lambda t: ["run", "--from-image", _png(t, "x.png", {"dgraph:workflow": json.dumps(
        {"dgraph": 1, "nodes": {"a": {"type": "math.add", "inputs": {"a": 1.0}}}})[:-1] + ', "nodes": {}}'}), "-o", "out"],
        1, "x.png#workflow:1:75: error[yaml-syntax]: duplicate key 'nodes'"),
    "png-inputs-not-mapping": (lambda t: ["run", "--from-image", _png(t, "x.png", {
        "dgraph:workflow": json.dumps({"dgraph": 1, "nodes": {"a": {"type": "math.add", "inputs": {"a": 1.0}}}}),
        "dgraph:inputs": "[1, 2]"}), "-o", "out"], 1, "x.png: its dgraph:inputs is not a mapping of graph inputs"),
    "png-inputs-bad-json": (lambda t: ["run", "--from-image", _png(t, "x.png", {
        "dgraph:workflow": json.dumps({"dgraph": 1, "nodes": {"a": {"type": "math.add", "inputs": {"a": 1.0}}}}),
        "dgraph:inputs": "{"}), "-o", "out"], 1, "x.png#inputs:"),
    "png-workflow-100mb": (lambda t: ["run", "--from-image", _big_ztxt_png(t, "x.png", 100), "-o", "out"],
                           1, "--from-image x.png: cannot read it as an image: Decompressed data too large"),
    "png-workflow-latin1-controls": (lambda t: ["run", "--from-image", _png(t, "x.png", {"dgraph:workflow": "\x1b[2J"}),
                                                "-o", "out"], 1, "character #x001b is not allowed"),
    "recipe-into-a-model-folder": (_recipe_into_model_folder, 1, "/out/model already holds files a recipe did not "
                                                                  "write; give a new or empty folder"),
    "recipe-escaping-upwards": (lambda t: ["train", "-q", _write(t, "r.yaml", RECIPE.format(output="../../../x"))],
                                1, "a recipe writes only inside the folder it is run from"),
    "image-load-fifo": (_fifo, 1, "pipe.png: not a regular file (a folder, pipe or device); give a file"),
    "image-load-13000-squared": (_huge_pixels, 1, "image big.png: 13000 x 13000 is 169,000,000 pixels, over the limit of "
                                                "67,108,864; raise it with the environment variable DGRAPH_MAX_IMAGE_PIXELS=PIXELS"),
}


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """Run a sound workflow once, so that imports are not traced (and not timed) as part of the first case."""
    folder = tmp_path_factory.mktemp("warm")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", _write(folder, "w.yaml", SIMPLE).join([str(folder) + "/", ""]), "-q",
                     "-o", str(folder / "out")]) == 0
        from PIL import PngImagePlugin  # noqa: F401  (imported by the --from-image cases)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_ends_cleanly(name: str, tmp_path: Path, monkeypatch, warm):
    build, code, expected = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = build(work)
    before = {p for p in tmp_path.rglob("*")}
    out, err = io.StringIO(), io.StringIO()
    tracemalloc.start()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            got = main(argv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = out.getvalue() + err.getvalue()
    assert (got, expected in text) == (code, True), text[-2000:]
    assert "Traceback" not in text and "internal error" not in text
    assert _CONTROL.search(text) is None, repr(text[-500:])
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB traced"
    after = {p for p in tmp_path.rglob("*")}
    assert {p for p in after - before if work / "out" not in (p, *p.parents)} == set()


def test_what_validation_misses_is_still_a_workflow_error():
    from dgraph.engine.problems import WorkflowError
    from dgraph.graph import Graph

    graph = Graph.from_text(SIMPLE, "w.yaml")
    assert graph.problems == []
    graph._data["nodes"]["a"]["description"] = 5  # as if a check were missing: the file model still refuses it
    with pytest.raises(WorkflowError) as caught:
        graph.to_dict()
    assert [str(p) for p in caught.value.problems] == [
        "w.yaml:3:3: error[invalid-value]: nodes.a.description: Input should be a valid string"]
