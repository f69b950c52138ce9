"""A plan for people: what will run, in which order, in a screenful.

Per backfill: one summary line, the date groups, and one row per scope node (cycle,
role, instance counts, priority, first and last scheduled time). The exact instance
list is the business of `-o json`/`-o yaml`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from backfill_ctl.calendar import analyse
from backfill_ctl.reports.text import count, table

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date

    from backfill_ctl.catalog import Catalog
    from backfill_ctl.planner import BackfillPlan, Instance, Plan


def date_ranges(days: Iterable[date]) -> str:
    """2024-03-01..2024-03-04, 2024-03-15 (consecutive days collapsed, in given order)."""
    parts: list[list[date]] = []
    for day in days:
        if parts and abs((day - parts[-1][-1]).days) == 1:
            parts[-1].append(day)
        else:
            parts.append([day])
    return ", ".join(f"{p[0]}..{p[-1]}" if len(p) > 1 else str(p[0]) for p in parts)


def _selection(bp: BackfillPlan) -> str:
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


def render_backfill(bp: BackfillPlan, catalog: Catalog) -> list[str]:
    s = bp.summary()
    b = bp.backfill
    lines = [
        f"Backfill {b.name}  ({b.origin})",
        f"  select:   {_selection(bp)}",
        f"  dates:    {date_ranges(bp.dates)} ({count(s['dates'], 'date')}, {b.order})",
    ]
    if len(bp.chunks) > 1:
        for g, chunk in enumerate(bp.chunks):
            lines.append(f"  group {g}:  {date_ranges(chunk)} ({count(len(chunk), 'date')})")
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
    by_node: dict[str, list[Instance]] = defaultdict(list)
    for i in bp.instances:
        by_node[i.node].append(i)
    rows = [["NODE", "CYCLE", "ROLE", "INSTANCES", "DRY-RUN", "PRIORITY", "FIRST", "LAST"]]
    for name in bp.scope.nodes:
        items = by_node.get(name, [])
        node = catalog.nodes[name]
        reasons = sorted({i.dry_run_reason for i in items if i.dry_run_reason})
        dry = sum(1 for i in items if i.dry_run_reason)
        priorities = sorted({i.priority for i in items}, reverse=True)
        shown = "/".join(map(str, priorities)) or "-"
        if priorities and priorities != [node.priority]:
            shown = f"{node.priority}->{shown}"
        first = min((i.cyctime for i in items), default=None)
        last = max((i.cyctime for i in items), default=None)
        rows.append(
            [
                name,
                analyse(node.schedule).cycle,
                bp.scope.roles[name],
                str(len(items)),
                f"{dry} ({', '.join(reasons)})" if dry else "-",
                shown,
                f"{first:%Y-%m-%d %H:%M %z}" if first else "-",
                f"{last:%Y-%m-%d %H:%M %z}" if last else "-",
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
