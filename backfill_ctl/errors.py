"""Errors a user can cause, kept as data until the CLI prints them.

    BackfillError            every error the CLI turns into a message and an exit code
     ├── UsageError          unusable input: a missing path, a bad option value   -> exit 2
     └── SpecError           the specs are invalid; carries Diagnostics           -> exit 1

Validation never stops at the first problem: checkers return lists of `Diagnostic`,
each naming the file, the document and the JSON path it is about. Lines and columns
are filled in later by `spec.source.Sources.locate`, so the checkers need no YAML.

Output is bounded: a value is quoted with `quote` (at most `MAX_QUOTE` characters of
it), and a diagnostic's message and hint are cut at `MAX_TEXT` characters whatever
they hold, so no input can make an error message (or a GitHub annotation) huge.
A diagnostic that only follows from another (a reference to a document that failed to
load) names that cause in `cause`; such knock-on diagnostics are listed after the rest.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

Severity = Literal["error", "warning", "notice"]


class Located(Protocol):
    """Where a document was read from (spec.model.Origin)."""

    @property
    def file(self) -> str: ...

    @property
    def doc(self) -> int: ...


PathPart = str | int

MAX_QUOTE = 200  # characters of a value a message quotes
MAX_TEXT = 1000  # characters of a message or hint


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, or its first `limit` characters and how many more were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def quote(value: object, limit: int = MAX_QUOTE) -> str:
    """`repr(value)` of at most about `limit` characters (a huge value is not rendered whole)."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value) - limit} more characters)"
    if isinstance(value, list | dict | tuple | set) and len(value) > limit:
        kind = type(value).__name__
        return f"<a {kind} of {len(value)} items>"
    return clip(_bounded_repr(value), limit)


def _bounded_repr(value: object) -> str:
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxstring, r.maxother = 3, 8, 8, MAX_QUOTE, MAX_QUOTE
    return r.repr(value)


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """`did you mean 'groups'?` for the closest choice, or None if none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def json_path(path: Sequence[PathPart]) -> str:
    """`("spec", "dates", 0)` -> `$.spec.dates[0]`."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in the specs, located by file, document and JSON path."""

    message: str
    file: str = ""
    doc: int = 0
    path: tuple[PathPart, ...] = ()
    hint: str | None = None
    severity: Severity = "error"
    code: str = "invalid"
    line: int | None = None  # 1-based, filled in by Sources.locate
    col: int | None = None
    # What a finding of `check` is about (DESIGN §5.3).
    backfill: str | None = None
    nodes: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()  # a sample when there are many; the message counts all
    cause: str | None = None  # file:line of the broken document a knock-on error follows from

    def __post_init__(self) -> None:
        if len(self.message) > MAX_TEXT:
            object.__setattr__(self, "message", clip(self.message))
        if self.hint is not None and len(self.hint) > MAX_TEXT:
            object.__setattr__(self, "hint", clip(self.hint))

    @classmethod
    def in_document(cls, origin: Located, message: str, **fields: Any) -> Diagnostic:
        """A diagnostic about the document `origin` (a spec object's Origin) was read from."""
        return cls(message, file=origin.file, doc=origin.doc, **fields)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def at(self, line: int | None, col: int | None) -> Diagnostic:
        return replace(self, line=line, col=col)

    @property
    def where(self) -> str:
        """file:line:col, as far as it is known."""
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return where

    def format(self, *, code: bool = False) -> str:
        """`file:line:col: severity: $.path: message` (with `[code]` after the severity)."""
        head = f"{self.where}: {self.severity}{f' [{self.code}]' if code else ''}: "
        if self.path:
            head += f"{json_path(self.path)}: "
        text = head + self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "file": self.file,
            "line": self.line,
            "column": self.col,
            "path": json_path(self.path),
            "message": self.message,
            "hint": self.hint,
            "backfill": self.backfill,
            "nodes": list(self.nodes),
            "instances": list(self.instances),
        }


class BackfillError(Exception):
    """Root of every error a user can cause."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(BackfillError):
    """The input cannot be used at all (missing path, bad option value)."""

    exit_code = 2


class SpecError(BackfillError):
    """The specs are invalid; `diagnostics` says where and why."""

    exit_code = 1

    def __init__(self, diagnostics: Iterable[Diagnostic], message: str | None = None) -> None:
        self.diagnostics = list(diagnostics)
        errors = sum(1 for d in self.diagnostics if d.is_error)
        super().__init__(message or f"{errors} error(s) in the specs")
