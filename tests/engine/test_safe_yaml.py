"""The safe YAML reader: libyaml's events and the pure-Python fallback give the same data and positions,
and every bound (text size, depth, elements, expanded text, integer digits) is a located ParseError."""
from __future__ import annotations

from pathlib import Path

import pytest

from dgraph import safe_yaml
from dgraph.safe_yaml import MAX_DEPTH, MAX_EXPANDED_BYTES, ParseError, parse_text

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p for p in [*ROOT.glob("workflows/**/*.yaml"), *ROOT.glob("tests/**/*.yaml")])
BACKENDS = ["c", "python"] if safe_yaml._CEvents is not None else ["python"]


def _parse(text: str, backend: str):
    try:
        data, positions = parse_text(text, backend=backend)
        return data, positions.values, positions.keys
    except ParseError as error:
        return "error", error.message, error.line, error.column


@pytest.mark.skipif(safe_yaml._CEvents is None, reason="PyYAML without libyaml: only one backend to compare")
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_libyaml_and_python_backends_agree(path: Path):
    text = path.read_text(encoding="utf-8")
    c, python = _parse(text, "c"), _parse(text, "python")
    if c[0] == "error":  # the two parsers word syntax errors differently; they agree on where
        c, python = (c[0], *c[2:]), (python[0], *python[2:])
    assert c == python


@pytest.mark.parametrize("backend", BACKENDS)
def test_positions_of_values_and_keys(backend):
    data, positions = parse_text("dgraph: 1\nnodes:\n  a: {type: x, inputs: [1, 'two']}\n", backend=backend)
    assert data == {"dgraph": 1, "nodes": {"a": {"type": "x", "inputs": [1, "two"]}}}
    assert positions.values[("nodes", "a", "inputs", 1)] == (3, 28)
    assert positions.keys[("nodes", "a", "type")] == (3, 7)
    assert positions.values[("nodes", "a")] == (3, 6)
    assert positions.count == 13  # keys count too


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("text, message, line, column", [
    ("a: 1\na: 2\n", "duplicate key 'a'", 2, 1),
    ("a: &x [*x]\n", "alias *x refers to the collection it is in", 1, 8),
    ("a: *nowhere\n", "alias *nowhere names no anchor before it", 1, 4),
    ("a: &x 1\nb: &x 2\n", "anchor &x is defined twice", 2, 4),
    ("? [1]\n: 2\n", "a mapping key must be a plain value", 1, 3),
    ("a: !!python/name:os.system x\n", "YAML tag 'tag:yaml.org,2002:python/name:os.system' is not allowed (plain "
                                       "data only: mappings, lists, strings, numbers, true/false, null)", 1, 4),
    ("t: 2001-12-14\n", "YAML tag 'tag:yaml.org,2002:timestamp' is not allowed (plain data only: mappings, lists, "
                        "strings, numbers, true/false, null)", 1, 4),
    ("a: 1\n---\nb: 2\n", "expected a single document, found another", 2, 1),
    ("a: \x1b[2J\n", "character #x001b is not allowed in YAML text; write it as an escape (\\u001b) inside "
                     "double quotes", 1, 4),
])
def test_refused_documents_are_located(backend, text, message, line, column):
    assert _parse(text, backend) == ("error", message, line, column)


@pytest.mark.parametrize("backend", BACKENDS)
def test_yaml_11_booleans_stay_strings_and_json_numbers_are_numbers(backend):
    assert parse_text("[no, yes, on, off, true, False, ~, 0x10, 1.5e+3, .inf]", backend=backend)[0] == \
        ["no", "yes", "on", "off", True, False, None, 16, 1500.0, float("inf")]
    # YAML 1.1 wants a dot and a signed exponent; JSON (and YAML 1.2) do not.
    assert parse_text('{"a": 1e-4, "b": 1.5e3, "c": -2E2, "d": 1e}', backend=backend)[0] == \
        {"a": 1e-4, "b": 1500.0, "c": -200.0, "d": "1e"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_aliases_repeating_a_long_string_are_bounded_by_expanded_size(backend):
    # 150,000 aliases of a 1 MB string validated and then died of MemoryError when the cache digested it.
    big = "x" * (1024 * 1024)
    text = f"a: &s {big}\nb: [{', '.join(['*s'] * 200)}]\n"
    with pytest.raises(ParseError) as caught:
        parse_text(text, backend=backend)
    assert caught.value.message == (f"the document expands to more than {MAX_EXPANDED_BYTES:,} characters of text "
                                    "(aliases repeating a long string?); refusing it")
    assert (caught.value.line, caught.value.column) == (2, 253)  # the 63rd alias: 64 MiB and the keys' 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_alias_of_a_collection_is_a_copy(backend):
    data, _ = parse_text("a: &x [1, {b: 2}]\nc: *x\n", backend=backend)
    assert data == {"a": [1, {"b": 2}], "c": [1, {"b": 2}]}
    assert data["a"] is not data["c"] and data["a"][1] is not data["c"][1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_deep_nesting_is_refused_without_recursion(backend):
    with pytest.raises(ParseError) as caught:  # 500 levels used to be a RecursionError
        parse_text("a: " + "[" * 500 + "]" * 500 + "\n", backend=backend)
    assert caught.value.message == f"the document nests deeper than {MAX_DEPTH} levels; refusing it"
    assert (caught.value.line, caught.value.column) == (1, 3 + MAX_DEPTH)  # the root mapping is a level
    with pytest.raises(ParseError):  # libyaml stops at its own depth limit first
        parse_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_integer_is_a_located_error(backend):
    with pytest.raises(ParseError) as caught:
        parse_text("a: 1\nb: " + "9" * 5000 + "\n", backend=backend)
    assert caught.value.message.startswith("cannot read '999999999999999999999999999999999999999999999999999999999999"
                                           "... (5000 characters)' as int: Exceeds the limit (4300 digits)")
    assert (caught.value.line, caught.value.column) == (2, 4)


def test_text_size_limit_says_how_to_raise_it(monkeypatch):
    monkeypatch.setattr(safe_yaml, "MAX_TEXT_BYTES", 100)
    text = "a: " + "x" * 100 + "\n"
    with pytest.raises(ParseError) as caught:
        parse_text(text)
    assert caught.value.message == ("the text is 104 characters, over the limit of 100; split it, or raise the "
                                    "limit with the environment variable DGRAPH_MAX_YAML_BYTES=BYTES")
    monkeypatch.setenv("DGRAPH_MAX_YAML_BYTES", "200")
    assert parse_text(text)[0] == {"a": "x" * 100}


def test_without_libyaml_the_python_parser_is_used(monkeypatch):
    monkeypatch.setattr(safe_yaml, "_CEvents", None)
    assert isinstance(safe_yaml._events("a: 1"), safe_yaml._PyEvents)
    assert parse_text("a: [1, 2]\n")[0] == {"a": [1, 2]}


def test_empty_text_is_none():
    assert parse_text("")[0] is None
    assert parse_text("# only a comment\n")[0] is None
