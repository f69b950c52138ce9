"""`backfillctl get backfills|instances`: what the state store holds, as a table or data.

kubectl-like: a table by default; `-o wide` adds columns; `-o json|yaml` print a `List`
of objects (apiVersion, kind, metadata, spec, status: usecases.objects); `-o name` prints
`backfill/NAME` or `instance/ID` lines; `-o jsonpath=`, `-o custom-columns=`,
`--sort-by`, `--no-headers` and set-based `-l` as kubectl has them (cli.get_output).
`-w` prints the listing, then polls the store every second and prints the rows (or
objects, or names) that changed since, until interrupted: only what changed, as
`kubectl get -w` does, so a long watch reads as a log of changes.

AGE is measured on the clock (not $BACKFILLCTL_NOW, which is for planning): the store's
times were written by the clock too.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from backfill_ctl.cli.get_output import (
    Format,
    LabelOpt,
    Listing,
    NoHeadersOpt,
    OutputOpt,
    SortByOpt,
    WatchLimitOpt,
    WatchOpt,
    parse_output,
    show,
)
from backfill_ctl.cli.options import check_bizdate
from backfill_ctl.cli.state import StateFileOpt, open_state
from backfill_ctl.core.records import STATES
from backfill_ctl.errors import UsageError, did_you_mean
from backfill_ctl.reports.listing import Item
from backfill_ctl.usecases import progress, selectors
from backfill_ctl.usecases.objects import backfill_object, instance_object
from backfill_ctl.usecases.operations import mismatch

if TYPE_CHECKING:
    from collections.abc import Mapping

    from backfill_ctl.core.records import BackfillRecord, InstanceRecord
    from backfill_ctl.state import ReadStore

REASON_WIDTH = 60
_sleep = time.sleep  # tests replace it to change the store between polls
clock = time.time  # tests pin it

# The kinds a TYPE/NAME names, in any of kubectl's spellings, and the command listing them.
KINDS = {
    **dict.fromkeys(("backfill", "backfills", "bf"), "backfill"),
    **dict.fromkeys(("instance", "instances", "inst"), "instance"),
}


class _GetGroup(TyperGroup):
    """`get backfill/NAME ...` and `get instance/ID ...`, as kubectl takes `get pod/NAME`
    (and what `get -o name` prints): the command of that kind, with those names."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and "/" in args[0] and not args[0].startswith("-"):
            args = _by_kind(args)
        rest: list[str] = super().parse_args(ctx, args)
        return rest


def _by_kind(args: list[str]) -> list[str]:
    """`args` led by TYPE/NAME words, as the command of that kind and its names."""
    named: list[str] = []
    kinds: set[str] = set()
    count = next((k for k, a in enumerate(args) if a.startswith("-") or "/" not in a), len(args))
    for arg in args[:count]:
        kind, _, name = arg.partition("/")
        if kind not in KINDS or not name:
            raise UsageError(
                f"{arg!r}: not a backfill/NAME or an instance/ID",
                hint="say backfill/NAME or instance/ID, as get -o name prints them",
            )
        kinds.add(KINDS[kind])
        named.append(f"{KINDS[kind]}/{name}")
    if len(kinds) > 1:
        raise UsageError(
            "backfills and instances cannot be listed together",
            hint="one kind at a time: get backfill/NAME ..., then get instance/ID ...",
        )
    return [f"{kinds.pop()}s", *named, *args[count:]]


