"""Validation rules a node type declares as data, so a node manifest can carry them without the pack's code.

`refine=` (output types from literal inputs) and `check=` (a rule across inputs) of `@node` accept any
callable; a callable written as one of these rules also round-trips through the manifest
(dgraph.engine.manifest), so validating a workflow that uses the node imports neither the pack nor torch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from .types import TypeRef


@dataclass(frozen=True)
class ParamFromLiteral:
    """Refine: output `output` (a `port`) gets parameter `param` from literal input `literal`.

    Without the literal, `default` applies (None: no refinement). With a `table`, the literal's value picks
    the parameter's value from it, and a value the table lacks refines nothing.
    """

    kind: ClassVar[str] = "param-from-literal"
    output: str
    port: str
    param: str
    literal: str
    default: str | None = None
    table: dict[str, str] | None = None

    def __call__(self, literals: dict[str, Any]) -> dict[str, TypeRef]:
        value = literals.get(self.literal, self.default)
        if not isinstance(value, str):
            return {}
        if self.table is not None:
            if value not in self.table:
                return {}
            value = self.table[value]
        return {self.output: TypeRef(self.port).with_params(**{self.param: value})}


@dataclass(frozen=True)
class NetworkConditioning:
    """Check: a network is linked (as `network`, or under its older name `alias`, not both), and every
    conditioning input (input name -> conditioning kind) is one the network takes, where the network's
    type carries what it takes (its `takes` parameter, the kinds comma-separated)."""

    kind: ClassVar[str] = "network-conditioning"
    network: str
    alias: str
    conditioning: dict[str, str]
    example: str

    def __call__(self, types: dict[str, TypeRef]) -> dict[str, tuple[str, ...]]:
        problems: dict[str, tuple[str, ...]] = {}
        if self.network not in types and self.alias not in types:
            problems[self.network] = ("no network is given", f"link `{self.network}:` to a loader's output, e.g. "
                                      f"{self.example!r}", "missing-input")
        if self.network in types and self.alias in types:
            problems[self.alias] = (f"give the network once: `{self.alias}` is the older name of `{self.network}`",
                                    f"remove `{self.alias}:`")
        network = types.get(self.network) or types.get(self.alias)
        takes = dict(network.params).get("takes") if network is not None else None
        if takes is None:
            return problems
        kinds = set(takes.split(",")) if takes else set()
        for key, kind in self.conditioning.items():
            if key in types and kind not in kinds:
                problems[key] = (f"the linked network takes no {kind}",
                                 f"it takes: {takes.replace(',', ', ') or 'no conditioning'}; remove `{key}:`")
        return problems


RULES: dict[str, type] = {rule.kind: rule for rule in (ParamFromLiteral, NetworkConditioning)}


def rule_data(rule: Any) -> dict[str, Any] | None:
    """A declared rule as JSON-ready data (None for no rule); a plain callable has no data form."""
    if rule is None:
        return None
    if type(rule) not in RULES.values():
        raise TypeError(f"{rule!r} is a plain callable; declare it with a rule of dgraph.rules to put it in a manifest")
    return {"rule": rule.kind, **dataclasses.asdict(rule)}


def rule_from(data: dict[str, Any] | None) -> Any:
    """The rule that `rule_data` described."""
    if data is None:
        return None
    fields = dict(data)
    return RULES[fields.pop("rule")](**fields)
