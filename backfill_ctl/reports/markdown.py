"""`check -o markdown`: the pull-request comment.

In order: a one-line summary (what will run and how risky, Terraform-style), what the
change does against the base, a table per Backfill, the findings, then per Backfill a
Mermaid picture of its scope and its instances folded in <details>, and the plan
digest. A hidden marker at the end lets the workflow find and update its own comment.

A comment may hold 65,536 characters: instance lists are cut at `rows` rows per
Backfill, and sections that do not fit are replaced by a pointer to the JSON report.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING
from urllib.parse import quote

from backfill_ctl import __version__
from backfill_ctl.reports.check_text import change_text, changes_text, verdict
from backfill_ctl.reports.mermaid import flowchart
from backfill_ctl.reports.plan_table import date_ranges, selection_text
from backfill_ctl.reports.text import count

if TYPE_CHECKING:
    from backfill_ctl.core.planner import BackfillPlan
    from backfill_ctl.errors import Diagnostic
    from backfill_ctl.usecases.check import CheckResult

MARKER = "<!-- backfillctl-check -->"
LIMIT = 65_000  # GitHub's limit on a comment is 65,536 characters
_ICON = {"error": "❌", "warning": "⚠️", "notice": "ℹ️"}


def cell(text: str) -> str:
    """Text safe inside a table cell: no HTML, no column breaks, no line breaks."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", "<br>")


def summary(result: CheckResult) -> str:
    plans = result.plan.backfills
    instances = sum(len(bp.instances) for bp in plans)
    dry = sum(bp.summary()["dryRun"] for bp in plans)
    waiting = sum(bp.summary()["waitingForTime"] for bp in plans)
    icon = "❌" if result.failed else "⚠️" if result.count("warning") else "✅"
    unplanned = f", {result.unplanned} not planned" if result.unplanned else ""
    return (
        f"{icon} **backfillctl check: {verdict(result)}** · {count(instances, 'instance')} in "
        f"{count(len(plans), 'backfill')} ({dry} dry-run, {waiting} waiting for their time"
        f"{unplanned})"
    )


def _changes(result: CheckResult) -> list[str]:
    if result.base is None:
        return []
    return [f"Merging into `{cell(result.base)}`: {changes_text(result)}.", ""]


def _fit(rows: list[str], budget: int) -> tuple[list[str], int]:
    """As many rows as fit in `budget` characters, and how many were left out."""
    kept, size = [], 0
    for row in rows:
        size += len(row) + 1
        if size > budget:
            break
        kept.append(row)
    return kept, len(rows) - len(kept)


def _backfill_table(result: CheckResult, budget: int) -> list[str]:
    head = [
        "Backfill",
        "Scope nodes",
        "Dates",
        "Groups",
        "Instances",
        "Dry-run",
        "Waiting for time",
    ]
    if result.base:
        head.insert(1, "Change")
    rows = []
    for bp in result.plan.backfills:
        s = bp.summary()
        row = [
            f"`{cell(bp.name)}` ({cell(str(bp.backfill.origin))})",
            *(
                str(s[k])
                for k in ("nodes", "dates", "groups", "instances", "dryRun", "waitingForTime")
            ),
        ]
        if result.base:
            row.insert(1, change_text(result, bp.name) or "-")
        rows.append("| " + " | ".join(row) + " |")
    kept, left = _fit(rows, budget)
    if left:
        kept.append(f"| … and {count(left, 'more backfill')} | " + "| " * (len(head) - 1))
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|", *kept, ""]


def _findings(findings: list[Diagnostic], budget: int) -> list[str]:
    if not findings:
        return ["No findings.", ""]
    rows = []
    for f in findings:
        text = cell(f.message) + (f"<br>*{cell(f.hint)}*" if f.hint else "")
        rows.append(f"| {_ICON[f.severity]} {f.severity} | `{f.code}` | {cell(f.where)} | {text} |")
    kept, left = _fit(rows, budget)
    if left:
        kept.append(
            f"| | | | … and {count(left, 'more finding')}: `backfillctl check -o json` "
            "lists them all |"
        )
    return ["### Findings", "", "| | Check | Where | Finding |", "|---|---|---|---|", *kept, ""]


def _instances(bp: BackfillPlan, rows: int) -> list[str]:
    lines = [
        f"<details><summary>{count(len(bp.instances), 'instance')}</summary>",
        "",
        "| Business date | Scheduled | Node | Group.seq | Priority | Run | Id |",
        "|---|---|---|---|---|---|---|",
    ]
    for i in bp.instances[:rows]:
        run = (
            f"dry-run ({i.dry_run_reason})"
            if i.dry_run_reason
            else ("waits for its time" if i.wait_for_time else "runs")
        )
        lines.append(
            f"| {i.bizdate} | {i.cyctime:%Y-%m-%d %H:%M %z} | `{cell(i.node)}` | "
            f"{i.group}.{i.sequence} | {i.priority} | {run} | `{i.id}` |"
        )
    if len(bp.instances) > rows:
        lines.append(
            f"\n… and {len(bp.instances) - rows} more: `backfillctl plan -o json` "
            "lists every instance."
        )
    return [*lines, "", "</details>", ""]


def _section(bp: BackfillPlan, rows: int, dashboard: str | None = None) -> list[str]:
    b = bp.backfill
    link = (
        f" · [dashboard]({dashboard}/backfills/{quote(bp.name)}) once applied" if dashboard else ""
    )
    return [
        f"### `{cell(bp.name)}`",
        "",
        f"{cell(selection_text(bp))} · dates {date_ranges(sorted(bp.dates))} "
        f"({len(bp.dates)}, {b.order}) in {count(len(bp.chunks), 'group')}{link}",
        "",
        "```mermaid",
        flowchart(bp),
        "```",
        "",
        *_instances(bp, rows),
    ]


def _affected(result: CheckResult, name: str) -> bool:
    """With a base, only the Backfills the change affects are detailed."""
    change = result.change_of(name)
    return result.base is None or change is None or change.status != "unchanged"


def render_markdown(result: CheckResult, rows: int = 50) -> str:
    """The comment, at most `LIMIT` characters: the backfill table may take a fifth of
    it and the findings two fifths; the per-Backfill sections get what is left."""
    plan = result.plan
    who = f"as `{cell(plan.actor)}`" if plan.actor else "without an actor (permissions not checked)"
    footer = [
        "---",
        f"Plan digest `{plan.digest}` · checked {who} at {plan.now.isoformat()} · "
        f"backfillctl {__version__}",
        "",
        MARKER,
    ]
    lines = [
        summary(result),
        "",
        *_changes(result),
        *_backfill_table(result, LIMIT // 5),
        *_findings(result.findings, 2 * LIMIT // 5),
    ]
    size = sum(len(x) + 1 for x in lines + footer)
    detailed = [bp for bp in plan.backfills if _affected(result, bp.name)]
    for n, bp in enumerate(detailed):
        section = _section(bp, rows, result.dashboard)
        length = sum(len(x) + 1 for x in section)
        if size + length > LIMIT - 200:  # room for the pointer line below
            rest = len(detailed) - n
            lines += [
                f"… the details of {count(rest, 'more backfill')} do not fit in a "
                "comment: `backfillctl plan -o json` lists every instance.",
                "",
            ]
            break
        lines += section
        size += length
    return "\n".join(lines + footer) + "\n"
