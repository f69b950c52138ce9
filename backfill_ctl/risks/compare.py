"""What merging a change does to each Backfill: `check --base REF`. Pure.

The specs at the base ref and at HEAD are planned with the same `now` and actor, then
compared Backfill by Backfill: added, removed, changed (its document was edited),
replanned (the document is the same but the catalog changed what it runs) or
unchanged, with the instances that appear (+N) and disappear (-M) by id, and those
whose definition changes (~K: an id names a slot, so a moved cron time is a change of
the same instances, listed as moves).

No store is read here: whether a backfill has finished is not known. The hint says
what apply does with each: a finished backfill whose document is unchanged is left as
it ran.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from backfill_ctl.core import slots
from backfill_ctl.errors import Diagnostic
from backfill_ctl.risks import CHECKS
from backfill_ctl.spec.model import Origin

if TYPE_CHECKING:
    from backfill_ctl.core.planner import Instance, Plan
    from backfill_ctl.spec.loader import Specs

Status = Literal["added", "removed", "changed", "replanned", "unchanged"]


@dataclass(frozen=True)
class BackfillChange:
    """How a Backfill's plan changes between the base ref and HEAD."""

    name: str
    status: Status
    added: int  # instances planned at HEAD and not at the base
    removed: int  # instances planned at the base and not at HEAD
    planned: bool = True  # False: HEAD has errors that stop it from being planned
    updated: int = 0  # instances planned on both sides whose definition changes
    moves: tuple[tuple[slots.Move, int], ...] = ()  # among them, moved scheduled times


def _documents(specs: Specs) -> dict[str, str]:
    """Canonical text of each Backfill document, by name."""
    out = {}
    for doc in specs.documents:
        name = _backfill_name(doc.data)
        if name is not None:
            out[name] = json.dumps(doc.data, sort_keys=True)
    return out


def _backfill_name(data: object) -> str | None:
    """The name of a Backfill document, even one that failed its schema."""
    if not isinstance(data, dict) or data.get("kind") != "Backfill":
        return None
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def _where(specs: Specs, name: str) -> Origin:
    """The document of a Backfill; its raw document when it could not be built."""
    backfill = specs.backfills.get(name)
    if backfill is not None:
        return backfill.origin
    for doc in specs.documents:
        if _backfill_name(doc.data) == name:
            return Origin(doc.file, doc.index, doc.line)
    return Origin("", 0)


def authored(base: Specs, head: Specs) -> set[str]:
    """The Backfills a change adds or edits: the ones its author answers for."""
    before, after = _documents(base), _documents(head)
    return {name for name, text in after.items() if before.get(name) != text}


def _instances(plan: Plan) -> dict[str, dict[str, Instance]]:
    return {bp.name: {i.id: i for i in bp.instances} for bp in plan.backfills}


def compare(base: Specs, base_plan: Plan, head: Specs, head_plan: Plan) -> list[BackfillChange]:
    before, after = _documents(base), _documents(head)
    old, new = _instances(base_plan), _instances(head_plan)
    changes = []
    for name in sorted(before.keys() | after.keys()):
        planned = name not in after or name in new
        was, now = old.get(name, {}), new.get(name, {})
        # Without a plan at HEAD there is no honest count (its errors say why).
        added, removed = (len(now.keys() - was), len(was.keys() - now)) if planned else (0, 0)
        updated, moves = _updates(was, now) if planned else (0, Counter[slots.Move]())
        if name not in before:
            status: Status = "added"
        elif name not in after:
            status = "removed"
        elif before[name] != after[name]:
            status = "changed"
        elif not planned:
            status = "unchanged"  # the catalog's errors are reported; no delta to show
        else:
            status = "replanned" if added or removed or updated else "unchanged"
        changes.append(
            BackfillChange(
                name, status, added, removed, planned, updated, tuple(sorted(moves.items()))
            )
        )
    return changes


def _updates(was: dict[str, Instance], now: dict[str, Instance]) -> tuple[int, Counter[slots.Move]]:
    """How many instances of both plans change, and the scheduled times that move."""
    updated, moves = 0, Counter[slots.Move]()
    for iid in was.keys() & now.keys():
        before, after = was[iid], now[iid]
        if before != after:
            updated += 1
            if before.cyctime != after.cyctime:
                moves[
                    slots.move(after.node, before.cyctime.isoformat(), after.cyctime.isoformat())
                ] += 1
    return updated, moves


def delta(added: int, removed: int, updated: int = 0) -> str:
    """The change in instances, written one way everywhere: `+4 / -2`, `+0 / -0 / ~8`."""
    return f"+{added} / -{removed}" + (f" / ~{updated}" if updated else "")


def change_findings(
    changes: list[BackfillChange], base: Specs, head: Specs, ref: str
) -> list[Diagnostic]:
    """A notice for each added or removed Backfill, a warning for each edited one."""
    out = []
    for change in changes:
        name, status = change.name, change.status
        what = (
            ", ".join(
                [
                    f"{delta(change.added, change.removed, change.updated)} instances",
                    *slots.moves_text(Counter(dict(change.moves))),
                ]
            )
            if change.planned
            else "it cannot be planned (see the errors)"
        )
        if status == "added":
            code, where, hint = "backfill-added", head, None
            message = f"adds Backfill {name}: {what}"
        elif status == "removed":
            code, where = "backfill-removed", base
            plural = "" if change.removed == 1 else "s"
            message = f"removes Backfill {name} ({change.removed} planned instance{plural})"
            hint = "apply --prune cancels its instances that have not started"
        elif status in ("changed", "replanned"):
            code, where = "backfill-changed", head
            why = (
                f"edits Backfill {name}, which exists on {ref}"
                if status == "changed"
                else f"the catalog change re-plans Backfill {name}"
            )
            message = f"{why}: {what}"
            hint = (
                "applying it creates the new instances, updates and cancels planned ones that "
                "have not started, and keeps those that started"
                if status == "changed"
                else "applying it updates the instances that have not started, keeps those "
                "that started, and leaves a backfill that has finished as it ran (rerun its "
                "instances, or edit the Backfill, to run it again)"
            )
        else:
            continue
        out.append(
            Diagnostic.in_document(
                _where(where, name),
                message,
                hint=hint,
                severity=CHECKS[code].severity,
                code=code,
                backfill=name,
            )
        )
    return out
