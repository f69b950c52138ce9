"""The planning use case: loaded specs in, a `Plan` (or the reasons there is none) out.

Pure like the planner: `now` and the actor are arguments. A backfill whose checks
report an error is not planned; the others still are, so one broken Backfill does not
hide the plans of the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.errors import Diagnostic, UsageError
from backfill_ctl.planner import BackfillPlan, Plan, plan_backfill
from backfill_ctl.validation import validate

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from backfill_ctl.spec.loader import Specs


def make_plan(
    specs: Specs, now: datetime, actor: str | None, only: Sequence[str] = ()
) -> tuple[Plan, list[Diagnostic]]:
    """Plan every Backfill (or those named in `only`) that passed its checks."""
    for name in only:
        if name not in specs.backfills:
            known = ", ".join(sorted(specs.backfills)) or "none"
            raise UsageError(
                f"no Backfill named {name!r} in the specs (found: {known})",
                hint="check the name after --backfill",
            )
    scopes, diagnostics = validate(specs, actor)
    diagnostics = specs.diagnostics + diagnostics
    broken_files = {(d.file, d.doc) for d in diagnostics if d.is_error}
    catalog_broken = any(
        d.is_error
        and (d.file, d.doc) not in {(b.origin.file, b.origin.doc) for b in specs.backfills.values()}
        for d in diagnostics
    )
    plans: list[BackfillPlan] = []
    if not catalog_broken:
        catalog = specs.catalog()
        for name in sorted(specs.backfills):
            backfill = specs.backfills[name]
            if only and name not in only:
                continue
            scope = scopes.get(name)
            if scope is None or (backfill.origin.file, backfill.origin.doc) in broken_files:
                continue
            plans.append(plan_backfill(catalog, backfill, scope, now))
    return Plan(tuple(plans), now, actor, specs.digest()), diagnostics
