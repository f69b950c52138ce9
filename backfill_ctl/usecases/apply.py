"""The apply use case (`apply`, `diff`, the controller's re-apply), callable without the CLI.

Three steps, so that a caller can show each one's outcome before the next runs:

1. `prepare` loads the specs, checks them (risks and policies) as the actor, and, with a
   saved plan (`plan --out`), verifies it: its seal matches its content, it was made for
   this actor, the specs did not change since, and they plan the same instances; the
   saved plan's `now` is the one planned with;
2. `changes` works out what the store must change to hold what the plan asks
   (`reconcile.desired` and `reconcile.diff`), or, without a store, that all is new,
   and which of those changes the actor may not make (`access.ApplyGuard`: cancelling or
   changing stored instances of nodes it may not operate, pruning a backfill it could
   not delete);
3. `commit` writes those changes in one transaction.

Nothing here reads the clock or the environment: the caller passes `now`, the actor and
the time of the change (`at`). Nor does the checkout the specs are read from matter:
where commands run is the spec root of whoever runs them (records.Run), so a pipeline's
clone and the controller's link apply the same specs as the same change. Errors are
`UsageError`s with the messages the CLI prints (exit 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import UsageError
from backfill_ctl.spec.loader import load_specs
from backfill_ctl.state import StoreConflict
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.access import ApplyGuard, Guard
from backfill_ctl.usecases.check import run_check
from backfill_ctl.usecases.policies import with_policies

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from pathlib import Path

    from backfill_ctl.core.planner import Plan
    from backfill_ctl.errors import Diagnostic
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state import PlanStore
    from backfill_ctl.usecases.check import CheckResult


@dataclass(frozen=True)
class Prepared:
    """Checked specs, ready to be applied (unless `failed`)."""

    specs: Specs
    check: CheckResult
    actor: str | None  # whose permissions were checked
    # A saved plan of some of the specs' Backfills (`plan -b`): only those are applied.
    only: tuple[str, ...] | None = None

    @property
    def plan(self) -> Plan:
        if self.only is None:
            return self.check.plan
        return replace(
            self.check.plan,
            backfills=tuple(bp for bp in self.check.plan.backfills if bp.name in self.only),
        )

    @property
    def failed(self) -> bool:
        """An error finding (about what is applied): apply refuses."""
        return bool(self.errors)

    @property
    def errors(self) -> list[Diagnostic]:
        found = [f for f in self.check.findings if f.is_error]
        if self.only is None:
            return found
        return [f for f in found if f.backfill is None or f.backfill in self.only]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [
            f
            for f in self.check.findings
            if not f.is_error
            and (self.only is None or f.backfill is None or f.backfill in self.only)
        ]

    def errors_of(self, names: Collection[str]) -> list[Diagnostic]:
        """The error findings about these Backfills, or about no Backfill in particular."""
        return [f for f in self.errors if f.backfill is None or f.backfill in names]

    @property
    def names(self) -> list[str]:
        """The planned Backfills, in plan order."""
        return [bp.name for bp in self.plan.backfills]


def prepare(
    paths: Sequence[str], now: datetime, actor: str | None, plan_file: Path | None = None
) -> Prepared:
    """Load, check and plan; with a saved plan, re-plan it exactly and refuse a stale one,
    an edited one, and one made for another actor. A saved plan of some of the specs'
    Backfills (`plan -b NAME --out`) applies those only (`Prepared.only`)."""
    specs = load_specs(paths)
    saved: dict[str, Any] | None = None
    if plan_file is not None:
        saved = read_plan(plan_file)
        bind(plan_file, saved.get("actor"), actor)
        if saved.get("digest") != specs.digest():
            raise UsageError(
                f"--plan {plan_file} is stale: the specs changed since it was saved",
                hint="plan again, review, and apply the new plan",
            )
        try:
            now = datetime.fromisoformat(saved["now"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"--plan {plan_file}: not a saved plan (no valid now)",
                hint="save one with backfillctl plan --out FILE",
            ) from exc
    prepared = check_specs(specs, now, actor)
    if saved is not None and plan_file is not None:
        prepared = _as_saved(prepared, saved, plan_file)
    return prepared


def _as_saved(prepared: Prepared, saved: dict[str, Any], plan_file: Path) -> Prepared:
    """`prepared` narrowed to the Backfills of the saved plan (all of the specs', or those
    `plan -b` saved), which must plan exactly the instances it holds."""
    planned = {bp.name: bp for bp in prepared.plan.backfills}
    names = [bp.get("name") for bp in saved["backfills"]]
    known = [n for n in names if isinstance(n, str) and n in planned]
    want = [
        i.get("id") if isinstance(i, dict) else None
        for bp in saved["backfills"]
        for i in bp["instances"]
    ]
    have = [i.id for name in known for i in planned[name].instances]
    if want != have or known != names:
        raise UsageError(
            f"--plan {plan_file} does not match what the specs plan now",
            hint="plan again with the same backfillctl version",
        )
    # (The specs' Backfills, not those planned: one that failed its checks is another's.)
    whole = set(known) == set(prepared.specs.backfills)
    return prepared if whole else replace(prepared, only=tuple(known))


def check_specs(specs: Specs, now: datetime, actor: str | None) -> Prepared:
    """Loaded specs checked (risks, then policies) and planned as `actor` at `now`."""
    return Prepared(specs, with_policies(specs, run_check(specs, now, actor)), actor)


def read_plan(plan_file: Path) -> dict[str, Any]:
    """A saved plan whose seal matches its content."""
    from backfill_ctl.usecases.plan_data import SEAL, seal_of

    try:
        saved = json.loads(plan_file.read_text(encoding="utf-8"))
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
        seal = seal_of(saved)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"--plan {plan_file}: not a saved plan ({exc})",
            hint="save one with backfillctl plan --out FILE",
        ) from exc
    if saved.get(SEAL) is None:
        raise UsageError(
            f"--plan {plan_file} has no seal: it was saved by an earlier backfillctl",
            hint="plan again with this version (backfillctl plan PATHS --out FILE)",
        )
    if saved[SEAL] != seal:
        raise UsageError(
            f"--plan {plan_file} was edited after it was saved: its seal does not match "
            "its content",
            hint="a saved plan is applied as saved; plan again, review, and apply the new plan",
        )
    return saved


def bind(plan_file: Path, planned_for: object, caller: str | None) -> None:
    """A saved plan is applied by the actor it was made for, and only by that one."""
    if planned_for == caller:
        return
    if caller is None:
        raise UsageError(
            f"--plan {plan_file} was made for {planned_for}, and no actor is given "
            "(--as, $BACKFILLCTL_ACTOR, $GITHUB_ACTOR)",
            hint=f"apply it --as {planned_for} if that is you; else plan again as yourself",
        )
    made = (
        "without an actor (its permissions were not checked)"
        if planned_for is None
        else f"for {planned_for}"
    )
    raise UsageError(
        f"--plan {plan_file} was made {made}, and you are {caller}",
        hint=f"plan again as yourself: backfillctl plan PATHS --as {caller} --out FILE",
    )


def require_actor(specs: Specs, actor: str | None, command: str) -> None:
    """A Config with requireActor (a team's shared store) makes the actor mandatory."""
    if actor is None and specs.config.require_actor:
        raise UsageError(
            f"{command} needs an actor: the Config sets requireActor",
            hint="pass --as USER, or set $BACKFILLCTL_ACTOR",
        )


def changes(
    prepared: Prepared,
    store: PlanStore | None,
    *,
    at: float,
    prune: bool = False,
    only: Collection[str] | None = None,
) -> reconcile.Changes:
    """What applying `prepared` changes in `store` (all new without a store); `only`
    narrows the plan (and the changes) to these Backfills."""
    plan = prepared.plan
    only = prepared.only if only is None else only
    if only is not None:
        plan = replace(plan, backfills=tuple(bp for bp in plan.backfills if bp.name in only))
    wanted = reconcile.desired(prepared.specs, plan, prepared.actor, at)
    if store is None:
        return reconcile.Changes(
            [
                reconcile.BackfillChanges(d.record.name, "new", d.record, list(d.instances))
                for d in wanted
            ]
        )
    found = reconcile.diff(wanted, store, prune=prune)
    if only is not None:
        found = reconcile.Changes([c for c in found.backfills if c.name in only])
    if prepared.actor is not None:
        guard = ApplyGuard(store, prepared.actor, prepared.specs.catalog())
        for c in found.backfills:
            c.refused = guard.refusal(c)
    return found


def apply(
    prepared: Prepared,
    store: PlanStore,
    *,
    at: float,
    actor: str,
    origin: str = "apply",
    prune: bool = False,
    only: Collection[str] | None = None,
    tries: int = 3,
) -> reconcile.Changes:
    """`changes` written (`commit`): what was changed. Another apply that stored the same
    instances between this one's read and its write (StoreConflict: nothing of this one
    was written) makes it read the store again, `tries` times in all. Changes the actor
    may not make (`Changes.refused`) are returned unwritten, with nothing else written;
    without an actor, changing a backfill applied under `requireActor` is a UsageError
    (whatever the Config of this checkout says)."""
    for left in range(tries - 1, -1, -1):
        found = changes(prepared, store, at=at, prune=prune, only=only)
        if prepared.actor is None:  # what was applied under requireActor asks who this is
            Guard(store, None).require_actor(c.name for c in found.backfills if not c.empty)
        if found.refused:
            return found
        try:
            commit(prepared, store, found, at=at, actor=actor, origin=origin)
        except StoreConflict:
            if not left:
                raise
            continue
        return found
    raise AssertionError("tries must be at least 1")


def commit(
    prepared: Prepared,
    store: PlanStore,
    found: reconcile.Changes,
    *,
    at: float,
    actor: str,
    origin: str = "apply",
) -> None:
    """Write `found` (from `changes`) into the store, as `actor`; nothing when empty or
    when the actor may not make some of it (`Changes.refused`)."""
    if not found.empty and not found.refused:
        reconcile.apply(store, found, prepared.specs, at=at, actor=actor, origin=origin)
