"""`check` for people (text) and tools (JSON): one line per backfill, then the findings;
and the line that says why apply was refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backfill_ctl.reports.text import count, table
from backfill_ctl.risks import CHECKS
from backfill_ctl.risks.compare import delta

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.core.planner import BackfillPlan
    from backfill_ctl.errors import Diagnostic
    from backfill_ctl.risks.compare import BackfillChange
    from backfill_ctl.usecases.check import CheckResult


def verdict(result: CheckResult) -> str:
    """`1 error, 3 warnings, 1 notice` (or `no findings`)."""
    parts = [
        count(n, word)
        for word, n in (
            ("error", result.count("error")),
            ("warning", result.count("warning")),
            ("notice", result.count("notice")),
        )
        if n
    ]
    return ", ".join(parts) or "no findings"


def change_text(result: CheckResult, name: str) -> str:
    change = result.change_of(name)
    if change is None:
        return ""
    if change.status == "unchanged":
        return "unchanged"
    return f"{change.status} {delta(change.added, change.removed, change.updated)}"


def changes_text(result: CheckResult) -> str:
    """`1 added, 1 changed; instances +4 / -2` (what merging does)."""
    statuses = ("added", "changed", "replanned", "removed")
    parts = [
        f"{n} {status}"
        for status in statuses
        if (n := sum(1 for c in result.changes if c.status == status))
    ]
    added = sum(c.added for c in result.changes)
    removed = sum(c.removed for c in result.changes)
    updated = sum(c.updated for c in result.changes)
    return (
        f"{', '.join(parts) or 'no Backfill changes'}; instances {delta(added, removed, updated)}"
    )


def backfill_rows(result: CheckResult) -> list[list[str]]:
    rows = [["BACKFILL", "FILE", "NODES", "DATES", "GROUPS", "INSTANCES", "DRY-RUN", "WAITING"]]
    if result.base:
        rows[0].append("CHANGE")
    for bp in result.plan.backfills:
        s = bp.summary()
        row = [
            bp.name,
            str(bp.backfill.origin),
            *(str(s[k]) for k in ("nodes", "dates", "groups", "instances", "dryRun")),
            str(s["waitingForTime"]),
        ]
        if result.base:
            row.append(change_text(result, bp.name))
        rows.append(row)
    return rows


def summary_line(result: CheckResult) -> str:
    planned = result.plan.backfills
    instances = sum(len(bp.instances) for bp in planned)
    line = (
        f"check: {verdict(result)}; {count(instances, 'instance')} in "
        f"{count(len(planned), 'backfill')}"
    )
    if result.unplanned:
        line += f" ({result.unplanned} not planned)"
    if result.base:
        line += f"; against {result.base}: {changes_text(result)}"
    return line


def render_text(result: CheckResult) -> list[str]:
    """The backfill table; the findings are printed by the CLI (coloured)."""
    return table(backfill_rows(result)) if result.plan.backfills else []


def check_data(result: CheckResult) -> dict[str, Any]:
    def backfill(bp: BackfillPlan) -> dict[str, Any]:
        change = result.change_of(bp.name)
        return {
            "name": bp.name,
            "file": bp.backfill.origin.file,
            "line": bp.backfill.origin.line,
            "summary": bp.summary(),
            "change": None if change is None else _change(change),
        }

    return {
        "ok": not result.failed,
        "errors": result.count("error"),
        "warnings": result.count("warning"),
        "notices": result.count("notice"),
        "digest": result.plan.digest,
        "now": result.plan.now.isoformat(),
        "actor": result.plan.actor,
        "base": result.base,
        "backfills": [backfill(bp) for bp in result.plan.backfills],
        "changes": [{"name": c.name, **_change(c)} for c in result.changes],
        "findings": [f.to_dict() for f in result.findings],
    }


def _change(c: BackfillChange) -> dict[str, Any]:
    return {
        "status": c.status,
        "added": c.added,
        "removed": c.removed,
        "updated": c.updated,
        "moves": [
            {"node": node, "from": before, "to": after, "instances": n}
            for (node, before, after), n in c.moves
        ],
    }


def refusal(verb: str, errors: Sequence[Diagnostic]) -> str:
    """`apply refused: 2 error finding(s)`, with `checks.stopOnRisk: false` suggested only
    for the findings that setting accepts (risk checks with stop_on_risk)."""
    text = f"{verb} refused: {len(errors)} error finding(s)"
    risky = sorted(
        {e.code for e in errors if (c := CHECKS.get(e.code)) is not None and c.stop_on_risk}
    )
    if risky and len(risky) == len({e.code for e in errors}):
        return f"{text} (a Backfill may accept its risks with checks.stopOnRisk: false)"
    if risky:
        return (
            f"{text}; fix the others first (checks.stopOnRisk: false accepts only "
            f"{', '.join(risky)})"
        )
    return f"{text}; fix them first (checks.stopOnRisk: false does not accept these)"