get_app = typer.Typer(
    name="get",
    cls=_GetGroup,
    help="List backfills or instances: a table, or data with -o json|yaml|name|jsonpath."
    "\n\n\b\nExamples:"
    "\n  backfillctl get backfills                          # status, instances per state"
    "\n  backfillctl get instances -b fix-orders-2024-03 --state failed"
    "\n  backfillctl get instances -l team=retail -o yaml   # a List of objects"
    "\n  backfillctl get backfill/fix-orders-2024-03        # TYPE/NAME, as -o name prints",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

AllOpt = Annotated[bool, typer.Option("--all", "-A", help="Include deleted backfills.")]
__all__ = ["Format", "WatchLimitOpt", "find_backfill", "find_instance", "get_app"]


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


# -- finding what was named ---------------------------------------------------------------


def find_backfill(store: ReadStore, name: str) -> BackfillRecord:
    """The stored backfill `name` (or backfill/NAME), deleted ones too; else a UsageError
    (whose hint names the backfill of an instance named instead)."""
    name = name.removeprefix("backfill/")
    record = store.backfill(name)
    if record is None:
        ident = name.removeprefix("instance/")
        found = store.instances(ids=[ident])
        known = [b.name for b in store.backfills(include_deleted=True)]
        hint = did_you_mean(name, known) or "backfillctl get backfills lists them"
        if found:
            b = found[0].backfill
            hint = (
                f"{ident} is an instance of backfill/{b}: say backfill/{b} "
                f"(or instance/{ident} where instances are taken)"
            )
        raise UsageError(f"no backfill {name!r} in {store.path}", hint=hint)
    return record


def find_instance(store: ReadStore, ident: str) -> InstanceRecord:
    """The stored instance `ident` (or instance/ID); else a UsageError with a hint."""
    ident = ident.removeprefix("instance/")
    found = store.instances(ids=[ident])
    if found:
        return found[0]
    hint = "backfillctl get instances lists them"
    if store.backfill(ident) is not None:
        hint = f"{ident} is a backfill: say backfill/{ident}"
    raise UsageError(f"no instance {ident!r} in {store.path}", hint=hint)


# -- get backfills ----------------------------------------------------------------------------


def _by_backfill(store: ReadStore) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for (backfill, state), n in store.counts().items():
        out.setdefault(backfill, Counter())[state] = n
    return out


def _backfill_item(record: BackfillRecord, counts: Counter[str], now: float) -> Item:
    labels = ",".join(f"{k}={v}" for k, v in sorted(record.labels.items()))
    return Item(
        f"backfill/{record.name}",
        (
            record.name,
            progress.phase(record, counts),
            str(sum(counts.values())),
            str(counts["succeeded"]),
            str(counts["running"]),
            str(counts["failed"]),
            str(counts["cancelled"]),
            str(progress.waiting(counts)),
            progress.age(now - record.finished_at) if record.finished_at else "-",
            progress.age(now - record.applied_at),
        ),
        (
            record.digest[:19],
            _cell(record.file),
            _cell(labels),
            _cell(record.applied_by),
            _cell(progress.utc(record.finished_at)),
        ),
        backfill_object(record, counts),
    )


@get_app.command("backfills")
def get_backfills_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME",
            help="Only these backfills (NAME or backfill/NAME).",
            show_default=False,
        ),
    ] = None,
    selector: LabelOpt = None,
    include_deleted: AllOpt = False,
    output: OutputOpt = None,
    sort_by: SortByOpt = None,
    no_headers: NoHeadersOpt = False,
    watch: WatchOpt = False,
    watch_limit: WatchLimitOpt = None,
    state: StateFileOpt = None,
) -> None:
    """List the applied backfills: status and instances per state.

    STATUS is the first that holds of Deleted, Stopped, Suspended, Succeeded, Failed,
    Running (an instance runs), Waiting (instances wait for their time or a slot) and
    Pending. WAITING counts pending and waiting-* instances; CANCELLED those cancelled
    (by delete or apply --prune); FINISHED is how long ago it finished.

    \b
    Examples:
      backfillctl get backfills                   # STATUS, instances per state, FINISHED
      backfillctl get backfills -l 'team in (retail,web),!frozen'
      backfillctl get backfills -o jsonpath='{.items[*].metadata.name}'
      backfillctl get backfills -w                # print changes as they happen
    """
    store = open_state(state)
    wanted = [find_backfill(store, n).name for n in names or []]
    labels = selectors.parse(selector or [])
    how = parse_output(output, sort_by, no_headers)

    def fetch() -> list[Item]:
        records = store.backfills(include_deleted=include_deleted or bool(wanted))
        if wanted:
            records = [r for r in records if r.name in wanted]
        counts = _by_backfill(store)
        now = clock()
        return [
            _backfill_item(r, counts.get(r.name, Counter()), now)
            for r in records
            if selectors.matches(r.labels, labels)
        ]

    header: tuple[str, ...] = ("NAME", "STATUS", "INSTANCES", "SUCCEEDED", "RUNNING", "FAILED")
    header += ("CANCELLED", "WAITING", "FINISHED", "AGE")
    wide = ("DIGEST", "FILE", "LABELS", "APPLIED-BY", "FINISHED-AT")
    show(Listing("backfills", header, wide, fetch), how, watch, watch_limit, _sleep)


get_app.command("backfill", hidden=True)(get_backfills_command)
get_app.command("bf", hidden=True)(get_backfills_command)


# -- get instances -----------------------------------------------------------------------------


def _instance_item(i: InstanceRecord, labels: Mapping[str, str]) -> Item:
    return Item(
        f"instance/{i.id}",
        (
            i.id,
            i.backfill,
            i.node,
            i.bizdate,
            progress.scheduled(i),
            i.state,
            str(i.attempts),
            _cell(progress.truncate(progress.reason(i), REASON_WIDTH)),  # stored blocker
        ),
        (
            f"{i.group}.{i.sequence}",
            str(i.priority),
            i.resource_group,
            _cell(progress.utc(i.started_at)),
            _cell(progress.utc(i.finished_at)),
            _cell(i.dry_run_reason),
        ),
        instance_object(i, labels),
    )


