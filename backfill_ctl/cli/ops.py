"""stop, rerun, set-success, freeze, unfreeze, delete: operators steering instances.

Each checks the actor's permission on the nodes it touches against what the store
recorded at apply time (access.py): an instance of a node the actor may not operate is
refused and named with who may; `stop backfill/NAME`, `resume` and `delete` need every
node the backfill runs. Without an actor nothing is checked, unless the backfill was
applied under a Config with `requireActor`: then the actor is a usage error (exit 2).

Exit 1 is a refusal: of an object as it stands (an instance in another state, or of a
deleted or collected backfill, which only `stop` may still end; a backfill not stopped
or deleted, one with a running instance, one deleted already) or of the actor, each
named with the reason. Exit 2 is input that cannot be used: a bad target
or filter, an unknown instance or backfill, no actor where one is required.
The rules live in usecases/operations.py and usecases/backfill_ops.py; here the
options are parsed and the outcome printed.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from backfill_ctl.cli.console import err, out
from backfill_ctl.cli.options import ActorOpt, check_bizdate, resolve_actor
from backfill_ctl.cli.state import StateFileOpt, open_state, who
from backfill_ctl.errors import UsageError
from backfill_ctl.usecases import backfill_ops, force_stop
from backfill_ctl.usecases.access import Guard
from backfill_ctl.usecases.operations import RULES, Selection, run

TargetsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Instance ids (or instance/ID); stop and delete also take backfill/NAME.",
        show_default=False,
    ),
]
BackfillOpt = Annotated[
    str | None,
    typer.Option("--backfill", help="All instances of this backfill (narrowed by the filters)."),
]
NodeOpt = Annotated[str | None, typer.Option("--node", help="Only this node's instances.")]
BizdateOpt = Annotated[
    str | None, typer.Option("--bizdate", help="Only this business date (YYYY-MM-DD).")
]
StateFilterOpt = Annotated[
    str | None, typer.Option("--state", help="Only instances in this state.")
]


def _run(
    name: str,
    ids: list[str] | None,
    backfill: str | None,
    node: str | None,
    bizdate: str | None,
    in_state: str | None,
    actor: str | None,
    state: str | None,
    descendants: bool = False,
) -> None:
    store = open_state(state)
    check_bizdate(bizdate)
    result = run(
        store,
        name,
        Selection(ids or [], backfill, node, bizdate, in_state),
        actor=resolve_actor(actor),
        by=who,
        at=time.time(),
        with_descendants=descendants,
    )
    for i in result.done:
        out(f"instance/{i} {RULES[name].says}")
    for i, why in result.refused:
        err(f"instance/{i}: {why}")
    if result.refused:
        raise typer.Exit(1)


ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Declare ended an attempt that runs where the controller cannot reach it, "
        "whose host or container is gone with it (recorded lost, without waiting for its "
        "processes); refused where the controller sees them.",
    ),
]


def stop_command(
    targets: TargetsArg = None,
    backfill: BackfillOpt = None,
    node: NodeOpt = None,
    bizdate: BizdateOpt = None,
    force: ForceOpt = False,
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Stop running instances (they fail); `stop backfill/NAME` also starts nothing new
    in that backfill until it is resumed (`resume backfill/NAME`) or an instance rerun.

    \b
    Examples:
      backfillctl stop ID                                  # its attempt is killed; it fails
      backfillctl stop backfill/fix-orders-2024-03         # and start nothing new in it
      backfillctl stop --backfill fix-orders-2024-03 --node dwd_orders
      backfillctl stop ID --force                          # its host is gone: record it lost
    """
    names = list(
        dict.fromkeys(
            t.removeprefix("backfill/") for t in targets or [] if t.startswith("backfill/")
        )
    )
    rest = [t for t in targets or [] if not t.startswith("backfill/")]
    if force:
        _force(names, rest, backfill, node, bizdate, actor, state)
        return
    if names:
        store = open_state(state)
        guard = Guard(store, resolve_actor(actor))
        by = who(guard.actor)
        denied = backfill_ops.refusals(store, guard, names)
        for refusal in denied:
            err(f"backfill/{refusal.name}: {refusal.refused}")
        if denied:
            raise typer.Exit(1)
        for name in names:
            done = backfill_ops.stop_backfill(store, name, guard=guard, by=by, clock=time.time)
            out(f"backfill/{name} stopped ({done.count} running instance(s) stopping)")
        if not rest and backfill is None:
            return
    _run("stop", rest, backfill, node, bizdate, "running" if backfill else None, actor, state)


def _force(
    names: list[str],
    ids: list[str],
    backfill: str | None,
    node: str | None,
    bizdate: str | None,
    actor: str | None,
    state: str | None,
) -> None:
    """`stop --force` of instances (usecases/force_stop.py)."""
    if names:
        raise UsageError(
            f"stop --force takes instances, not backfill/{names[0]}",
            hint=f"stop backfill/{names[0]}, then stop --force --backfill {names[0]} the "
            "instances the controller cannot reach",
        )
    selection = Selection(ids, backfill, node, bizdate, "running" if backfill else None)
    store = open_state(state)
    result = force_stop.run(store, selection, actor=resolve_actor(actor), by=who, at=time.time())
    for i in result.done:
        out(f"instance/{i} stop requested (--force)")
    for i, why in result.refused:
        err(f"instance/{i}: {why}")
    if result.refused:
        raise typer.Exit(1)


