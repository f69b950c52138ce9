"""Label selectors of `-l`, parsed and matched as kubectl does.

A selector is a comma-separated list of requirements, all of which must hold:

- `key=value`, `key==value`: the label is set to value;
- `key!=value`: the label is not set, or set to another value;
- `key in (a,b)`: the label is set to one of the values;
- `key notin (a,b)`: the label is not set, or set to none of the values;
- `key`: the label is set; `!key`: it is not.

Commas inside parentheses belong to the set. `-l` repeated adds requirements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]

HINT = (
    "write key=value, key!=value, 'key in (a,b)', 'key notin (a,b)', key or !key; "
    "separate requirements with commas, or repeat -l"
)
_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$")
_EQUALS = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*({_VALUE})$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class Requirement:
    """One requirement on one label."""

    key: str
    op: Operator
    values: tuple[str, ...] = ()

    def holds(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # != and notin


Selector = tuple[Requirement, ...]


def split(text: str) -> list[str]:
    """The requirements of one `-l`: split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for n, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:n])
            start = n + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _error(text: str, term: str, why: str = "is not a label requirement") -> UsageError:
    return UsageError(f"-l {text!r}: {term!r} {why}", hint=HINT)


def _requirement(text: str, term: str) -> Requirement:
    if found := _SET.match(term):
        key, op, inner = found.groups()
        values = tuple(v.strip() for v in inner.split(","))
        if not all(_VALUE_RE.match(v) for v in values) or values == ("",):
            raise _error(text, term, "has a set that is not a list of values")
        return Requirement(key, "in" if op == "in" else "notin", values)
    if found := _EQUALS.match(term):
        key, op, value = found.groups()
        return Requirement(key, "!=" if op == "!=" else "=", (value,))
    if found := _EXISTS.match(term):
        bang, key = found.groups()
        return Requirement(key, "!" if bang else "exists")
    raise _error(text, term)


def parse(texts: Iterable[str]) -> Selector:
    """Every requirement of every `-l`; a malformed one is a UsageError (exit 2)."""
    out: list[Requirement] = []
    for text in texts:
        if text.count("(") != text.count(")"):
            raise _error(text, text, "has unbalanced parentheses")
        out += [_requirement(text, term) for term in split(text)]
    return tuple(out)


def matches(labels: Mapping[str, str], selector: Selector) -> bool:
    return all(r.holds(labels) for r in selector)
