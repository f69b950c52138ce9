"""What a plan asks the store to hold: the records of its backfills and instances, with
resolved runs and environments (the desired side of `reconcile`). Pure.

Nothing of the checkout it was read from goes in: the same specs applied from the
controller's git-sync link or from a pipeline's clone are the same records (a run's
working directory is relative to the spec root of whoever runs it: records.Run).

An instance's record is rendered from its node's templates; when the store holds the
instance's slot under another id (see core/slots.py), `Desired.under` renders the
records again under those ids: their dependents point at them, `$taskid` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.params import Context, environment
from backfill_ctl.core.planner import compile_node
from backfill_ctl.core.records import BackfillRecord, InstanceRecord, Run
from backfill_ctl.spec.model import FOLLOW_NODE
from backfill_ctl.usecases.access import access_of_plan, with_access

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from backfill_ctl.core.params import Template
    from backfill_ctl.core.planner import BackfillPlan, Plan
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.spec.model import Notifier

DEFAULT_GROUP = "default"


@dataclass(frozen=True)
class Desired:
    """A Backfill's record and instances as the specs want them in the store."""

    record: BackfillRecord
    instances: list[InstanceRecord]
    # The same instances with some applied under the ids the store holds their slots by
    # (see slots.py): their dependents point at those ids, `$taskid` renders them.
    under: Callable[[Mapping[str, str]], list[InstanceRecord]] = field(repr=False, compare=False)


def desired(specs: Specs, plan: Plan, actor: str | None, at: float) -> list[Desired]:
    """What the plan asks the store to hold: records with resolved runs and environments."""
    return [_desired(specs, bp, plan.digest, actor, at) for bp in plan.backfills]


def _desired(specs: Specs, bp: BackfillPlan, digest: str, actor: str | None, at: float) -> Desired:
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
    under = partial(_instances, specs, bp, at)
    return Desired(record, under({}), under)


def _instances(
    specs: Specs, bp: BackfillPlan, at: float, ids: Mapping[str, str]
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
