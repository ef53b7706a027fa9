"""Plain-value nodes: arithmetic and text."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dgraph.node import node
from dgraph.types import Text


@node("math.add", description="Add two numbers.")
def add(a: float, b: float = 0.0) -> float:
    return a + b


@node("math.multiply", description="Multiply two numbers.")
def multiply(a: float, b: float = 1.0) -> float:
    return a * b


@node("math.int", description="Round a number to the nearest integer.")
def to_int(value: float) -> int:
    return int(round(value))


@node("text.join", description="Join texts with a separator.", output="text")
def join(a: Text, b: Text = Text(""), separator: str = " ") -> Text:
    return Text(separator.join(part for part in (a, b) if part))


@node("text.repeat", description="Repeat a text n times.", output="texts")
def repeat(text: Text, count: Annotated[int, Field(ge=1, le=4096)] = 1) -> list[str]:
    return [str(text)] * count
