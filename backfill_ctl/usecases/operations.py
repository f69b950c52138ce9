"""Operations on instances and backfills, with the rules of the reference (DESIGN §7).

| operation   | applies to                          | becomes                                |
|-------------|-------------------------------------|----------------------------------------|
| stop        | running                             | failed (the controller kills it)       |
| rerun       | succeeded, failed                   | pending, tries restored                |
| set-success | pending, waiting-*, failed, frozen  | succeeded                              |
| freeze      | pending, failed                     | frozen (dependents stay blocked)       |
| unfreeze    | frozen                              | pending                                |

Rerunning several instances at once ignores their mutual dependencies (they start
together, as the reference says); `rerun --descendants` reruns an instance first and
then its descendants in dependency order. Every operation is one transaction of guarded
transitions in the store: an instance that changed state meanwhile is refused, not
trampled, and a delete of its backfill waits for it. A finished backfill whose
instances an operation changed is reopened (the controller decides its outcome again),
and a stopped one resumed unless the operation is a stop.

With a `Guard` (access.py), an instance of a node the actor may not operate is refused
with who may, like an instance in the wrong state; `--descendants` are checked too.

An instance of a deleted or collected backfill is refused (`gone_refusal`) by every
operation but `stop`: no controller loads such a backfill, so a rerun, an unfreeze or a
set-success would change what `get` shows and run nothing (its spec applied again brings
it back). A stop still applies: an instance `apply --prune` kept running is watched by
the controller until it ends, and a stop is the one way to end it sooner.

`run` is the whole verb: the instances a `Selection` names (a usage error when it names
none, or one the store does not hold), the actor's permission, then `operate`. The
operations on a whole backfill (`stop backfill/NAME`, `delete`) are in backfill_ops.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backfill_ctl.core.records import STATES
from backfill_ctl.errors import UsageError
from backfill_ctl.usecases.access import Guard

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backfill_ctl.core.records import InstanceRecord
    from backfill_ctl.state import OperationsStore


@dataclass(frozen=True)
class Rule:
    """The states an operation applies to, the state it leads to, and what it says."""

    allowed: frozenset[str]
    to: str
    says: str  # past tense, for messages

    def refusal(self, name: str, state: str) -> str:
        what = " or ".join(sorted(self.allowed))
        return f"cannot {name}: it is {state} ({name} applies to {what} instances)"


RULES: dict[str, Rule] = {
    "stop": Rule(frozenset({"running"}), "running", "stop requested"),
    "rerun": Rule(frozenset({"succeeded", "failed"}), "pending", "rerun"),
    "set-success": Rule(
        frozenset({"pending", "waiting-for-time", "waiting-for-resources", "failed", "frozen"}),
        "succeeded",
        "set to succeeded",
    ),
    "freeze": Rule(frozenset({"pending", "failed"}), "frozen", "frozen"),
    "unfreeze": Rule(frozenset({"frozen"}), "pending", "unfrozen"),
}


# A backfill gone from the running ones until its spec is applied again: what to do instead.
GONE = {
    "deleted": "apply its spec again to bring it back",
    "collected": "gc removed its instances: change its spec and apply it to run it again",
}


@dataclass(frozen=True)
class Result:
    """The instances an operation changed, and those it refused (with why)."""

    done: list[str]
    refused: list[tuple[str, str]]  # (instance id, why)


@dataclass(frozen=True)
class Selection:
    """The instances an operation names: ids (or instance/ID), else a backfill's,
    narrowed by node, business date and state."""

    ids: Sequence[str] = ()
    backfill: str | None = None
    node: str | None = None
    bizdate: str | None = None
    state: str | None = None


def select(store: OperationsStore, selection: Selection) -> list[InstanceRecord]:
    """The stored instances `selection` names; a UsageError when it names none, an
    unknown state or backfill, or an instance the store does not hold."""
    s = selection
    if s.state is not None and s.state not in STATES:
        raise UsageError(f"unknown state {s.state!r}", hint=f"use one of {', '.join(STATES)}")
    wanted = [i.removeprefix("instance/") for i in s.ids]
    if not wanted and s.backfill is None:
        raise UsageError("no instances named", hint="pass instance ids, or --backfill NAME")
    if s.backfill is not None and store.backfill(s.backfill) is None:
        raise UsageError(
            f"no backfill {s.backfill!r} in {store.path}",
            hint="backfillctl get backfills lists them",
        )
    found = store.instances(
        ids=wanted or None,
        backfill=s.backfill,
        node=s.node,
        bizdate=s.bizdate,
        states=[s.state] if s.state else None,
    )
    missing = set(wanted) - {i.id for i in found}
    if missing:
        _elsewhere(store, sorted(missing), s.backfill)
        raise UsageError(
            f"no instance {', '.join(sorted(missing))} in {store.path}",
            hint="backfillctl get instances lists them",
        )
    if not found:
        raise UsageError("no instance matches", hint="loosen the filters")
    return found


def _elsewhere(store: OperationsStore, ids: list[str], backfill: str | None) -> None:
    """Refuse an instance id named with a --backfill it does not belong to."""
    if backfill is None:
        return
    for i in store.instances(ids=ids):
        if i.backfill != backfill:
            raise mismatch(i.id, i.backfill, backfill)


def mismatch(iid: str, owner: str, given: str) -> UsageError:
    """The error for an instance id named with another backfill's --backfill."""
    return UsageError(
        f"instance {iid} belongs to backfill {owner}, not {given}: the instance id and "
        f"--backfill {given} contradict each other",
        hint=f"drop --backfill, or use --backfill {owner}",
    )


