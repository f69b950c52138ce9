"""Risk checks (DESIGN §5.3): what a reviewer must see before a Backfill is merged. Pure.

Every check has an id, a severity and a one-line title in `CHECKS`, the registry the
reports and the README's table are built from. Findings are `Diagnostic`s pointing at
the Backfill document (file and line), naming the nodes and instances involved.

Some findings come from earlier stages (a dependency loop from validation, permissions
and dry-run intermediates from selection); `rules` adds those that need the plan.
Severity `error` blocks `check` (exit 1) and apply. For the *risk* checks (`stop_on_risk`
below), a Backfill may accept the risk with `checks.stopOnRisk: false`: its finding is
then reported as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.errors import Diagnostic, Severity
    from backfill_ctl.spec.model import Backfill


@dataclass(frozen=True)
class Check:
    """A kind of finding: its severity and its title."""

    severity: Severity
    title: str
    stop_on_risk: bool = False  # an error the Backfill may accept with stopOnRisk: false


CHECKS: dict[str, Check] = {
    "dependency-loop": Check("error", "the catalog has a dependency loop (the cycle is shown)"),
    "no-permission-target": Check(
        "error", "the actor may not operate a target node: the backfill cannot run"
    ),
    "no-permission-intermediate": Check(
        "warning", "the actor may not operate an intermediate node: it is dry-run"
    ),
    "dry-run-intermediate": Check(
        "warning", "a blocked intermediate node is dry-run: its descendants may read missing data"
    ),
    "isolated-node": Check("warning", "a node in scope is connected to no root of the backfill"),
    "isolated-instance": Check(
        "warning", "an in-scope upstream has no instance for a date the node runs"
    ),
    "target-without-instances": Check(
        "error", "a target node has no instance (a Backfill that plans none cannot run)"
    ),
    "waiting-for-time": Check("notice", "instances scheduled after now wait for their time"),
    "self-dependent-parallel": Check(
        "error", "a self-dependent node runs its dates in parallel groups", stop_on_risk=True
    ),
    "self-dependent-descending": Check(
        "error",
        "a self-dependent node runs its dates newest first (order: descending)",
        stop_on_risk=True,
    ),
    "overlap": Check("warning", "two backfills run the same node for the same business date"),
    "too-many-instances": Check(
        "error", "more instances than Config spec.checks.maxInstances", stop_on_risk=True
    ),
    "recurring-collision": Check(
        "warning", "a T-1 backfill may run at the same time as today's recurring instance"
    ),
    "backfill-changed": Check("warning", "the change edits a Backfill that exists on the base"),
    "backfill-added": Check("notice", "the change adds a Backfill"),
    "backfill-removed": Check("notice", "the change removes a Backfill"),
}


def accept_risks(
    findings: Iterable[Diagnostic], backfills: dict[str, Backfill]
) -> list[Diagnostic]:
    """Risk findings of a Backfill with `checks.stopOnRisk: false` become warnings."""
    out = []
    for finding in findings:
        check = CHECKS.get(finding.code)
        backfill = backfills.get(finding.backfill or "")
        if (
            check is not None
            and check.stop_on_risk
            and finding.is_error
            and backfill is not None
            and not backfill.stop_on_risk
        ):
            finding = replace(
                finding,
                severity="warning",
                message=finding.message + " (accepted: checks.stopOnRisk is false)",
            )
        out.append(finding)
    return out
