"""stop, rerun, set-success, freeze, unfreeze, delete: operators steering instances.

Each checks the actor's permission on the nodes it touches against what the store
recorded at apply time (access.py): an instance of a node the actor may not operate is
refused and named with who may (exit 1); `stop backfill/NAME` and `delete` need every
node the backfill runs. Without an actor nothing is checked, unless the backfill was
applied under a Config with `requireActor`: then the actor is a usage error (exit 2).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from backfill_ctl.cli.console import err, out
from backfill_ctl.cli.options import ActorOpt, resolve_actor
from backfill_ctl.cli.state import StateFileOpt, open_state, who
from backfill_ctl.core.records import NOT_STARTED, STATES, InstanceRecord
from backfill_ctl.errors import UsageError
from backfill_ctl.state import StateStore
from backfill_ctl.usecases.access import Guard
from backfill_ctl.usecases.operations import RULES, operate

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


def _targets(
    store: StateStore,
    ids: list[str],
    backfill: str | None,
    node: str | None,
    bizdate: str | None,
    in_state: str | None,
) -> list[InstanceRecord]:
    if in_state is not None and in_state not in STATES:
        raise UsageError(f"unknown state {in_state!r}", hint=f"use one of {', '.join(STATES)}")
    wanted = [i.removeprefix("instance/") for i in ids]
    if not wanted and backfill is None:
        raise UsageError("no instances named", hint="pass instance ids, or --backfill NAME")
    if backfill is not None and store.backfill(backfill) is None:
        raise UsageError(
            f"no backfill {backfill!r} in {store.path}", hint="backfillctl get backfills lists them"
        )
    found = store.instances(
        ids=wanted or None,
        backfill=backfill,
        node=node,
        bizdate=bizdate,
        states=[in_state] if in_state else None,
    )
    missing = set(wanted) - {i.id for i in found}
    if missing:
        raise UsageError(
            f"no instance {', '.join(sorted(missing))} in {store.path}",
            hint="backfillctl get instances lists them",
        )
    if not found:
        raise UsageError("no instance matches", hint="loosen the filters")
    return found


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
    targets = _targets(store, ids or [], backfill, node, bizdate, in_state)
    guard = Guard(store, resolve_actor(actor))
    guard.require_actor(i.backfill for i in targets)
    result = operate(
        store,
        name,
        targets,
        actor=who(guard.actor),
        at=time.time(),
        with_descendants=descendants,
        guard=guard,
    )
    for i in result.done:
        out(f"instance/{i} {RULES[name].says}")
    for i, why in result.refused:
        err(f"instance/{i}: {why}")
    if result.refused:
        raise typer.Exit(1)


def stop_command(
    targets: TargetsArg = None,
    backfill: BackfillOpt = None,
    node: NodeOpt = None,
    bizdate: BizdateOpt = None,
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Stop running instances (they fail); `stop backfill/NAME` also starts nothing new
    in that backfill until an instance of it is rerun."""
    names = [t.removeprefix("backfill/") for t in targets or [] if t.startswith("backfill/")]
    rest = [t for t in targets or [] if not t.startswith("backfill/")]
    if names:
        store = open_state(state)
        guard = Guard(store, resolve_actor(actor))
        actor_ = who(guard.actor)
        for name in names:
            if store.backfill(name) is None:
                raise UsageError(f"no backfill {name!r} in {store.path}")
        guard.require_actor(names)
        denied = [(n, why) for n in names if (why := guard.backfill_refusal("stop", n))]
        for name, why in denied:
            err(f"backfill/{name}: {why}")
        if denied:
            raise typer.Exit(1)
        for name in names:
            store.update_backfill(
                name,
                at=time.time(),
                actor=actor_,
                origin="cli",
                event=f"stopped by {actor_}",
                status="stopped",
            )
            running = store.instances(backfill=name, states=["running"])
            if running:
                operate(store, "stop", running, actor=actor_, at=time.time(), guard=guard)
            out(f"backfill/{name} stopped ({len(running)} running instance(s) stopping)")
        if not rest and backfill is None:
            return
    _run("stop", rest, backfill, node, bizdate, "running" if backfill else None, actor, state)


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
    dependencies; --descendants reruns what depends on them, in order)."""
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
    """Mark instances succeeded without running them (not while they run)."""
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
    """Pause pending or failed instances; what depends on them stays blocked."""
    _run("freeze", targets, backfill, node, bizdate, in_state, actor, state)


def unfreeze_command(
    targets: TargetsArg = None,
    backfill: BackfillOpt = None,
    node: NodeOpt = None,
    bizdate: BizdateOpt = None,
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Let frozen instances be scheduled again."""
    _run("unfreeze", targets, backfill, node, bizdate, "frozen" if backfill else None, actor, state)


def delete_command(
    target: Annotated[str, typer.Argument(help="backfill/NAME")],
    actor: ActorOpt = None,
    state: StateFileOpt = None,
) -> None:
    """Delete a backfill: its instances that have not started are cancelled; refused
    while any runs. Applying its spec again brings it back."""
    if not target.startswith("backfill/"):
        raise UsageError(
            f"delete takes backfill/NAME, not {target!r}",
            hint="instances cannot be deleted; freeze them instead",
        )
    name = target.removeprefix("backfill/")
    store = open_state(state)
    if store.backfill(name) is None:
        raise UsageError(f"no backfill {name!r} in {store.path}")
    guard = Guard(store, resolve_actor(actor))
    guard.require_actor([name])
    denied = guard.backfill_refusal("delete", name)
    if denied:
        err(f"backfill/{name}: {denied}")
        raise typer.Exit(1)
    running = store.instances(backfill=name, states=["running"])
    if running:
        raise UsageError(
            f"backfill/{name} has {len(running)} running instance(s)",
            hint=f"stop it first: backfillctl stop backfill/{name}",
        )
    actor_ = who(guard.actor)
    waiting = [i.id for i in store.instances(backfill=name, states=NOT_STARTED)]
    store.transition(
        waiting,
        "cancelled",
        allowed=NOT_STARTED,
        at=time.time(),
        actor=actor_,
        origin="cli",
        reason=f"backfill deleted by {actor_}",
        kind="delete",
        finished_at=time.time(),  # gc ages it from here
    )
    store.update_backfill(
        name,
        at=time.time(),
        actor=actor_,
        origin="cli",
        event=f"deleted by {actor_}",
        status="deleted",
    )
    out(f"backfill/{name} deleted ({len(waiting)} instance(s) cancelled)")
