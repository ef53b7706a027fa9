"""Reading untrusted YAML (or JSON) text into plain data, with the line and column of every part.

Below both the engine (workflow files) and the library (training recipes), so neither reaches into the
other for it. The text is turned into parser events by libyaml's C parser when PyYAML was built with it
(about ten times faster than the pure-Python parser, same events and marks) and the plain data is built
from those events here, one loop without recursion, so that every rule holds whatever the parser:

- plain data only: mappings, sequences, strings, numbers, booleans, null; any other tag is refused and
  nothing is ever constructed from a tag (no python/* objects, timestamps, sets, binary);
- YAML 1.2 booleans (`true`/`false`): `no`, `on`, `yes`, `off` stay strings; JSON's numbers (`1e-4`);
- duplicate mapping keys, collection keys and recursive aliases are errors;
- bounds on the text size, the nesting depth, the number of elements and the bytes of text the
  document expands to through aliases ("billion laughs", or 150,000 aliases of one 1 MB string).
"""
from __future__ import annotations

import os
import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

Path_ = tuple  # a path into the document: ("nodes", "tok", "inputs", "text")

# A text size limit keeps a hostile or mistaken file from costing minutes; the environment raises it.
MAX_TEXT_ENV = "DGRAPH_MAX_YAML_BYTES"
MAX_TEXT_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64  # workflow files nest four levels; deep nesting is only ever an attack on the stack
MAX_ELEMENTS = 1_000_000  # mappings, sequences and scalars, counted again at each alias
MAX_EXPANDED_BYTES = 64 * 1024 * 1024  # characters of scalar text, counted again at each alias


class ParseError(Exception):
    """The text is not plain YAML data within the bounds; `line` and `column` are 1-based."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


class Positions:
    """1-based (line, column) of every value, and of every mapping key, in a parsed document."""

    def __init__(self) -> None:
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.count = 0

    def of(self, path: Path_, key: bool = False) -> tuple[int, int]:
        """Where `path` is (its key when `key`), falling back to the nearest enclosing element."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
        return (1, 1)


# ---------------------------------------------------------------------------------------------------
# Tags: how a plain scalar is read.
# ---------------------------------------------------------------------------------------------------
class _Resolver(Resolver):
    """YAML 1.1's implicit tags, without its surprising booleans (`no`, `on`): JSON's and YAML 1.2's."""


_Resolver.yaml_implicit_resolvers = {
    key: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                list("tTfF"))
# YAML 1.1 reads 1e-4 and 1.5e3 as strings (it wants a dot and a signed exponent); JSON reads numbers.
_Resolver.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                list("-+0123456789."))

_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ = _TAG + "str", _TAG + "map", _TAG + "seq"
_SCALAR_TAGS = {_TAG + t for t in ("null", "bool", "int", "float", "str")}
_RESOLVER = _Resolver()
_CONSTRUCTOR = SafeConstructor()


def _scalar(event: yaml.ScalarEvent) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(ScalarNode, event.value, event.implicit)
    if tag == _STR:
        return event.value
    if tag not in _SCALAR_TAGS:
        raise _refused(tag, event)
    node = ScalarNode(tag, event.value, event.start_mark, event.end_mark)
    try:
        return _CONSTRUCTOR.construct_object(node)
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise ParseError(f"cannot read {_short(event.value)!r} as {tag.rsplit(':', 1)[-1]}: {error}",
                         *_at(event.start_mark)) from None
    except yaml.YAMLError as error:
        raise ParseError(str(getattr(error, "problem", None) or error), *_at(event.start_mark)) from None


