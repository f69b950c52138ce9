"""`backfillctl apply PATHS` and `backfillctl diff PATHS`: the specs into the state store.

Who applies (DESIGN §7): the caller, `--as`, else $BACKFILLCTL_ACTOR, else
$GITHUB_ACTOR; never a field of a file. `apply` checks the caller's permissions as
`plan` does; without a caller nothing is checked, unless the Config sets
`requireActor` (a team's shared store), which makes the caller mandatory.

`apply --plan FILE` applies a plan saved by `plan --out` exactly, and refuses (exit 2):
- a plan whose seal does not match its content (any field edited, added or removed; a
  plan saved before plans were sealed): the seal covers everything apply uses from it,
  the specs' digest, `now`, `actor` and the instances;
- a plan saved for another actor than the caller, including one saved without an actor
  (its permissions were never checked) applied by a caller who has one, and one saved
  for an actor applied without one: a plan is bound to the identity it was checked for;
- a stale plan: the specs changed since, or they no longer plan the same instances.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from backfill_ctl.cli.console import err, out, print_diagnostics
from backfill_ctl.cli.options import (
    ActorOpt,
    NowOpt,
    PathsArg,
    resolve_actor,
    resolve_now,
    run_clock,
)
from backfill_ctl.cli.state import StateOpt, open_state, spec_root, who
from backfill_ctl.errors import UsageError
from backfill_ctl.spec.loader import load_specs
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.check import run_check
from backfill_ctl.usecases.policies import with_policies

if TYPE_CHECKING:
    from datetime import datetime

    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.usecases.check import CheckResult


def _read_plan(plan_file: Path) -> dict[str, Any]:
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


def _bind(plan_file: Path, planned_for: object, caller: str | None) -> None:
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


def _prepare(
    paths: list[str], now: datetime, actor: str | None, plan_file: Path | None
) -> tuple[Specs, CheckResult, str | None]:
    """Load, check and plan; with a saved plan, re-plan it exactly and refuse a stale one,
    an edited one, and one made for another actor."""
    specs = load_specs(paths)
    saved: dict[str, Any] | None = None
    if plan_file is not None:
        saved = _read_plan(plan_file)
        _bind(plan_file, saved.get("actor"), actor)
        if saved.get("digest") != specs.digest():
            raise UsageError(
                f"--plan {plan_file} is stale: the specs changed since it was saved",
                hint="plan again, review, and apply the new plan",
            )
        from datetime import datetime as dt

        try:
            now = dt.fromisoformat(saved["now"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"--plan {plan_file}: not a saved plan (no valid now)",
                hint="save one with backfillctl plan --out FILE",
            ) from exc
    result = with_policies(specs, run_check(specs, now, actor))
    if saved is not None:
        want = [
            i.get("id") if isinstance(i, dict) else None
            for bp in saved["backfills"]
            for i in bp["instances"]
        ]
        have = [i.id for bp in result.plan.backfills for i in bp.instances]
        if want != have:
            raise UsageError(
                f"--plan {plan_file} does not match what the specs plan now",
                hint="plan again with the same backfillctl version",
            )
    return specs, result, actor


def apply_command(
    paths: PathsArg,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Cancel the not-started instances of Backfills that are no longer in the specs.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Apply exactly this saved plan (plan --out); refuse it if stale.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Run the backfills (or follow the running controller) until they finish."
        ),
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            help="With --wait: give up after this long (like 90s, 30m, 2h), exit 1.",
            show_default=False,
        ),
    ] = None,
    now: NowOpt = None,
    actor: ActorOpt = None,
    state: StateOpt = None,
) -> None:
    """Make the state store hold what the specs plan: create new instances, update those
    that have not started, cancel those no longer wanted that have not started, and keep
    (and report) those that have. Error findings of check block it.

    Exit 0 when applied (and, with --wait, all succeeded), 1 on findings, changes refused
    or a failed backfill, 2 when the input cannot be used.
    """
    seconds = _timeout(timeout, wait)
    planned_at = resolve_now(now)
    specs, result, who_ = _prepare(paths, planned_at, resolve_actor(actor), plan_file)
    if not dry_run:
        require_actor(specs, who_, "apply")
    if result.failed:
        print_diagnostics([f for f in result.findings if f.is_error], code=True)
        err(
            f"apply refused: {sum(1 for f in result.findings if f.is_error)} error "
            "finding(s) (a Backfill may accept its risks with checks.stopOnRisk: false)"
        )
        raise typer.Exit(1)
    print_diagnostics([f for f in result.findings if not f.is_error], code=True)
    store = open_state(state, specs, create=not dry_run)
    backend = None
    if wait and not dry_run:  # a backend that cannot run anything: say so before applying
        from backfill_ctl.cli.backend import require_ready
        from backfill_ctl.cli.state import backend_for

        backend = backend_for(specs.config.backend, store, specs.config, supervise=True)
        try:
            require_ready(backend)
        except BaseException:
            backend.close()
            raise
    at = time.time()
    wanted = reconcile.desired(specs, result.plan, spec_root(specs, paths), who_, at)
    changes = reconcile.diff(wanted, store, prune=prune)
    for line in reconcile.render(changes):
        out(line)
    if dry_run:
        out(changes.summary(done=False))
        return
    if not changes.empty:
        reconcile.apply(store, changes, specs, at=at, actor=who(who_), origin="apply")
    out(changes.summary(done=True) + f" Plan digest {result.plan.digest[:19]}.")
    if backend is not None:
        from backfill_ctl.cli.waiting import wait_for

        names = [bp.name for bp in result.plan.backfills]
        try:
            succeeded = wait_for(store, names, specs, backend, seconds, run_clock(planned_at))
        finally:
            backend.close()
        if not succeeded:
            raise typer.Exit(1)


def _timeout(text: str | None, wait: bool) -> float | None:
    if text is None:
        return None
    if not wait:
        raise UsageError("--timeout is only for --wait", hint="add --wait, or drop --timeout")
    from backfill_ctl.spec.build import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None


def diff_command(
    paths: PathsArg,
    prune: Annotated[
        bool, typer.Option("--prune", help="Count what --prune would cancel.")
    ] = False,
    now: NowOpt = None,
    actor: ActorOpt = None,
    state: StateOpt = None,
) -> None:
    """What apply would change. Exit 0: nothing; 1: changes; 2 or more: an error."""
    specs, result, who_ = _prepare(paths, resolve_now(now), resolve_actor(actor), None)
    if result.failed:
        print_diagnostics([f for f in result.findings if f.is_error], code=True)
        raise typer.Exit(2)
    store = open_state(state, specs, create=False) if _exists(state, specs) else None
    wanted = reconcile.desired(specs, result.plan, spec_root(specs, paths), who_, time.time())
    changes = (
        reconcile.diff(wanted, store, prune=prune)
        if store
        else reconcile.Changes(
            [
                reconcile.BackfillChanges(d.record.name, "new", d.record, list(d.instances))
                for d in wanted
            ]
        )
    )
    for line in reconcile.render(changes):
        out(line)
    out(changes.summary(done=False))
    sys.stdout.flush()
    if not changes.empty:
        raise typer.Exit(1)


def _exists(flag: str | None, specs: Specs) -> bool:
    from backfill_ctl.cli.state import state_file

    return state_file(flag, specs).exists()