def rerun_command(
    targets: TargetsArg = None,
    backfill: BackfillOpt = None,
    node: NodeOpt = None,
    bizdate: BizdateOpt = None,
    in_state: StateFilterOpt = None,
    descendants: Annotated[
        bool,
        typer.Option(
            "--descendants", help="Also rerun the instances that depend on them, after them."
        ),
    ] = False,
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Run succeeded or failed instances again (several at once ignore their mutual
    dependencies; --descendants reruns what depends on them, in order).

    \b
    Examples:
      backfillctl rerun --backfill fix-orders-2024-03 --state failed
      backfillctl rerun ID --descendants                   # and what depends on it, after it
      backfillctl rerun --backfill dw-rebuild-2024-01 --bizdate 2024-01-31 --as oncall
    """
    _run("rerun", targets, backfill, node, bizdate, in_state, actor, state, descendants)


def set_success_command(
    targets: TargetsArg = None,
    backfill: BackfillOpt = None,
    node: NodeOpt = None,
    bizdate: BizdateOpt = None,
    in_state: StateFilterOpt = None,
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Mark instances succeeded without running them (not while they run).

    \b
    Examples:
      backfillctl set-success ID                           # what depends on it may start
      backfillctl set-success --backfill fix-orders-2024-03 --node ads_finance_monthly
      backfillctl set-success --backfill fix-orders-2024-03 --state failed --as oncall
    """
    _run("set-success", targets, backfill, node, bizdate, in_state, actor, state)


def freeze_command(
    targets: TargetsArg = None,
    backfill: BackfillOpt = None,
    node: NodeOpt = None,
    bizdate: BizdateOpt = None,
    in_state: StateFilterOpt = None,
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Pause pending or failed instances; what depends on them stays blocked.

    \b
    Examples:
      backfillctl freeze ID
      backfillctl freeze --backfill dw-rebuild-2024-01 --bizdate 2024-01-30
      backfillctl freeze --backfill fix-orders-2024-03 --node dwd_orders --state failed
    """
    _run("freeze", targets, backfill, node, bizdate, in_state, actor, state)


def unfreeze_command(
    targets: TargetsArg = None,
    backfill: BackfillOpt = None,
    node: NodeOpt = None,
    bizdate: BizdateOpt = None,
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Let frozen instances be scheduled again.

    \b
    Examples:
      backfillctl unfreeze ID
      backfillctl unfreeze --backfill dw-rebuild-2024-01   # every frozen instance of it
      backfillctl unfreeze --backfill dw-rebuild-2024-01 --bizdate 2024-01-30
    """
    _run("unfreeze", targets, backfill, node, bizdate, "frozen" if backfill else None, actor, state)


def delete_command(
    target: Annotated[str, typer.Argument(help="backfill/NAME")],
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Delete a backfill: its instances that have not started are cancelled; refused
    while any runs, or when it is deleted already. Applying its spec again brings it back.

    \b
    Examples:
      backfillctl delete backfill/clicks-late-data         # when none of it runs
      backfillctl stop backfill/clicks-late-data           # else stop it first, then delete
    """
    if not target.startswith("backfill/"):
        raise UsageError(
            f"delete takes backfill/NAME, not {target!r}",
            hint="instances cannot be deleted; freeze them instead",
        )
    name = target.removeprefix("backfill/")
    store = open_state(state)
    done = backfill_ops.delete_backfill(
        store, name, actor=resolve_actor(actor), by=who, clock=time.time
    )
    if done.refused:
        err(f"backfill/{name}: {done.refused}")
        raise typer.Exit(1)
    out(f"backfill/{name} deleted ({done.count} instance(s) cancelled)")


def resume_command(
    targets: Annotated[
        list[str], typer.Argument(metavar="backfill/NAME", help="The stopped backfills.")
    ],
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Start a stopped backfill again (as `argo resume`): the controller starts what
    waits in it; the instances the stop killed stay failed (rerun them). Refused when it
    is not stopped; needs every node it runs, as `stop backfill/NAME` does.

    \b
    Examples:
      backfillctl resume backfill/fix-orders-2024-03
    """
    wrong = [t for t in targets if not t.startswith("backfill/")]
    if wrong:
        raise UsageError(
            f"resume takes backfill/NAME, not {wrong[0]!r}",
            hint="an instance runs again with rerun (finished) or unfreeze (frozen)",
        )
    names = list(dict.fromkeys(t.removeprefix("backfill/") for t in targets))
    store = open_state(state)
    guard = Guard(store, resolve_actor(actor))
    denied = backfill_ops.refusals(store, guard, names, "resume")
    for refusal in denied:
        err(f"backfill/{refusal.name}: {refusal.refused}")
    if denied:
        raise typer.Exit(1)
    raced = False
    for name in names:
        done = backfill_ops.resume_backfill(store, name, by=who(guard.actor), clock=time.time)
        if done.refused:  # it changed since it was checked
            err(f"backfill/{name}: {done.refused}")
            raced = True
        else:
            out(f"backfill/{name} resumed")
    if raced:
        raise typer.Exit(1)
