"""`backfillctl apply PATHS` and `backfillctl diff PATHS`: the specs into the state store.

Who applies (DESIGN §7): the caller, `--as`, else $BACKFILLCTL_ACTOR, else
$GITHUB_ACTOR; never a field of a file. `apply` checks the caller's permissions as
`plan` does; without a caller nothing is checked, unless the Config sets
`requireActor` (a team's shared store), which makes the caller mandatory.
Cancelling or changing what the store holds of nodes the caller may not operate, and
pruning a backfill the caller could not delete, is refused with nothing written (exit 1;
`diff` says so and exits 2): see usecases/access.py, `ApplyGuard`.

`apply --plan FILE` applies a plan saved by `plan --out` exactly, and refuses (exit 2):
- a plan whose seal does not match its content (any field edited, added or removed; a
  plan saved before plans were sealed): the seal covers everything apply uses from it,
  the specs' digest, `now`, `actor` and the instances;
- a plan saved for another actor than the caller, including one saved without an actor
  (its permissions were never checked) applied by a caller who has one, and one saved
  for an actor applied without one: a plan is bound to the identity it was checked for;
- a stale plan: the specs changed since, or they no longer plan the same instances.
A plan saved of some Backfills (`plan -b NAME --out`) applies those only (with `--prune`,
which would change the others, it is refused).
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.cli.conflicts import refuse
from backfill_ctl.cli.console import err, out, print_diagnostics, shown
from backfill_ctl.cli.options import (
    ActorOpt,
    NowOpt,
    PathsArg,
    resolve_actor,
    resolve_now,
    run_clock,
)
from backfill_ctl.cli.state import StateOpt, existing_state, open_state, spec_root, who
from backfill_ctl.errors import BackfillError, UsageError
from backfill_ctl.usecases import apply as applying

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.backends import Backend
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state import StateStore
    from backfill_ctl.usecases.reconcile import Changes


PruneOpt = Annotated[
    bool,
    typer.Option(
        "--prune",
        help="Cancel the not-started instances of Backfills that are no longer in the specs.",
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
]
PlanFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        help="Apply exactly this saved plan (plan --out); refuse it if stale.",
        show_default=False,
    ),
]
WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait", help="Run the backfills (or follow the running controller) until they finish."
    ),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        help="With --wait: give up after this long (like 90s, 30m, 2h), exit 1.",
        show_default=False,
    ),
]
_DRY_WAIT = "drop --wait to see the changes, or --dry-run to apply and run them"


# shape: over 60 lines only by its docstring, which is --help (with its Examples)
def apply_command(
    paths: PathsArg,
    prune: PruneOpt = False,
    dry_run: DryRunOpt = False,
    plan_file: PlanFileOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    now: NowOpt = None,
    actor: ActorOpt = None,
    state: StateOpt = None,
) -> None:
    """Make the state store hold what the specs plan: create new instances, update those
    that have not started, cancel those no longer wanted that have not started, and keep
    (and report) those that have. Error findings of check block it.

    Exit 0 when applied (and, with --wait, all succeeded), 1 on findings, changes refused
    or a failed backfill, 2 when the input cannot be used, 130 when interrupted (Ctrl-C;
    SIGTERM too with --wait: running attempts go on for the next controller); once the
    specs are applied, an interruption says so.
    With --wait, a state store away for a while is waited for (10 min at most: exit 2).

    \b
    Examples:
      backfillctl apply specs/ --as oncall --dry-run      # what would change
      backfillctl apply specs/ --as oncall --wait --timeout 2h
      backfillctl apply specs/ --as oncall --plan plan.json   # exactly a saved plan
      backfillctl apply specs/ --as oncall --prune        # also cancel removed Backfills
    """
    if dry_run and wait:
        raise refuse("--dry-run", "--wait", "a dry run applies nothing to wait for", _DRY_WAIT)
    seconds = _timeout(timeout, wait)
    planned_at = resolve_now(now)
    prepared = applying.prepare(paths, planned_at, resolve_actor(actor), plan_file)
    specs = prepared.specs
    if prune and prepared.only is not None:
        raise UsageError(
            f"--plan {plan_file} holds some of the specs' Backfills "
            f"({', '.join(prepared.only)}): --prune would change the others",
            hint="apply the plan without --prune, or save a plan of every Backfill",
        )
    if not dry_run:
        applying.require_actor(specs, prepared.actor, "apply")
    if prepared.failed:
        from backfill_ctl.reports.check_text import refusal  # (risks.compare: a refusal only)

        print_diagnostics(prepared.errors, code=True)
        err(refusal("apply", prepared.errors))
        raise typer.Exit(1)
    print_diagnostics(prepared.warnings, code=True)
    if dry_run:  # before the first apply too, as diff: nothing is created
        store = existing_state(state, specs)
        found = applying.changes(prepared, store, at=time.time(), prune=prune)
        _show(found)
        _refuse(found, 1)
        return
    store = open_state(state, specs, create=True)
    backend = _ready_backend(store, specs, spec_root(specs, paths)) if wait else None
    actor = who(prepared.actor)
    try:
        changes = applying.apply(prepared, store, at=time.time(), actor=actor, prune=prune)
        _refuse(changes, 1)
    except BaseException:  # refused, or failed: no waiting, and the backend is let go
        if backend is not None:
            backend.close()
        raise
    hint = _applied(prepared.plan.digest, prepared.names)
    try:  # committed: whatever ends it now says that the specs were applied
        _show(changes, None, done=True)
        out(changes.summary(done=True) + f" Plan digest {prepared.plan.digest[:19]}.")
        sys.stdout.flush()  # (a slow reader: Ctrl-C while it is written is said below)
        if backend is not None:
            from backfill_ctl.cli.waiting import wait_for

            if not wait_for(store, prepared.names, specs, backend, seconds, run_clock(planned_at)):
                raise typer.Exit(1)
    except BackfillError as exc:  # its hint speaks of the call that failed, not of apply
        exc.hint = hint
        raise
    except KeyboardInterrupt:
        err(f"interrupted after apply committed: {changes.summary(done=True)}")
        err(f"  hint: {hint}")
        raise typer.Exit(130) from None
    finally:
        if backend is not None:
            backend.close()


def _refuse(changes: Changes, code: int) -> None:
    """Say which changes the actor may not make (nothing was, or would be, written) and
    exit with `code`; nothing when there are none."""
    if not changes.refused:
        return
    sys.stdout.flush()
    for name, why in changes.refused:
        err(f"error: backfill/{name}: {why}")
    pruned = any(why.startswith("cannot prune") for _, why in changes.refused)
    err(
        "  hint: apply it as one who may, or leave what is stored as it is "
        f"({'apply without --prune; ' if pruned else ''}backfillctl diff shows what would "
        "change)"
    )
    raise typer.Exit(code)


def _applied(digest: str, names: Sequence[str]) -> str:
    """The hint of an error after the specs were applied: what was done, what is next."""
    targets = " ".join(f"backfill/{n}" for n in names)
    follow = f"; backfillctl wait {targets} --for=condition=Succeeded follows them"
    return (
        f"the specs were applied (plan digest {digest[:19]}): the backfills go on whenever a "
        "controller runs (backfillctl controller, or apply --wait again, which applies "
        f"nothing more){follow if names else ''}"
    )


def _ready_backend(store: StateStore, specs: Specs, root: str) -> Backend:
    """The backend `--wait` runs on, in this checkout (`root`): one that cannot run
    anything is said before applying."""
    from backfill_ctl.cli.backend import require_ready
    from backfill_ctl.cli.state import backend_for

    backend = backend_for(specs.config.backend, store, specs.config, supervise=True, root=root)
    try:
        require_ready(backend)
    except BaseException:
        backend.close()
        raise
    return backend


def _timeout(text: str | None, wait: bool) -> float | None:
    if text is None:
        return None
    if not wait:
        raise UsageError("--timeout is only for --wait", hint="add --wait, or drop --timeout")
    from backfill_ctl.cli.durations import seconds_of

    return seconds_of("--timeout", text)


class DiffFormat(StrEnum):
    text = "text"
    json = "json"


def _show(
    changes: Changes, fmt: DiffFormat | None = DiffFormat.text, *, done: bool = False
) -> None:
    """What changes (`fmt` None: the lines only, the caller says the summary)."""
    from backfill_ctl.reports import diff as report

    if fmt is DiffFormat.json:
        import json

        out(json.dumps(report.document(changes), indent=2, ensure_ascii=False))
        return
    for line in report.lines(changes):
        out(shown(line))
    if fmt is not None:
        out(changes.summary(done=done))


def diff_command(
    paths: PathsArg,
    prune: Annotated[
        bool, typer.Option("--prune", help="Count what --prune would cancel.")
    ] = False,
    output: Annotated[
        DiffFormat,
        typer.Option(
            "--output", "-o", help="Output format: text, or json (every change, for tools)."
        ),
    ] = DiffFormat.text,
    now: NowOpt = None,
    actor: ActorOpt = None,
    state: StateOpt = None,
) -> None:
    """What apply would change, field by field. Exit 0: nothing; 1: changes; 2 or more:
    an error.

    \b
    Examples:
      backfillctl diff specs/                     # what changes, field by field
      backfillctl diff specs/ --prune             # also what removed Backfills cancel
      backfillctl diff specs/ -o json             # every change, as data
    """
    prepared = applying.prepare(paths, resolve_now(now), resolve_actor(actor))
    specs = prepared.specs
    if prepared.failed:
        print_diagnostics(prepared.errors, code=True)
        raise typer.Exit(2)
    store = existing_state(state, specs)
    changes = applying.changes(prepared, store, at=time.time(), prune=prune)
    _show(changes, output, done=False)
    sys.stdout.flush()
    _refuse(changes, 2)
    if not changes.empty:
        raise typer.Exit(1)