def run(
    store: OperationsStore,
    name: str,
    selection: Selection,
    *,
    actor: str | None,
    by: Callable[[str | None], str],
    at: float,
    with_descendants: bool = False,
) -> Result:
    """Operation `name` on the instances `selection` names, as `actor` (None: nothing is
    checked, unless a backfill requires an actor), recorded at `at` as done by
    `by(actor)` (asked only once the operation is allowed)."""
    targets = select(store, selection)
    guard = Guard(store, actor)
    guard.require_actor(i.backfill for i in targets)
    return operate(
        store,
        name,
        targets,
        actor=by(guard.actor),
        at=at,
        with_descendants=with_descendants,
        guard=guard,
    )


def descendants(store: OperationsStore, roots: Sequence[InstanceRecord]) -> list[InstanceRecord]:
    """The instances that depend on `roots`, directly or not, in the same backfills."""
    found: dict[str, InstanceRecord] = {}
    for backfill in {r.backfill for r in roots}:
        everyone = store.instances(backfill=backfill)
        children: dict[str, list[InstanceRecord]] = {}
        for i in everyone:
            for d in i.depends_on:
                children.setdefault(d, []).append(i)
        stack = [r.id for r in roots if r.backfill == backfill]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child.id not in found:
                    found[child.id] = child
                    stack.append(child.id)
    return [i for i in found.values() if i.id not in {r.id for r in roots}]


def operate(
    store: OperationsStore,
    name: str,
    targets: Sequence[InstanceRecord],
    *,
    actor: str,
    at: float,
    with_descendants: bool = False,
    guard: Guard | None = None,
) -> Result:
    """Operation `name` on `targets` (each refused, or moved by a guarded transition),
    in one transaction (a batch): what it checks of their backfills (permission, gone)
    stays true until its changes are made."""
    with store.batch():
        return _operate(store, name, targets, actor, at, with_descendants, guard)


def _operate(
    store: OperationsStore,
    name: str,
    targets: Sequence[InstanceRecord],
    actor: str,
    at: float,
    with_descendants: bool,
    guard: Guard | None,
) -> Result:
    rule = RULES[name]
    refused: list[tuple[str, str]] = []
    if guard is not None:
        targets, refused = guard.split(name, targets)
    targets, gone = _split_gone(store, name, targets)
    refused += gone
    refused += [(i.id, rule.refusal(name, i.state)) for i in targets if i.state not in rule.allowed]
    chosen = [i for i in targets if i.state in rule.allowed]
    reason = f"{rule.says} by {actor}"
    if name == "rerun":
        done, denied = _rerun_with(store, chosen, actor, at, with_descendants, guard)
        refused += denied
    else:
        kw: dict[str, object] = {}
        if name == "stop":
            kw = {"stop_requested": True}
        elif name == "set-success":
            kw = {"finished_at": at}
        done = store.transition(
            [i.id for i in chosen],
            rule.to,
            allowed=rule.allowed,
            at=at,
            actor=actor,
            origin="cli",
            reason=reason,
            kind=name,
            **kw,
        )
    raced = [
        (i.id, f"cannot {name}: its state changed meanwhile") for i in chosen if i.id not in done
    ]
    moved = set(done)
    _reopen(store, {i.backfill for i in targets if i.id in moved}, name, actor, at)
    return Result(done, refused + raced)


