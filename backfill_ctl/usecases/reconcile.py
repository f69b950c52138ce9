"""apply and diff: the desired instances (from a plan) against the stored ones, by slot.

Each desired instance is matched to the stored instance of its slot (`slots.match`: by
id, else by scheduled time within its node and business date), and keeps the id the
store knows it by. Then:

- a desired instance with no stored one is created;
- a stored instance that has not started, or failed, and whose definition changed is
  updated (a moved cron time is such a change; a failed one stays failed: a rerun runs
  the new definition; a cancelled one that is desired again comes back as pending);
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
from functools import partial
from typing import TYPE_CHECKING, Any

from backfill_ctl.core import slots
from backfill_ctl.core.params import Context, environment
from backfill_ctl.core.planner import compile_node
from backfill_ctl.core.records import NOT_STARTED, BackfillRecord, InstanceRecord, Run
from backfill_ctl.spec.model import FOLLOW_NODE
from backfill_ctl.usecases.access import access_of_plan, document, with_access

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from backfill_ctl.core.params import Template
    from backfill_ctl.core.planner import BackfillPlan, Plan
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.spec.model import Notifier
    from backfill_ctl.state import StateStore

DEFAULT_GROUP = "default"
# A failed instance takes a new definition too (it keeps its state and attempts): after a
# fixed command is applied, rerunning it runs the fix.
UPDATABLE = NOT_STARTED | {"failed"}
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


@dataclass(frozen=True)
class Desired:
    record: BackfillRecord
    instances: list[InstanceRecord]
    # The same instances with some applied under the ids the store holds their slots by
    # (see slots.py): their dependents point at those ids, `$taskid` renders them.
    under: Callable[[Mapping[str, str]], list[InstanceRecord]] = field(repr=False, compare=False)


def desired(specs: Specs, plan: Plan, cwd: str, actor: str | None, at: float) -> list[Desired]:
    """What the plan asks the store to hold: records with resolved runs and environments."""
    return [_desired(specs, bp, plan.digest, cwd, actor, at) for bp in plan.backfills]


def _desired(
    specs: Specs, bp: BackfillPlan, digest: str, cwd: str, actor: str | None, at: float
) -> Desired:
    b = bp.backfill
    applied: dict[str, Any] = next(
        (d.data for d in specs.documents if (d.file, d.index) == (b.origin.file, b.origin.doc)), {}
    )
    window = b.execution_window
    record = BackfillRecord(
        name=b.name,
        digest=digest,
        spec=with_access(applied, access_of_plan(specs, bp)),
        file=b.origin.file,
        suspended=b.suspend,
        run_immediately=b.run_immediately,
        execution_window=(f"{window.start:%H:%M}", f"{window.end:%H:%M}") if window else None,
        alert_when=b.alert_when,
        notify=tuple(_notifier(n) for n in b.notify),
        labels=dict(b.labels),
        applied_at=at,
        applied_by=actor,
    )
    under = partial(_instances, specs, bp, cwd, at)
    return Desired(record, under({}), under)


def _instances(
    specs: Specs, bp: BackfillPlan, cwd: str, at: float, ids: Mapping[str, str]
) -> list[InstanceRecord]:
    """The records of a plan's instances, each under `ids.get(id, id)`."""
    b = bp.backfill
    compiled: dict[str, tuple[dict[str, Template], list[Template] | Template, dict[str, Template]]]
    compiled = {}
    cache: dict[object, str] = {}
    instances = []
    for i in bp.instances:
        node = specs.nodes[i.node]
        if i.node not in compiled:
            compiled[i.node] = compile_node(node, b.parameters)
        params, command_templates, env_templates = compiled[i.node]
        iid = ids.get(i.id, i.id)
        ctx = Context(i.bizdate, i.cyctime.replace(tzinfo=None), iid, i.node, b.name)
        env = environment(params, ctx, cache)
        env.update({k: t.render(ctx, cache) for k, t in env_templates.items()})
        command: tuple[str, ...] | str = i.command
        if iid != i.id:  # the plan rendered `$taskid` with its own id
            command = (
                tuple(t.render(ctx, cache) for t in command_templates)
                if isinstance(command_templates, list)
                else command_templates.render_shell(ctx, cache)
            )
        run = node.run
        group = b.resource_group if b.resource_group != FOLLOW_NODE else node.resource_group
        instances.append(
            InstanceRecord(
                id=iid,
                backfill=b.name,
                node=i.node,
                bizdate=i.bizdate.isoformat(),
                cyctime=i.cyctime.isoformat(),
                cyctime_epoch=i.cyctime.timestamp(),
                timezone=_tz(specs, i.node),
                group=i.group,
                sequence=i.sequence,
                priority=i.priority,
                depends_on=tuple(ids.get(d, d) for d in i.depends_on) if ids else i.depends_on,
                run=Run(
                    command=command,
                    env=env,
                    cwd=cwd,
                    timeout=run.timeout.total_seconds() if run.timeout else None,
                    retries=run.retries,
                    retry_delay=run.retry_delay.total_seconds(),
                    image=run.image,
                    cpu=run.cpu,
                    memory=run.memory,
                ),
                resource_group=group or DEFAULT_GROUP,
                dry_run_reason=i.dry_run_reason,
                tries_left=1 + run.retries,
                created_at=at,
                updated_at=at,
            )
        )
    return instances


