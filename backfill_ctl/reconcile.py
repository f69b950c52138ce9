"""apply and diff: the desired instances (from a plan) against the stored ones, by id.

- a desired id that is not stored is created;
- a stored instance that has not started, or failed, and whose definition changed is
  updated (a failed one stays failed: a rerun runs the new definition; a cancelled one
  that is desired again comes back as pending);
- a stored instance no longer desired is cancelled if it has not started, and kept
  (and reported) if it has;
- a Backfill that is no longer in the specs is left alone unless `prune` is asked: then
  its instances that have not started are cancelled and it is marked deleted.

`desired()` and `diff()` are pure; `apply()` writes one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from backfill_ctl.params import Context, environment
from backfill_ctl.planner import compile_node
from backfill_ctl.spec.model import FOLLOW_NODE
from backfill_ctl.state.records import NOT_STARTED, BackfillRecord, InstanceRecord, Run

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.params import Template
    from backfill_ctl.planner import BackfillPlan, Plan
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


def desired(specs: Specs, plan: Plan, cwd: str, actor: str | None, at: float) -> list[Desired]:
    """What the plan asks the store to hold: records with resolved runs and environments."""
    return [_desired(specs, bp, plan.digest, cwd, actor, at) for bp in plan.backfills]


def _desired(
    specs: Specs, bp: BackfillPlan, digest: str, cwd: str, actor: str | None, at: float
) -> Desired:
    b = bp.backfill
    document: dict[str, Any] = next(
        (d.data for d in specs.documents if (d.file, d.index) == (b.origin.file, b.origin.doc)), {}
    )
    window = b.execution_window
    record = BackfillRecord(
        name=b.name,
        digest=digest,
        spec=document,
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
    compiled: dict[str, tuple[dict[str, Template], dict[str, Template]]] = {}
    cache: dict[object, str] = {}
    instances = []
    for i in bp.instances:
        node = specs.nodes[i.node]
        if i.node not in compiled:
            params, _, env_templates = compile_node(node, b.parameters)
            compiled[i.node] = (params, env_templates)
        params, env_templates = compiled[i.node]
        ctx = Context(i.bizdate, i.cyctime.replace(tzinfo=None), i.id, i.node, b.name)
        env = environment(params, ctx, cache)
        env.update({k: t.render(ctx, cache) for k, t in env_templates.items()})
        run = node.run
        group = b.resource_group if b.resource_group != FOLLOW_NODE else node.resource_group
        instances.append(
            InstanceRecord(
                id=i.id,
                backfill=b.name,
                node=i.node,
                bizdate=i.bizdate.isoformat(),
                cyctime=i.cyctime.isoformat(),
                cyctime_epoch=i.cyctime.timestamp(),
                timezone=_tz(specs, i.node),
                group=i.group,
                sequence=i.sequence,
                priority=i.priority,
                depends_on=i.depends_on,
                run=Run(
                    command=i.command,
                    env=env,
                    cwd=cwd,
                    timeout=run.timeout.total_seconds() if run.timeout else None,
                    retries=run.retries,
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
    return Desired(record, instances)


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
    status: str  # new | changed | unchanged | not-in-specs | pruned
    record: BackfillRecord | None = None  # to write, when new or changed
    create: list[InstanceRecord] = field(default_factory=list)
    update: list[InstanceRecord] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    kept: int = 0  # started instances the specs no longer want: kept as they ran
    waiting_cancel: int = 0  # not-in-specs without prune: what --prune would cancel

    @property
    def empty(self) -> bool:
        return self.record is None and not (self.create or self.update or self.cancel)


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
        stored = {i.id: i for i in store.instances(backfill=d.record.name)}
        old = store.backfill(d.record.name)
        if old is not None and old.status == "collected" and old.spec == d.record.spec:
            # It ran to the end long ago and gc removed its instances: nothing to do.
            out.append(BackfillChanges(d.record.name, "collected"))
            continue
        c = BackfillChanges(d.record.name, "new" if old is None else "unchanged")
        if old is None or old.status == "deleted" or _settings(old) != _settings(d.record):
            c.record = d.record
            if old is not None:
                c.status = "changed"
        for i in d.instances:
            have = stored.pop(i.id, None)
            if have is None:
                c.create.append(i)
            elif have.state == "cancelled" or (
                have.state in UPDATABLE and _definition(have) != _definition(i)
            ):
                c.update.append(i)
        for have in stored.values():  # no longer desired
            if have.state in NOT_STARTED:
                c.cancel.append(have.id)
            elif have.state != "cancelled":
                c.kept += 1
        if c.status == "unchanged" and not c.empty:
            c.status = "changed"
        out.append(c)
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


def _settings(b: BackfillRecord) -> tuple[object, ...]:
    return (
        b.spec,
        b.status,
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


def render(changes: Changes) -> list[str]:
    """One line per Backfill, Terraform-style (+ create, ~ update, - cancel)."""
    lines = []
    marks = {
        "new": "+",
        "changed": "~",
        "pruned": "-",
        "not-in-specs": "!",
        "unchanged": " ",
        "collected": " ",
    }
    for c in changes.backfills:
        parts = [f"+{len(c.create)} ~{len(c.update)} -{len(c.cancel)}"]
        if c.kept:
            parts.append(f"{c.kept} kept as they ran")
        if c.status == "collected":
            parts = ["ran to the end and was collected by gc; change its spec to run it again"]
        if c.status == "not-in-specs":
            parts = [
                f"no longer in the specs; --prune cancels its {c.waiting_cancel} "
                "instance(s) that have not started"
            ]
        lines.append(f"{marks[c.status]} backfill/{c.name}: {', '.join(parts)}")
    return lines