def gone_refusal(name: str, status: str) -> str | None:
    """Why operation `name` does not apply to an instance of a backfill whose status is
    `status` (see the module docstring), or None."""
    if name == "stop" or status not in GONE:
        return None
    return f"cannot {name}: its backfill is {status} ({GONE[status]})"


def _split_gone(
    store: OperationsStore, name: str, targets: Sequence[InstanceRecord]
) -> tuple[list[InstanceRecord], list[tuple[str, str]]]:
    """The targets whose backfill runs, and the others with why (`gone_refusal`): one
    read per backfill, not per instance."""
    why: dict[str, str | None] = {}
    for backfill in dict.fromkeys(i.backfill for i in targets):
        record = store.backfill(backfill)
        why[backfill] = gone_refusal(name, record.status) if record is not None else None
    kept = [i for i in targets if why[i.backfill] is None]
    return kept, [(i.id, reason) for i in targets if (reason := why[i.backfill]) is not None]


def _rerun_with(
    store: OperationsStore,
    chosen: list[InstanceRecord],
    actor: str,
    at: float,
    with_descendants: bool,
    guard: Guard | None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The chosen ones run now; their descendants (when asked) wait for them."""
    rule = RULES["rerun"]
    reason = f"{rule.says} by {actor}"
    refused: list[tuple[str, str]] = []
    done = _rerun(store, chosen, at=at, actor=actor, reason=reason, ignore_deps=True)
    if with_descendants and chosen:
        later = [i for i in descendants(store, chosen) if i.state in rule.allowed]
        if guard is not None:
            later, refused = guard.split("rerun", later)
        done += _rerun(
            store,
            later,
            at=at,
            actor=actor,
            reason=f"rerun as a descendant by {actor}",
            ignore_deps=False,
        )
    return done, refused


def _rerun(
    store: OperationsStore,
    instances: Sequence[InstanceRecord],
    *,
    at: float,
    actor: str,
    reason: str,
    ignore_deps: bool,
) -> list[str]:
    """Back to pending with the retry budget restored: one transition per budget (it
    differs by node)."""
    rule = RULES["rerun"]
    done: list[str] = []
    for tries in sorted({1 + i.run.retries for i in instances}):
        done += store.transition(
            [i.id for i in instances if 1 + i.run.retries == tries],
            rule.to,
            allowed=rule.allowed,
            at=at,
            actor=actor,
            origin="cli",
            reason=reason,
            kind="rerun",
            tries_left=tries,
            finished_at=None,
            ignore_deps=ignore_deps,
            not_before=None,
        )
    return done


def _reopen(store: OperationsStore, backfills: set[str], name: str, actor: str, at: float) -> None:
    """A finished backfill whose instances changed is not finished any more: the
    controller decides its outcome again (and alerts again) when it ends. A stopped one
    that an operator acts on again (other than by stopping) is resumed."""
    for backfill in sorted(backfills):
        record = store.backfill(backfill)
        if record is None:
            continue
        fields: dict[str, object] = {}
        if record.status == "stopped" and name != "stop":
            fields["status"] = "active"
        if record.finished_at is not None:
            fields.update(finished_at=None, outcome=None, notified_at=None)
        if fields:
            what = " and ".join(
                w for w, f in (("resumed", "status"), ("reopened", "finished_at")) if f in fields
            )
            store.update_backfill(
                backfill,
                at=at,
                actor=actor,
                origin="cli",
                event=f"{what}: {name} by {actor}",
                **fields,
            )