def _refused(tag: str, event: Any) -> ParseError:
    return ParseError(f"YAML tag {_short(tag)!r} is not allowed (plain data only: mappings, lists, strings, "
                      "numbers, true/false, null)", *_at(event.start_mark))


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _at(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


# ---------------------------------------------------------------------------------------------------
# Events: from libyaml when PyYAML has it, else from PyYAML's own parser.
# ---------------------------------------------------------------------------------------------------
class _PyEvents(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser as _CEvents
else:  # pragma: no cover - PyYAML built without libyaml
    _CEvents: Any = None


def _events(text: str, backend: str | None = None) -> Any:
    """An event source over `text`: "c" (libyaml), "python", or the fastest available."""
    if backend == "python" or (backend is None and _CEvents is None):
        return _PyEvents(text)
    if _CEvents is None:
        raise RuntimeError("PyYAML was built without libyaml")
    return _CEvents(text)


def max_text_bytes() -> int:
    """The text size limit: MAX_TEXT_BYTES, or the number of bytes in $DGRAPH_MAX_YAML_BYTES."""
    value = os.environ.get(MAX_TEXT_ENV, "")
    return int(value) if value.isdigit() else MAX_TEXT_BYTES


# ---------------------------------------------------------------------------------------------------
# Building plain data from events.
# ---------------------------------------------------------------------------------------------------
class _Frame:
    """A mapping or sequence being filled; `key` is the pending mapping key (or _NO_KEY)."""

    __slots__ = ("value", "path", "anchor", "key", "elements", "chars", "is_map")

    def __init__(self, value: Any, path: Path_, anchor: str | None, elements: int, chars: int) -> None:
        self.value, self.path, self.anchor = value, path, anchor
        self.is_map = isinstance(value, dict)
        self.key: Any = _NO_KEY
        self.elements, self.chars = elements, chars  # the counters when it opened (for its anchor's size)


_NO_KEY = object()


def parse_text(text: str, filename: str = "<string>", *, backend: str | None = None) -> tuple[Any, Positions]:
    """Parse YAML (or JSON) text into plain data and the positions of its parts; raise ParseError.

    `filename` is for the caller's messages; `backend` ("c" or "python") is for tests and benchmarks.
    """
    limit = max_text_bytes()
    if len(text) > limit:  # characters: a cheap lower bound of the bytes, and what the parser pays for
        raise ParseError(f"the text is {len(text):,} characters, over the limit of {limit:,}; split it, or raise "
                         f"the limit with the environment variable {MAX_TEXT_ENV}=BYTES", 1, 1)
    positions = Positions()
    events = None
    try:
        events = _events(text, backend)  # the pure-Python reader checks the characters here
        return _build(events, positions), positions
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = error.problem or str(error)
        if error.context:
            message = f"{error.context}: {message}"
        raise ParseError(message, *_at(mark)) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        code = error.character if isinstance(error.character, int) else ord(error.character)
        raise ParseError(f"character #x{code:04x} is not allowed in YAML text; write it as an escape "
                         f"(\\u{code:04x}) inside double quotes", line, column) from None
    except yaml.YAMLError as error:
        raise ParseError(str(error), 1, 1) from None
    finally:
        if events is not None:
            events.dispose()


def _build(events: Any, positions: Positions) -> Any:
    get = events.get_event
    get()  # StreamStart
    if isinstance(events.peek_event(), yaml.StreamEndEvent):
        return None
    get()  # DocumentStart
    values, keys = positions.values, positions.keys
    anchors: dict[str, tuple[Any, int, int]] = {}  # anchor -> (value, elements, chars)
    open_anchors: set[str] = set()
    stack: list[_Frame] = []
    elements = chars = 0
    root: Any = None
    while True:
        event = get()
        kind = type(event)
        if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = stack.pop()
            value = frame.value
            if frame.anchor is not None:
                anchors[frame.anchor] = (value, elements - frame.elements, chars - frame.chars)
                open_anchors.discard(frame.anchor)
        else:
            parent = stack[-1] if stack else None
            as_key = parent is not None and parent.is_map and parent.key is _NO_KEY
            if parent is None:
                path: Path_ = ()
            elif parent.is_map:
                path = parent.path + ("<key>",) if as_key else parent.path + (parent.key,)
            else:
                path = parent.path + (len(parent.value),)
            mark = event.start_mark
            if kind is yaml.AliasEvent:
                if event.anchor in open_anchors:
                    raise ParseError(f"alias *{event.anchor} refers to the collection it is in", *_at(mark))
                if event.anchor not in anchors:
                    raise ParseError(f"alias *{_short(event.anchor)} names no anchor before it", *_at(mark))
                value, n, c = anchors[event.anchor]
                elements += n
                chars += c
                _check_size(elements, chars, mark)
                if isinstance(value, (dict, list)):
                    if as_key:
                        raise ParseError("a mapping key must be a plain value", *_at(mark))
                    value = _copy(value)
            elif kind is yaml.ScalarEvent:
                elements += 1
                chars += len(event.value)
                _check_size(elements, chars, mark)
                value = _scalar(event)
                if event.anchor is not None:
                    _new_anchor(event.anchor, anchors, open_anchors, mark)
                    anchors[event.anchor] = (value, 1, len(event.value))
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                is_map = kind is yaml.MappingStartEvent
                if as_key:
                    raise ParseError("a mapping key must be a plain value", *_at(mark))
                if event.tag not in (None, "!", _MAP if is_map else _SEQ):
                    raise _refused(event.tag, event)
                if len(stack) >= MAX_DEPTH:
                    raise ParseError(f"the document nests deeper than {MAX_DEPTH} levels; refusing it", *_at(mark))
                elements += 1
                _check_size(elements, chars, mark)
                if event.anchor is not None:
                    _new_anchor(event.anchor, anchors, open_anchors, mark)
                    open_anchors.add(event.anchor)
                if not as_key:
                    values[path] = (mark.line + 1, mark.column + 1)
                stack.append(_Frame({} if is_map else [], path, event.anchor, elements - 1, chars))
                continue
            else:  # DocumentEnd: the root is complete
                if not isinstance(events.peek_event(), yaml.StreamEndEvent):
                    extra = events.peek_event()
                    raise ParseError("expected a single document, found another", *_at(extra.start_mark))
                positions.count = elements
                return root
            if not as_key:
                values[path] = (mark.line + 1, mark.column + 1)
            if as_key:
                if value in parent.value:
                    raise ParseError(f"duplicate key {_short(str(value))!r}", *_at(mark))
                parent.key = value
                keys[parent.path + (value,)] = (mark.line + 1, mark.column + 1)
                continue
        if not stack:
            root = value
            continue
        parent = stack[-1]
        if parent.is_map:
            parent.value[parent.key] = value
            parent.key = _NO_KEY
        else:
            parent.value.append(value)


def _copy(value: Any) -> Any:
    """A copy of plain data (recursion is bounded: the value nests at most MAX_DEPTH levels)."""
    if type(value) is list:
        return [_copy(item) if type(item) in (list, dict) else item for item in value]
    return {key: _copy(item) if type(item) in (list, dict) else item for key, item in value.items()}


def _new_anchor(anchor: str, anchors: dict, open_anchors: set, mark: Any) -> None:
    if anchor in anchors or anchor in open_anchors:
        raise ParseError(f"anchor &{_short(anchor)} is defined twice", *_at(mark))


def _check_size(elements: int, chars: int, mark: Any) -> None:
    if elements > MAX_ELEMENTS:
        raise ParseError(f"the document expands to more than {MAX_ELEMENTS:,} elements (aliases?); refusing it",
                         *_at(mark))
    if chars > MAX_EXPANDED_BYTES:
        raise ParseError(f"the document expands to more than {MAX_EXPANDED_BYTES:,} characters of text "
                         "(aliases repeating a long string?); refusing it", *_at(mark))