def _tz(specs: Specs, node: str) -> str:
    workspace = specs.workspaces.get(specs.nodes[node].workspace)
    return workspace.timezone if workspace else "UTC"


def _notifier(n: Notifier) -> dict[str, object]:
    out: dict[str, object] = {}
    if n.webhook:
        out["webhook"] = n.webhook
    if n.command:
        out["command"] = n.command if isinstance(n.command, str) else list(n.command)
    if n.email:
        out["email"] = n.email
    return out


@dataclass
class BackfillChanges:
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

    @property
    def empty(self) -> bool:
        return (
            self.record is None
            and self.access_spec is None
            and not (self.create or self.update or self.cancel)
        )


@dataclass
class Changes:
    backfills: list[BackfillChanges]

    @property
    def empty(self) -> bool:
        return all(c.empty for c in self.backfills)

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


def diff(wanted: Iterable[Desired], store: StateStore, *, prune: bool) -> Changes:
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
        waiting = [i.id for i in store.instances(backfill=old.name, states=NOT_STARTED)]
        c = BackfillChanges(old.name, "pruned" if prune else "not-in-specs")
        if prune:
            c.cancel = waiting
            c.record = _deleted(old)
        else:
            c.waiting_cancel = len(waiting)
        out.append(c)
    return Changes(out)


def _changes(
    d: Desired, old: BackfillRecord | None, stored: list[InstanceRecord]
) -> BackfillChanges:
    """One Backfill's changes (see the module docstring). In a finished backfill nothing
    is added, brought back or cancelled: a cancelled dependency lets its dependents go."""
    c = BackfillChanges(d.record.name, "new" if old is None else "unchanged")
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
    found, gone = slots.match(d.instances, stored)
    renamed = {want: have.id for want, have in found.items() if want != have.id}
    for plan, i in zip(d.instances, d.under(renamed) if renamed else d.instances, strict=True):
        have = found.get(plan.id)
        if have is None or have.state == "cancelled":
            if finished:
                c.held_create += 1
            else:  # a cancelled one comes back as pending
                (c.create if have is None else c.update).append(i)
        elif have.state in UPDATABLE and _definition(have) != _definition(i):
            c.update.append(i)
            if have.cyctime != i.cyctime:
                c.moves[slots.move(i.node, have.cyctime, i.cyctime)] += 1
        elif have.state not in UPDATABLE and have.cyctime != i.cyctime:
            c.ran_moves[slots.move(i.node, have.cyctime, i.cyctime)] += 1
    for have in gone:  # no longer planned
        if have.state in NOT_STARTED:
            if finished:
                c.held_cancel += 1
            else:
                c.cancel.append(have.id)
        elif have.state != "cancelled":
            c.kept += 1
    if finished and (c.held_create or c.held_cancel or c.ran_moves):
        c.status, c.outcome = "finished", old.outcome if old else None
    elif c.status == "unchanged" and not c.empty:
        c.status = "changed"
    return c


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


def apply(
    store: StateStore, changes: Changes, specs: Specs, *, at: float, actor: str, origin: str
) -> None:
    """Write every change in one transaction (and the resource groups the specs define)."""
    store.save_apply(
        [c.record for c in changes.backfills if c.record is not None],
        [i for c in changes.backfills for i in c.create],
        [i for c in changes.backfills for i in c.update],
        [i for c in changes.backfills for i in c.cancel],
        at=at,
        actor=actor,
        origin=origin,
        resource_groups=[(g.name, g.type, g.concurrency) for g in specs.resource_groups.values()],
    )
    for c in changes.backfills:  # a second transaction each; the next apply redoes a lost one
        if c.access_spec is not None:
            store.update_backfill(
                c.name,
                at=at,
                actor=actor,
                origin=origin,
                event="who may operate it changed",
                spec=c.access_spec,
            )


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
