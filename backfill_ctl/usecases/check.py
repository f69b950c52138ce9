"""The check use case: specs (and optionally the specs at a base ref) in, findings out.

Pure like planning: the CLI reads the files and the base ref, and passes `now` and
the actor. Findings of every stage end up in one sorted list: validation errors, scope
warnings, plan risks and, with a base, what merging changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from backfill_ctl.risks import accept_risks
from backfill_ctl.risks.rules import plan_findings
from backfill_ctl.usecases.plan import make_plan

if TYPE_CHECKING:
    from datetime import datetime

    from backfill_ctl.core.planner import Plan
    from backfill_ctl.errors import Diagnostic
    from backfill_ctl.risks.compare import BackfillChange
    from backfill_ctl.spec.loader import Specs


@dataclass(frozen=True)
class Base:
    """The specs at the base ref of a pull request."""

    ref: str
    specs: Specs


@dataclass(frozen=True)
class CheckResult:
    """What `check` reports: the plan, its findings and, with a base, the changes."""

    plan: Plan
    findings: list[Diagnostic]  # located, sorted by file and line
    base: str | None = None
    changes: list[BackfillChange] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def failed(self) -> bool:
        """An error finding: check exits 1 and apply refuses."""
        return any(f.is_error for f in self.findings)

    unplanned: int = 0  # Backfills in the specs that could not be planned
    dashboard: str | None = None  # the Config's dashboard URL: the comment links to it

    def change_of(self, backfill: str) -> BackfillChange | None:
        return next((c for c in self.changes if c.name == backfill), None)


def run_check(
    specs: Specs, now: datetime, actor: str | None, base: Base | None = None
) -> CheckResult:
    """Everything `check` reports. With a base, the actor's permissions are checked on the
    Backfills the change adds or edits only: the others were approved with their own
    authors, and a pull request must not fail for specs it does not touch.

    risks.compare is imported with a base only: apply and plan never compare."""
    mine = None
    if base is not None:
        from backfill_ctl.risks.compare import authored

        mine = authored(base.specs, specs)
    plan, diagnostics = make_plan(specs, now, actor, authored=mine)
    findings = diagnostics + plan_findings(plan, specs.catalog(), specs.config.max_instances)
    changes: list[BackfillChange] = []
    removed: list[Diagnostic] = []
    if base is not None:
        from backfill_ctl.risks.compare import change_findings, compare

        # Without an actor: what the base runs does not depend on who asks today.
        base_plan, _ = make_plan(base.specs, now, None)
        changes = compare(base.specs, base_plan, specs, plan)
        for f in change_findings(changes, base.specs, specs, base.ref):
            (removed if f.code == "backfill-removed" else findings).append(f)
    if base is not None:
        findings = [_at_new_edge(f, base.specs, specs) for f in findings]
    located = specs.sources.locate(accept_risks(findings, specs.backfills))
    if base is not None and removed:  # a removed Backfill's document is only on the base
        located = sorted(
            located + base.specs.sources.locate(removed),
            key=lambda d: (d.file, d.line or 0, d.col or 0),
        )
    unplanned = len(specs.backfills) - len(plan.backfills)
    return CheckResult(
        plan, located, base.ref if base else None, changes, unplanned, specs.config.dashboard
    )


def _at_new_edge(finding: Diagnostic, base: Specs, head: Specs) -> Diagnostic:
    """A loop is annotated at the upstream entry the change added, when there is one:
    that is the line the author of the pull request has to look at."""
    if finding.code != "dependency-loop" or not finding.nodes:
        return finding
    ring = finding.nodes  # each node is upstream of the next, the last of the first
    for up, down in zip(ring, ring[1:] + ring[:1], strict=True):
        node, before = head.nodes.get(down), base.nodes.get(down)
        if node and up in node.upstream and (before is None or up not in before.upstream):
            path = ("spec", "upstream", node.upstream.index(up))
            origin = node.origin
            return replace(finding, file=origin.file, doc=origin.doc, path=path, line=None)
    return finding
