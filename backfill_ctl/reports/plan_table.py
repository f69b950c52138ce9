"""A plan for people: what will run, in which order, in a screenful.

Per backfill: one summary line, the date groups, and one row per scope node (cycle,
role, instance counts, priority, first and last scheduled time). The exact instance
list is the business of `-o json`/`-o yaml`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.core.schedules import analyse
from backfill_ctl.reports.text import count, table

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date, datetime

    from backfill_ctl.core.planner import BackfillPlan, Instance, Plan
    from backfill_ctl.spec.catalog import Catalog


def date_ranges(days: Iterable[date]) -> str:
    """2024-03-01..2024-03-04, 2024-03-15 (consecutive days collapsed, in given order)."""
    parts: list[list[date]] = []
    for day in days:
        if parts and abs((day - parts[-1][-1]).days) == 1:
            parts[-1].append(day)
        else:
            parts.append([day])
    return ", ".join(f"{p[0]}..{p[-1]}" if len(p) > 1 else str(p[0]) for p in parts)


def selection_text(bp: BackfillPlan) -> str:
    sel = bp.backfill.select
    if sel.method == "link":
        text = f"link from {sel.start} to {', '.join(sel.ends)}"
    elif sel.method == "workspace":
        text = f"workspaces {', '.join(sel.workspaces)} below {', '.join(sel.roots)}" + (
            "" if sel.include_root else " (roots excluded)"
        )
    elif sel.method == "manual":
        depth = sel.descendants
        below = (
            ""
            if depth is None
            else f", {depth} level(s) below"
            if isinstance(depth, int)
            else f" and {', '.join(depth)}"
        )
        text = f"manual: {', '.join(sel.roots)}{below}"
    else:
        text = f"{', '.join(sel.roots)} and all descendants"
    if sel.block:
        text += f"; blocked: {', '.join(sel.block)}"
    return text


class _NodeStats:
    """What the table shows of one node, gathered in one pass over the instances."""

    __slots__ = ("count", "dry", "first", "last", "priorities", "reasons")

    def __init__(self) -> None:
        self.count = self.dry = 0
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.priorities: set[int] = set()
        self.reasons: set[str] = set()

    def add(self, i: Instance) -> None:
        self.count += 1
        if i.dry_run_reason is not None:
            self.dry += 1
            self.reasons.add(i.dry_run_reason)
        self.priorities.add(i.priority)
        if self.first is None or i.cyctime < self.first:
            self.first = i.cyctime
        if self.last is None or i.cyctime > self.last:
            self.last = i.cyctime


def _priority(baseline: int, seen: set[int]) -> str:
    """8 (kept), 8->3 (every date degraded), 8 (older: 3) (some dates degraded)."""
    lower = sorted(seen - {baseline})
    if not lower:
        return str(baseline) if seen else "-"
    if baseline in seen:
        return f"{baseline} (older: {lower[0]})"
    return f"{baseline}->{lower[0]}"


def render_backfill(bp: BackfillPlan, catalog: Catalog) -> list[str]:
    s = bp.summary()
    b = bp.backfill
    lines = [
        f"Backfill {b.name}  ({b.origin})",
        f"  select:   {selection_text(bp)}",
        f"  dates:    {date_ranges(sorted(bp.dates))} ({count(s['dates'], 'date')}, {b.order})",
    ]
    if len(bp.chunks) > 1:
        for g, chunk in enumerate(bp.chunks):
            lines.append(
                f"  group {g}:  {date_ranges(sorted(chunk))} ({count(len(chunk), 'date')})"
            )
    extras = [f"{s['dryRun']} dry-run"] if s["dryRun"] else []
    if s["waitingForTime"]:
        extras.append(f"{s['waitingForTime']} waiting for their time")
    lines.append(
        f"  plan:     {count(s['nodes'], 'node')}, {count(s['instances'], 'instance')}"
        + (f" ({', '.join(extras)})" if extras else "")
    )
    if bp.scope.left_out:
        lines.append(f"  left out: {', '.join(bp.scope.left_out)} (blocked)")
    lines.append("")
    stats = {name: _NodeStats() for name in bp.scope.nodes}
    for i in bp.instances:
        stats[i.node].add(i)
    rows = [["NODE", "CYCLE", "ROLE", "INSTANCES", "DRY-RUN", "PRIORITY", "FIRST", "LAST"]]
    for name in bp.scope.nodes:
        st = stats[name]
        node = catalog.nodes[name]
        shown = _priority(node.priority, st.priorities)
        rows.append(
            [
                name,
                analyse(node.schedule).cycle,
                bp.scope.roles[name],
                str(st.count),
                f"{st.dry} ({', '.join(sorted(st.reasons))})" if st.dry else "-",
                shown,
                f"{st.first:%Y-%m-%d %H:%M %z}" if st.first else "-",
                f"{st.last:%Y-%m-%d %H:%M %z}" if st.last else "-",
            ]
        )
    lines += ["  " + line for line in table(rows)]
    return lines


def render_plan(plan: Plan, catalog: Catalog) -> str:
    lines: list[str] = []
    for bp in plan.backfills:
        lines += [*render_backfill(bp, catalog), ""]
    total = sum(len(bp.instances) for bp in plan.backfills)
    dry = sum(bp.summary()["dryRun"] for bp in plan.backfills)
    lines.append(
        f"Plan: {count(total, 'instance')} in {count(len(plan.backfills), 'backfill')}"
        + (f" ({dry} dry-run)" if dry else "")
        + f"; digest {plan.digest[:19]}"
    )
    return "\n".join(lines)
