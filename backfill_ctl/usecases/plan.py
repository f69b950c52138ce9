"""The planning use case: loaded specs in, a `Plan` (or the reasons there is none) out.

Pure like the planner: `now` and the actor are arguments. A backfill whose checks
report an error is not planned; the others still are, so one broken Backfill does not
hide the plans of the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.core.planner import BackfillPlan, Plan, plan_backfill
from backfill_ctl.core.semantics import validate
from backfill_ctl.core.size import plan_size, too_large
from backfill_ctl.errors import Diagnostic, UsageError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from backfill_ctl.spec.loader import Specs


def make_plan(
    specs: Specs,
    now: datetime,
    actor: str | None,
    only: Sequence[str] = (),
    authored: Collection[str] | None = None,
) -> tuple[Plan, list[Diagnostic]]:
    """Plan every Backfill (or those named in `only`, whose findings are the only ones
    told of the Backfills) that passed its checks, as long as
    they fit together under the ceiling of `core.size` (a Backfill that does not is
    refused at its dates, before any of its instances is made).

    Permissions are the actor's on the Backfills in `authored` (all when None).
    """
    _require_known(specs, only)
    scopes, found = validate(specs, actor, authored)
    diagnostics = _theirs(specs, only, specs.diagnostics + found)
    kinds = {(doc.file, doc.index): _kind(doc.data) for doc in specs.documents}
    broken = {(d.file, d.doc) for d in diagnostics if d.is_error}
    plans: list[BackfillPlan] = []
    # An error outside the Backfills (a node, a workspace, a file that does not parse)
    # means the catalog cannot be trusted: nothing is planned.
    if all(kinds.get(where) == "Backfill" for where in broken):
        catalog = specs.catalog()
        planned = 0  # the ceiling holds for the Backfills together (each fits: validate)
        for name in sorted(specs.backfills):
            backfill = specs.backfills[name]
            scope = scopes.get(name)
            if (only and name not in only) or scope is None:
                continue
            if (backfill.origin.file, backfill.origin.doc) in broken:
                continue
            size = plan_size(catalog, backfill, scope)
            refused = too_large(backfill, size, planned)
            if refused is not None:
                diagnostics.append(refused)
                continue
            planned += size.work
            plans.append(plan_backfill(catalog, backfill, scope, now))
    return Plan(tuple(plans), now, actor, specs.digest()), diagnostics


def _require_known(specs: Specs, only: Sequence[str]) -> None:
    """A usage error names a Backfill of `only` the specs do not hold."""
    for name in only:
        if name not in specs.backfills:
            known = ", ".join(sorted(specs.backfills)) or "none"
            raise UsageError(
                f"no Backfill named {name!r} in the specs (found: {known})",
                hint="check the name after --backfill",
            )


def _theirs(specs: Specs, only: Sequence[str], found: list[Diagnostic]) -> list[Diagnostic]:
    """What was found, less what is found in Backfills other than `only` (when given):
    that is theirs, and neither shows nor blocks."""
    if not only:
        return found
    others = {(b.origin.file, b.origin.doc) for n, b in specs.backfills.items() if n not in only}
    return [d for d in found if (d.file, d.doc) not in others]


def _kind(data: object) -> object:
    return data.get("kind") if isinstance(data, dict) else None
