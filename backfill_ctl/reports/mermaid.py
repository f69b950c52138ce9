"""The scope of a backfill as a Mermaid flowchart, for the pull-request comment.

Targets are drawn bold, dry-run nodes dashed (blocked ones grey, unpermitted ones
amber), blocked nodes left out of the scope are shown apart. A large scope is cut
after `limit` nodes in run order, with one "+k more" node standing for the rest, so
the picture stays readable and the comment stays within GitHub's size limit.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backfill_ctl.core.planner import BackfillPlan

_STYLES = [
    "classDef target font-weight:bold,stroke-width:2px",
    "classDef blocked stroke-dasharray:5 5,fill:#eeeeee,color:#666666",
    "classDef nopermission stroke-dasharray:5 5,fill:#fff4d6",
    "classDef leftout fill:#eeeeee,color:#999999,stroke:#bbbbbb",
    "classDef more fill:#ffffff,stroke-dasharray:2 2",
]
_CLASS = {"blocklisted": "blocked", "no-permission": "nopermission"}


def _id(name: str) -> str:
    # Every character but a letter or digit is spelt out in hex, so the ids of `a.b`,
    # `a-b` and `a_b` differ (a plain `_` for all three would merge them into one box).
    return "n_" + re.sub(r"[^A-Za-z0-9]", lambda m: f"_{ord(m.group()):x}_", name)


def _label(name: str) -> str:
    return name.replace('"', "#quot;")


def flowchart(bp: BackfillPlan, limit: int = 40) -> str:
    scope = bp.scope
    shown = list(scope.nodes[:limit])
    hidden = len(scope.nodes) - len(shown)
    lines = ["flowchart LR", *_boxes(bp, shown), *_edges(bp, shown, hidden)]
    for name in scope.left_out:
        lines.append(f'  {_id(name)}["{_label(name)}<br/><i>blocked, left out</i>"]')
    lines += ["  " + style for style in _STYLES]
    lines += _classes(bp, shown, hidden)
    return "\n".join(lines)


def _boxes(bp: BackfillPlan, shown: list[str]) -> list[str]:
    lines = []
    for name in shown:
        reason = bp.scope.dry_run.get(name)
        suffix = f"<br/><i>dry-run: {reason}</i>" if reason else ""
        lines.append(f'  {_id(name)}["{_label(name)}{suffix}"]')
    return lines


def _edges(bp: BackfillPlan, shown: list[str], hidden: int) -> list[str]:
    scope, visible = bp.scope, set(shown)
    lines = [
        f"  {_id(up)} --> {_id(name)}"
        for name in shown
        for up in scope.upstream[name]
        if up in visible
    ]
    if hidden:
        lines.append(f'  more["+{hidden} more"]')
        lines += sorted(
            {
                f"  {_id(name)} -.-> more"
                for name in shown
                for child in scope.downstream[name]
                if child not in visible
            }
        )
    return lines


def _classes(bp: BackfillPlan, shown: list[str], hidden: int) -> list[str]:
    scope = bp.scope
    groups = {  # class -> Mermaid ids
        "target": [_id(n) for n in shown if scope.roles[n] == "target" and n not in scope.dry_run],
        **{
            cls: [_id(n) for n in shown if scope.dry_run.get(n) == reason]
            for reason, cls in _CLASS.items()
        },
        "leftout": [_id(n) for n in scope.left_out],
        "more": ["more"] if hidden else [],
    }
    return [f"  class {','.join(ids)} {cls}" for cls, ids in groups.items() if ids]
