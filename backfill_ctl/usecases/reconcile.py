"""apply and diff: the desired instances (from a plan) against the stored ones, by slot.

Each desired instance is matched to the stored instance of its slot (`slots.match`: by
id, else by scheduled time within its node and business date), and keeps the id the
store knows it by. Then:

- a desired instance with no stored one is created;
- a stored instance that has not started, or failed, and whose definition changed is
  updated (a moved cron time is such a change; a failed one stays failed: a rerun runs
  the new definition; a cancelled one that is desired again, after a delete, a prune or
  an edit, comes back as pending: a transition by the apply's actor, with nothing left
  of its cancellation);
- a stored instance no longer desired is cancelled if it has not started, and kept
  (and reported) if it has;
- a finished backfill whose own document is unchanged is history: what the specs now
  plan differently is reported, and nothing is created, brought back or cancelled in it
  (an edit elsewhere must not run anything of it again; `rerun` or an edit of the
  Backfill does). Its failed and not-started instances still take new definitions,
  which starts nothing;
- a Backfill that is no longer in the specs is left alone unless `prune` is asked: then
  its instances that have not started are cancelled and it is marked deleted;
- a record carries who may operate the backfill's nodes (access.py), which is not part
  of its document: when only that changed, the record is rewritten (status kept) and
  nothing else happens; a finished backfill's access is rewritten on its own, without
  reopening it (a rerun is checked against who may operate it now).

`desired()` and `diff()` only read; `apply()` writes one transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from backfill_ctl.core import slots
from backfill_ctl.core.records import NOT_STARTED, BackfillRecord, InstanceRecord
from backfill_ctl.errors import BackfillError
from backfill_ctl.usecases.access import document

# What the plan asks the store to hold (desired.py), importable from here as before.
from backfill_ctl.usecases.desired import DEFAULT_GROUP, Desired, desired

__all__ = [
    "DEFAULT_GROUP",
    "BackfillChanges",
    "Changes",
    "Desired",
    "apply",
    "desired",
    "diff",
    "render",
]

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state.protocols import PlanStore

# A failed instance takes a new definition too (it keeps its state and attempts): after a
# fixed command is applied, rerunning it runs the fix.
UPDATABLE = NOT_STARTED | {"failed"}
_STARTED = frozenset({"running", "succeeded", "failed"})
# What an applied instance is; a change in any of these is an update.
_DEFINITION = (
    "cyctime_epoch",
    "group",
    "sequence",
    "priority",
    "depends_on",
    "run",
    "resource_group",
    "dry_run_reason",
)


@dataclass
class BackfillChanges:
    """What applying changes for one Backfill: its record and instances."""

    name: str
    status: str  # new | changed | unchanged | finished | not-in-specs | pruned | collected
    record: BackfillRecord | None = None  # to write, when new or changed
    create: list[InstanceRecord] = field(default_factory=list)
    update: list[InstanceRecord] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    kept: int = 0  # started instances the specs no longer want: kept as they ran
    waiting_cancel: int = 0  # not-in-specs without prune: what --prune would cancel
    moves: Counter[slots.Move] = field(default_factory=Counter)  # among `update`
    ran_moves: Counter[slots.Move] = field(default_factory=Counter)  # ran at the old time: kept
    # finished: what the specs would add (or bring back) and cancel, left undone.
    held_create: int = 0
    held_cancel: int = 0
    outcome: str | None = None  # finished: how it ended
    access: bool = False  # only who may operate it changed: `record` rewrites that
    access_spec: dict[str, Any] | None = None  # finished: its document with the new access
    before: BackfillRecord | None = None  # the stored record, to tell what changed in it
    # The stored records of the instances in `update` and `cancel`, by id.
    stored: dict[str, InstanceRecord] = field(default_factory=dict)
    refused: str | None = None  # why the actor may not make these changes (access.py)

    @property
    def empty(self) -> bool:
        return (
            self.record is None
            and self.access_spec is None
            and not (self.create or self.update or self.cancel)
        )


@dataclass
class Changes:
    """What applying changes, Backfill by Backfill."""

    backfills: list[BackfillChanges]

    @property
    def empty(self) -> bool:
        return all(c.empty for c in self.backfills)

    @property
    def refused(self) -> list[tuple[str, str]]:
        """The Backfills whose changes the actor may not make, with why: an apply with
        any writes nothing."""
        return [(c.name, c.refused) for c in self.backfills if c.refused is not None]

    def totals(self) -> tuple[int, int, int, int]:
        return (
            sum(len(c.create) for c in self.backfills),
            sum(len(c.update) for c in self.backfills),
            sum(len(c.cancel) for c in self.backfills),
            sum(c.kept for c in self.backfills),
        )

    def summary(self, done: bool) -> str:
        if self.empty:
            if any(c.status == "finished" for c in self.backfills):
                return "No changes: finished backfills are left as they ran."
            return "No changes: the state store matches the specs."
        create, update, cancel, kept = self.totals()
        if done:
            return (
                f"Apply complete: {create} created, {update} updated, {cancel} cancelled; "
                f"{kept} kept as they ran."
            )
        return (
            f"Plan: {create} to create, {update} to update, {cancel} to cancel; {kept} "
            "kept as they ran."
        )


def diff(wanted: Iterable[Desired], store: PlanStore, *, prune: bool) -> Changes:
    out = []
    wanted = list(wanted)
    names = {d.record.name for d in wanted}
    for d in wanted:
        old = store.backfill(d.record.name)
        if (
            old is not None
            and old.status == "collected"
            and document(old.spec) == document(d.record.spec)
        ):
            # It ran to the end long ago and gc removed its instances: nothing to do.
            out.append(BackfillChanges(d.record.name, "collected"))
            continue
        out.append(_changes(d, old, store.instances(backfill=d.record.name)))
    for old in store.backfills():
        if old.name in names:
            continue
        waiting = store.instances(backfill=old.name, states=NOT_STARTED)
        c = BackfillChanges(old.name, "pruned" if prune else "not-in-specs")
        if prune:
            c.cancel = [i.id for i in waiting]
            c.stored = {i.id: i for i in waiting}
            c.record = _deleted(old)
            c.kept = sum(  # (those `_unplanned_change` would keep)
                n for (_, state), n in store.counts(old.name).items() if state in _STARTED
            )
        else:
            c.waiting_cancel = len(waiting)
        out.append(c)
    return Changes(out)


def _changes(
    d: Desired, old: BackfillRecord | None, stored: list[InstanceRecord]
) -> BackfillChanges:
    """One Backfill's changes (see the module docstring). In a finished backfill nothing
    is added, brought back or cancelled: a cancelled dependency lets its dependents go."""
    c = BackfillChanges(d.record.name, "new" if old is None else "unchanged", before=old)
    finished = _record_changes(c, d, old)
    found, gone = slots.match(d.instances, stored)
    renamed = {want: have.id for want, have in found.items() if want != have.id}
    for plan, i in zip(d.instances, d.under(renamed) if renamed else d.instances, strict=True):
        _planned_change(c, found.get(plan.id), i, finished=finished)
    for have in gone:  # no longer planned
        _unplanned_change(c, have, finished=finished)
    if finished and (c.held_create or c.held_cancel or c.ran_moves):
        c.status, c.outcome = "finished", old.outcome if old else None
    elif c.status == "unchanged" and not c.empty:
        c.status = "changed"
    return c


def _record_changes(c: BackfillChanges, d: Desired, old: BackfillRecord | None) -> bool:
    """The backfill's record to write, if any, in `c`; is the backfill finished (and its
    record left as it is)?"""
    if old is None or old.status == "deleted" or _settings(old) != _settings(d.record):
        c.record = d.record
        if old is not None:
            c.status = "changed"
    finished = c.record is None and old is not None and old.finished_at is not None
    if c.record is None and old is not None and old.spec != d.record.spec:
        if finished:  # rewritten alone: a new record would reopen it
            c.access_spec, c.access = d.record.spec, True
        else:
            c.record, c.access = replace(d.record, status=old.status), True
    return finished


def _planned_change(
    c: BackfillChanges, have: InstanceRecord | None, i: InstanceRecord, *, finished: bool
) -> None:
    """The change, in `c`, that planned instance `i` makes to `have`, the stored
    instance of its slot (None: none is stored)."""
    if have is None or have.state == "cancelled":
        if finished:
            c.held_create += 1
        elif have is None:
            c.create.append(i)
        else:  # a cancelled one comes back as pending
            c.update.append(i)
            c.stored[i.id] = have
    elif have.state in UPDATABLE and _definition(have) != _definition(i):
        c.update.append(i)
        c.stored[i.id] = have
        if have.cyctime != i.cyctime:
            c.moves[slots.move(i.node, have.cyctime, i.cyctime)] += 1
    elif have.state not in UPDATABLE and have.cyctime != i.cyctime:
        c.ran_moves[slots.move(i.node, have.cyctime, i.cyctime)] += 1


def _unplanned_change(c: BackfillChanges, have: InstanceRecord, *, finished: bool) -> None:
    """The change, in `c`, to a stored instance no longer planned."""
    if have.state in NOT_STARTED:
        if finished:
            c.held_cancel += 1
        else:
            c.cancel.append(have.id)
            c.stored[have.id] = have
    elif have.state != "cancelled":
        c.kept += 1


def _settings(b: BackfillRecord) -> tuple[object, ...]:
    """What an apply writes to a backfill's record. Not its status: a stopped backfill
    stays stopped when its specs are applied again (a rerun resumes it), a deleted one
    comes back (see `diff`)."""
    return (
        document(b.spec),
        b.suspended,
        b.run_immediately,
        b.execution_window,
        b.alert_when,
        b.notify,
        b.labels,
    )


def _definition(i: InstanceRecord) -> tuple[object, ...]:
    return tuple(getattr(i, name) for name in _DEFINITION)


def _deleted(b: BackfillRecord) -> BackfillRecord:
    return replace(b, status="deleted")


def _started_meanwhile(changes: Changes, cancelled: set[str]) -> None:
    """The instances to cancel that the store did not cancel (they started since the diff
    read them) move from `cancel` to `kept`."""
    for c in changes.backfills:
        started = [i for i in c.cancel if i not in cancelled]
        if started:
            c.cancel = [i for i in c.cancel if i in cancelled]
            c.kept += len(started)


def apply(
    store: PlanStore, changes: Changes, specs: Specs, *, at: float, actor: str, origin: str
) -> None:
    """Write every change in one transaction (and the resource groups the specs define).
    An instance to cancel that started since the diff read it is kept by the store: it
    moves from `cancel` to `kept` in `changes`, so that the summary says what was done."""
    cancelled = store.save_apply(
        [c.record for c in changes.backfills if c.record is not None],
        [i for c in changes.backfills for i in c.create],
        [i for c in changes.backfills for i in c.update],
        [i for c in changes.backfills for i in c.cancel],
        at=at,
        actor=actor,
        origin=origin,
        resource_groups=[(g.name, g.type, g.concurrency) for g in specs.resource_groups.values()],
    )
    _started_meanwhile(changes, set(cancelled))
    for c in changes.backfills:  # a second transaction each; the next apply redoes a lost one
        if c.access_spec is None:
            continue
        try:
            store.update_backfill(
                c.name,
                at=at,
                actor=actor,
                origin=origin,
                event="who may operate it changed",
                spec=c.access_spec,
            )
        except BackfillError as exc:  # its hint speaks of this write alone
            exc.hint = (
                f"the rest of the apply was committed; who may operate the finished "
                f"backfill/{c.name} was not: apply the same specs again to write it"
            )
            raise


_MARKS = {
    "new": "+",
    "changed": "~",
    "pruned": "-",
    "not-in-specs": "!",
    "unchanged": " ",
    "collected": " ",
    "finished": " ",
}


def render(changes: Changes) -> list[str]:
    """One line per Backfill, Terraform-style (+ create, ~ update, - cancel), and what
    the change does to its instances' scheduled times."""
    lines = []
    for c in changes.backfills:
        counts = f"+{len(c.create)} ~{len(c.update)} -{len(c.cancel)}"
        mark = _MARKS[c.status]
        if c.status == "collected":
            text = "ran to the end and was collected by gc; change its spec to run it again"
        elif c.status == "not-in-specs":
            text = (
                f"no longer in the specs; --prune cancels its {c.waiting_cancel} "
                "instance(s) that have not started"
            )
        elif c.status == "finished":
            mark = "~" if c.update else mark
            text = f"finished ({c.outcome or 'stopped'}), left as it ran: " + "; ".join(
                [*_held(c), *(["who may operate it changed"] if c.access else [])]
            )
        else:
            parts = [counts, *slots.moves_text(c.moves), *slots.moves_text(c.ran_moves, ran=True)]
            if c.kept:
                parts.append(f"{c.kept} kept as they ran")
            if c.access:
                parts.append("who may operate it changed")
            text = ", ".join(parts)
        lines.append(f"{mark} backfill/{c.name}: {text}")
    return lines


def _held(c: BackfillChanges) -> list[str]:
    parts = []
    if c.held_create:
        parts.append(f"{c.held_create} instance(s) the specs now plan are not added")
    if c.held_cancel:
        parts.append(f"{c.held_cancel} no longer planned are not cancelled")
    parts += slots.moves_text(c.ran_moves, ran=True)
    if c.update:
        parts.append(f"~{len(c.update)} failed or not started take the new definition")
    parts.append("rerun its instances, or edit the Backfill, to run it again")
    return parts
