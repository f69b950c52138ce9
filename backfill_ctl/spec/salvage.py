"""What is left of a document with schema errors once the fields they lie in are removed.

`validate` reports every error of every file in one run. A document that is not built
because of a schema error would hide its other mistakes (a reversed range, an unknown
node, a bad cron expression) until that error is fixed. So each field a schema error lies
in is removed, the builder then taking the schema's default for it, and what is left is
checked again: removing a required field is itself an error, which lies in the field that
holds it, so removal climbs until the document is valid, or until nothing optional is
left (the document is then not built, as one whose kind, name or spec is wrong).

A few required fields that no check of another field reads get a stand-in instead
(`STAND_INS`: a Backfill's selection and dates, a node's schedule and command), so that
a mistake in one of them (a date written 2024-3-1, a number in an argv list, a misspelt
selection method) does not hide the rest of its document either.

Nothing is made up: the fields removed or stood in for are kept beside the document
(`Specs.removed`), and a check that would read one of them is skipped (`spec.loader`,
`core.semantics`). The errors themselves stand: a document with errors is never planned.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from backfill_ctl.spec.schema import document_errors

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from backfill_ctl.errors import Diagnostic, PathPart

    Field = tuple[PathPart, ...]

_ROUNDS = 12  # deeper than any field of the schemas: each round climbs a level at most

# Valid values of required fields, each standing in for a wrong one (see above): what
# reads them is skipped, or finds nothing to report in them (a daily schedule has no
# time outside a window, `true` no parameter).
STAND_INS: dict[str, dict[Field, Any]] = {
    "Node": {("spec", "schedule"): "0 0 * * *", ("spec", "run", "command"): ["true"]},
    "Backfill": {
        ("spec", "select"): {"method": "manual", "roots": ["stand-in"]},
        ("spec", "dates"): ["2000-01-01"],
    },
}


def salvage(
    kind: str, data: Mapping[str, Any], errors: Sequence[Diagnostic]
) -> tuple[dict[str, Any], tuple[Field, ...]] | None:
    """The document without the fields `errors` lie in, valid against its schema, and the
    fields removed (outermost only, in order); None if only a required field could go."""
    removed: set[Field] = set()
    stand_ins = STAND_INS.get(kind, {})
    found = list(errors)
    for _ in range(_ROUNDS):
        for error in found:
            field = _field(error.path)
            if field is None:  # the document itself: its apiVersion, kind, metadata or spec
                return None
            removed.add(next((s for s in stand_ins if field[: len(s)] == s), field))
        kept = _without(data, removed, stand_ins)
        found = document_errors(kind, kept)
        if not found:
            return kept, _outermost(removed)
    return None


def _field(path: Field) -> Field | None:
    """The field an error at `path` lies in: an item of a list is not removed (the
    positions of the others would change), the list is."""
    end = len(path)
    while end and isinstance(path[end - 1], int):
        end -= 1
    return path[:end] or None


def _without(
    data: Mapping[str, Any], fields: Iterable[Field], stand_ins: Mapping[Field, Any]
) -> dict[str, Any]:
    """A copy of `data` without `fields` (outermost first), or with their stand-ins."""
    out: dict[str, Any] = copy.deepcopy(dict(data))
    for field in sorted(fields, key=len):
        parent: Any = out
        for part in field[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):  # inside a field already removed
                parent = None
                break
        if not isinstance(parent, dict) or field[-1] not in parent:
            continue
        if field in stand_ins:
            parent[field[-1]] = copy.deepcopy(stand_ins[field])
        else:
            del parent[field[-1]]
    return out


def _outermost(fields: set[Field]) -> tuple[Field, ...]:
    kept = [f for f in fields if not any(f[: len(o)] == o and f != o for o in fields)]
    return tuple(
        sorted(kept, key=lambda f: [(1, p, "") if isinstance(p, int) else (0, 0, p) for p in f])
    )
