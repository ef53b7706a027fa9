"""Validation problems and the one error that carries them all."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DgraphError
from ..printable import clip


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow: a stable code, where it is, what is wrong, and what to do."""

    code: str
    message: str
    hint: str = ""
    file: str = "<workflow>"
    line: int = 1
    column: int = 1

    def __post_init__(self) -> None:  # a problem may quote a hostile 8 MB name: quote its start only
        object.__setattr__(self, "message", clip(self.message))
        object.__setattr__(self, "hint", clip(self.hint))

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: error[{self.code}]: {self.message}"
        return text + (f"\n    hint: {self.hint}" if self.hint else "")


class WorkflowError(DgraphError):
    """A workflow is invalid; `problems` lists everything found, in file order."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.code))
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in workflow"
        super().__init__(head + ":\n" + "\n".join(str(p) for p in self.problems))

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]


# The stable codes, with the one-line meaning `dgraph validate --codes` prints.
CODES = {
    "yaml-syntax": "the file is not valid YAML/JSON",
    "not-a-mapping": "the file (or a section of it) is not a mapping",
    "format-version": "the `dgraph:` format version is missing or not one this dgraph reads",
    "unknown-key": "a key the format does not have",
    "missing-key": "a key the format requires (`nodes`, a node's `type`) is absent",
    "bad-name": "a node or input name that is not an identifier",
    "bad-type-name": "a graph input's `type` is not a known port type",
    "invalid-default": "a graph input's default does not fit its type",
    "unknown-node-type": "no installed node type has this name",
    "version-mismatch": "the file asks for a node version other than the installed one",
    "bad-device": "a device string torch does not understand",
    "unknown-input": "a node input its type does not have",
    "missing-input": "a required input is not given",
    "invalid-value": "a literal value fails the input's validation",
    "literal-not-allowed": "an object input (model, latent...) given a literal instead of a link",
    "bad-link": "a string starting with @ or $ that is not a well-formed reference",
    "unknown-node": "a link to a node that does not exist",
    "unknown-output": "a link to an output the node does not have",
    "unknown-graph-input": "a $reference to a graph input that is not declared",
    "type-mismatch": "an edge whose output type does not fit the input type",
    "input-not-taken": "an input the linked model does not take (e.g. class labels for a text-conditioned network)",
    "cycle": "nodes that depend on each other in a loop",
    "bad-output": "a graph output that does not name a node output",
}