def _states(values: list[str]) -> list[str] | None:
    chosen = [s.strip() for v in values for s in v.split(",") if s.strip()]
    for s in chosen:
        if s not in STATES:
            raise UsageError(
                f"--state: unknown state {s!r}",
                hint=did_you_mean(s, STATES) or f"use one of {', '.join(STATES)}",
            )
    return chosen or None


def _check_node(store: ReadStore, node: str, backfill: str | None) -> None:
    """An unknown node is a mistake, not an empty answer (checked only when none matched)."""
    known = {i.node for i in store.instances(backfill=backfill)}
    if node not in known:
        where = f"backfill {backfill}" if backfill else store.path
        raise UsageError(
            f"no instance of node {node!r} in {where}",
            hint=did_you_mean(node, known) or "backfillctl get instances lists them",
        )


def _named(store: ReadStore, ids: list[str], backfill: str | None) -> list[str]:
    """The ids of the instances named, each of `backfill` when it is given (else exit 2)."""
    named = [find_instance(store, i) for i in ids]
    if backfill is not None and (other := [i for i in named if i.backfill != backfill]):
        raise mismatch(other[0].id, other[0].backfill, backfill)
    return [i.id for i in named]


IdsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="ID", help="Only these instances (ID or instance/ID).", show_default=False
    ),
]
OfBackfillOpt = Annotated[
    str | None, typer.Option("--backfill", "-b", help="Only this backfill's instances.")
]
NodeOpt = Annotated[str | None, typer.Option("--node", help="Only this node's instances.")]
BizdateOpt = Annotated[
    str | None, typer.Option("--bizdate", help="Only this business date (YYYY-MM-DD).")
]
InStateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--state",
        help="Only instances in this state (repeatable, or comma-separated).",
        show_default=False,
    ),
]
AllInstancesOpt = Annotated[
    bool, typer.Option("--all", "-A", help="Include the instances of deleted backfills.")
]


@get_app.command("instances")
def get_instances_command(
    ids: IdsArg = None,
    backfill: OfBackfillOpt = None,
    node: NodeOpt = None,
    bizdate: BizdateOpt = None,
    in_state: InStateOpt = None,
    selector: LabelOpt = None,
    include_deleted: AllInstancesOpt = False,
    output: OutputOpt = None,
    sort_by: SortByOpt = None,
    no_headers: NoHeadersOpt = False,
    watch: WatchOpt = False,
    watch_limit: WatchLimitOpt = None,
    state: StateFileOpt = None,
) -> None:
    """List instances: when they are scheduled, their state and why.

    The instances of deleted backfills are left out unless --all, --backfill or ids
    name them. -l filters on the labels of each instance's backfill.

    \b
    Examples:
      backfillctl get instances --backfill fix-orders-2024-03 --state failed
      backfillctl get instances -l team=retail -o wide   # + group, priority, times
      backfillctl get instances --sort-by=.status.finishedAt -o name
      backfillctl get instances -o custom-columns=NAME:.metadata.name,STATE:.status.state
    """
    store = open_state(state)
    if backfill is not None:
        backfill = find_backfill(store, backfill).name
    check_bizdate(bizdate)
    states = _states(in_state or [])
    wanted = _named(store, ids or [], backfill)
    labels = selectors.parse(selector or [])
    how = parse_output(output, sort_by, no_headers)
    if node is not None and not store.instances(backfill=backfill, node=node, ids=wanted or None):
        _check_node(store, node, backfill)

    def fetch() -> list[Item]:
        records = {b.name: b for b in store.backfills(include_deleted=True)}
        keep = {
            name
            for name, b in records.items()
            if selectors.matches(b.labels, labels)
            and (b.status != "deleted" or include_deleted or backfill or wanted)
        }
        found = store.instances(
            backfill=backfill, ids=wanted or None, states=states, node=node, bizdate=bizdate
        )
        return [_instance_item(i, records[i.backfill].labels) for i in found if i.backfill in keep]

    header = ("ID", "BACKFILL", "NODE", "BIZDATE", "SCHEDULED", "STATE", "ATTEMPTS", "REASON")
    wide = ("GROUP", "PRIORITY", "RESOURCE-GROUP", "STARTED", "FINISHED", "DRY-RUN")
    show(Listing("instances", header, wide, fetch), how, watch, watch_limit, _sleep)


get_app.command("instance", hidden=True)(get_instances_command)
get_app.command("inst", hidden=True)(get_instances_command)
