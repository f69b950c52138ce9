"""`backfillctl describe backfill/NAME | instance/ID`: one object in detail, for a person.

kubectl-like sections of `Key: value` lines and small tables. A backfill shows its
settings, its progress per date group and what is stuck (Conditions); an instance
shows why it waits (the blocker the controller stored), its command, environment and
attempts. Both end with their recent events. Ages and waits are measured on the clock, as the
controller does (not $BACKFILLCTL_NOW, which is for planning).
"""

from __future__ import annotations

import shlex
import time
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

import typer

from backfill_ctl.backends.files import RunFiles
from backfill_ctl.cli import describe_data
from backfill_ctl.cli.console import out, shown
from backfill_ctl.cli.get import find_backfill, find_instance
from backfill_ctl.cli.state import StateOpt, open_state
from backfill_ctl.core.records import FINISHED, WAITING
from backfill_ctl.errors import UsageError
from backfill_ctl.reports.text import count, table
from backfill_ctl.usecases import progress

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.core.records import AttemptRecord, EventRecord, InstanceRecord
    from backfill_ctl.state import ReadStore

EVENTS = 15  # recent events shown
KEY_WIDTH = 20  # where values start on `Key: value` lines
clock = time.time  # tests pin it
FAILED_SHOWN = 10
_KINDS = {
    "backfill": "backfill",
    "backfills": "backfill",
    "bf": "backfill",
    "instance": "instance",
    "instances": "instance",
    "inst": "instance",
}


def _targets(words: Sequence[str]) -> list[tuple[str, str]]:
    """`backfill/a instance/x`, `backfill a b`, or bare instance ids -> [(kind, name)]."""
    found: list[tuple[str, str]] = []
    kind: str | None = None
    for word in words:
        prefix, slash, name = word.partition("/")
        if slash:
            if prefix not in _KINDS or not name:
                raise UsageError(
                    f"cannot describe {word!r}",
                    hint="name backfill/NAME or instance/ID (or a bare instance id)",
                )
            found.append((_KINDS[prefix], name))
        elif word in _KINDS and kind is None and not found:
            kind = _KINDS[word]
        else:
            found.append((kind or "instance", word))
    if not found:
        raise UsageError(
            f"describe {kind} needs a name" if kind else "nothing to describe",
            hint="backfillctl describe backfill/NAME or instance/ID",
        )
    return found


def describe_command(
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="TARGET",
            help="backfill/NAME, instance/ID or a bare instance id (also: backfill NAME...).",
            show_default=False,
        ),
    ],
    output: describe_data.DescribeOutputOpt = None,
    state: StateOpt = None,
) -> None:
    """Show a backfill or an instance in detail: settings and progress, or why it waits,
    its command and attempts; and the recent events.

    \b
    Examples:
      backfillctl describe backfill/fix-orders-2024-03          # progress, conditions, events
      backfillctl describe instance/ID                          # why it waits, attempts
      backfillctl describe backfill/fix-orders-2024-03 -o yaml  # the same object as data
    """
    store = open_state(state)
    chosen = _targets(targets)
    now = clock()
    if output is not None:
        objects = [
            describe_data.backfill_data(store, name)
            if kind == "backfill"
            else describe_data.instance_data(store, name, now)
            for kind, name in chosen
        ]
        out(describe_data.dump(objects, output))
        return
    pages = [
        _backfill(store, name, now) if kind == "backfill" else _instance(store, name, now)
        for kind, name in chosen
    ]  # every name is resolved before anything is printed
    out(shown("\n\n".join("\n".join(page) for page in pages)))


# -- layout ----------------------------------------------------------------------------------


def _fields(pairs: Sequence[tuple[str, object]], indent: str = "") -> list[str]:
    """`Key:   value` lines, values aligned at KEY_WIDTH (or after the longest key); a
    list value continues on aligned lines."""
    width = max(KEY_WIDTH - len(indent), *(len(k) + 2 for k, _ in pairs))
    lines = []
    for key, value in pairs:
        values = value if isinstance(value, list) else [value]
        head = f"{indent}{key + ':':<{width}}"
        if not values:
            values = ["-"]
        for n, v in enumerate(values):
            text = "-" if v is None or v == "" else str(v)
            lines.append(((head if n == 0 else " " * len(head)) + text).rstrip())
    return lines


def _indented(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    return [indent + line for line in table(rows)]


def _events(events: Sequence[EventRecord], with_instance: bool) -> list[str]:
    if not events:
        return _fields([("Events", "none")])
    header = ("TIME", "ACTOR", "INSTANCE", "CHANGE", "MESSAGE")
    rows = [header if with_instance else header[:2] + header[3:]]
    for e in events:
        if e.from_state and e.to_state:
            change = f"{e.from_state} -> {e.to_state}"
        elif e.to_state:
            change = f"{e.kind}: {e.to_state}"
        else:
            change = e.kind
        row = (progress.utc(e.at) or "-", e.actor, e.instance or "-", change, e.message or "-")
        rows.append(row if with_instance else row[:2] + row[3:])
    return [f"Events (last {len(events)}):", *_indented(rows)]


# -- describe backfill ----------------------------------------------------------------------


def _notifier(n: dict[str, Any]) -> str:
    if "webhook" in n:  # a webhook URL often carries its secret in the path: show the host
        parts = urlsplit(str(n["webhook"]))
        return f"webhook {parts.scheme}://{parts.netloc}/..."
    if "command" in n:
        command = n["command"]
        return f"command {command if isinstance(command, str) else shlex.join(command)}"
    if "email" in n:
        email = n["email"]
        return f"email {email if isinstance(email, str) else ', '.join(email)}"
    return str(n)


def _backfill(store: ReadStore, name: str, now: float) -> list[str]:
    record = find_backfill(store, name)
    counts = Counter({s: n for (_, s), n in store.counts(record.name).items()})
    spec = record.spec.get("spec", {}) if isinstance(record.spec, dict) else {}
    window = record.execution_window
    alerts = f"when {record.alert_when}"
    if record.notify:
        alerts += ": " + "; ".join(_notifier(dict(n)) for n in record.notify)
    applied = f"{progress.utc(record.applied_at)} ({progress.age(now - record.applied_at)} ago)"
    finished = (
        f"{progress.utc(record.finished_at)}: {record.outcome}" if record.finished_at else None
    )
    lines = _fields(
        [
            ("Name", record.name),
            ("Status", progress.phase(record, counts)),
            ("File", record.file),
            ("Digest", record.digest),
            ("Applied", applied),
            ("Applied by", record.applied_by),
            ("Finished", finished),
            ("Labels", [f"{k}={v}" for k, v in sorted(record.labels.items())]),
            *describe_data.dashboard_link(f"backfills/{quote(record.name)}"),
        ]
    )
    lines.append("Settings:")
    lines += _fields(
        [
            ("Groups", spec.get("groups", 1)),
            ("Order", spec.get("order", "ascending")),
            ("Resource group", spec.get("resourceGroup", "follow-node")),
            ("Run immediately", str(record.run_immediately).lower()),
            ("Execution window", f"{window[0]}-{window[1]}" if window else "always open"),
            ("Suspend", str(record.suspended).lower()),
            ("Alerts", alerts),
        ],
        "  ",
    )
    total = sum(counts.values())
    lines += _fields(
        [("Instances", f"{count(total, 'instance')}: {progress.describe_counts(counts)}")]
    )
    groups = progress.date_groups(store.date_counts(record.name))
    lines += _date_groups(groups)
    lines += _conditions(store, record.name, record.status, record.suspended, groups, counts)
    lines += _events(store.events(backfill=record.name, limit=EVENTS), with_instance=True)
    return lines


def _date_groups(groups: Sequence[progress.DateGroup]) -> list[str]:
    if not groups:
        return []
    rows: list[tuple[str, ...]] = [
        ("GROUP", "CURRENT DATE", "PROGRESS", "INSTANCES DONE", "AT THE CURRENT DATE")
    ]
    for g in groups:
        rows.append(
            (
                str(g.group),
                g.bizdate or "all done",
                f"date {g.position} of {g.dates}",
                f"{g.done} of {g.instances}",
                progress.describe_counts(g.at_current) if g.current is not None else "-",
            )
        )
    return ["Date groups:", *_indented(rows)]


def _closed(status: str, suspended: bool) -> list[str]:
    if status == "stopped":
        return ["  Stopped: nothing new starts until it is resumed or an instance rerun"]
    if status == "deleted":
        return ["  Deleted: apply its spec again to bring it back"]
    if suspended:
        return ["  Suspended (spec.suspend): nothing new starts"]
    return []


def _conditions(
    store: ReadStore,
    name: str,
    status: str,
    suspended: bool,
    groups: Sequence[progress.DateGroup],
    counts: Counter[str],
) -> list[str]:
    lines = _closed(status, suspended)
    failed = store.instances(backfill=name, states=["failed"]) if counts["failed"] else []
    if failed:
        lines.append(f"  Failed: {count(len(failed), 'instance')}")
        rows: list[tuple[str, ...]] = [("ID", "NODE", "BIZDATE", "ATTEMPTS", "REASON")]
        rows += [
            (i.id, i.node, i.bizdate, str(i.attempts), progress.truncate(i.reason, 80) or "-")
            for i in failed[:FAILED_SHOWN]
        ]
        lines += _indented(rows, "    ")
        if len(failed) > FAILED_SHOWN:
            lines.append(
                f"    ... and {len(failed) - FAILED_SHOWN} more "
                f"(backfillctl get instances --backfill {name} --state failed)"
            )
    if counts["frozen"]:
        lines.append(
            f"  Frozen: {count(counts['frozen'], 'instance')} (what depends on them stays blocked)"
        )
    stuck = [i.id for i in failed]
    if counts["frozen"]:
        stuck += [i.id for i in store.instances(backfill=name, states=["frozen"])]
    waiting = store.instances(backfill=name, states=WAITING) if stuck else []
    for text in progress.blocked(groups, waiting, stuck):
        lines.append(f"  Blocked: {text}")
    return ["Conditions:", *lines] if lines else _fields([("Conditions", "none")])


# -- describe instance ------------------------------------------------------------------------


def _command(i: InstanceRecord) -> str:
    command = i.run.command
    if isinstance(command, str):
        return f"{command}  (run with /bin/sh -c)"
    return shlex.join(command)


def _instance(store: ReadStore, ident: str, now: float) -> list[str]:
    i = find_instance(store, ident)
    backfill = store.backfill(i.backfill)
    status = (
        progress.phase(backfill, Counter({s: n for (_, s), n in store.counts(i.backfill).items()}))
        if backfill is not None
        else "not in the state store"
    )
    deps = store.instances(ids=i.depends_on) if i.depends_on else []
    lines = _fields(
        [
            ("Instance", i.id),
            ("Backfill", f"{i.backfill} ({status})"),
            ("Node", i.node),
            ("Business date", i.bizdate),
            ("Scheduled", f"{i.cyctime} ({i.timezone})"),
            ("State", i.state),
            ("Reason", progress.reason(i)),
            ("Dry run", i.dry_run_reason),
            *describe_data.dashboard_link(f"instances/{i.id}"),
        ]
    )
    why = progress.why_waiting(i, backfill, deps, lambda: store.date_counts(i.backfill), now)
    if why is not None:
        lines += ["Why it waits:", f"  - {why}"]
    lines += _fields(
        [
            ("Priority", i.priority),
            ("Date group", f"{i.group}.{i.sequence} (group {i.group}, sequence {i.sequence})"),
            ("Resource group", i.resource_group),
            ("Attempts", f"{i.attempts} (tries left {i.tries_left})"),
            ("Started", progress.utc(i.started_at)),
            ("Finished", progress.utc(i.finished_at)),
        ]
    )
    attempts = store.attempts(i.id)
    lines += _depends_on(i, {d.id: d for d in deps})
    lines += _run(i, attempts)
    lines += _attempts(store, i, attempts, now)
    lines += _events(store.events(instance=i.id, limit=EVENTS), with_instance=False)
    return lines


def _depends_on(i: InstanceRecord, by_id: dict[str, InstanceRecord]) -> list[str]:
    if not i.depends_on:
        return _fields([("Depends on", "none")])
    rows: list[tuple[str, ...]] = [("ID", "NODE", "BIZDATE", "SCHEDULED", "STATE")]
    for dep_id in i.depends_on:
        d = by_id.get(dep_id)
        if d is None:
            rows.append((dep_id, "-", "-", "-", "not in the state store"))
        else:
            rows.append((d.id, d.node, d.bizdate, progress.scheduled(d), d.state))
    return [f"Depends on ({len(i.depends_on)}):", *_indented(rows)]


def _run(i: InstanceRecord, attempts: Sequence[AttemptRecord]) -> list[str]:
    run = i.run
    lines: list[str] = []
    lines.append("Run:")
    lines += _fields(
        [
            ("Command", _command(i)),
            ("Working dir", progress.working_dir(run, attempts)),
            ("Timeout", progress.duration(run.timeout) if run.timeout else None),
            ("Retries", run.retries),
            *((("Retry delay", progress.duration(run.retry_delay)),) if run.retries else ()),
            *(
                (k, v)
                for k, v in (("Image", run.image), ("CPU", run.cpu), ("Memory", run.memory))
                if v
            ),
            ("Environment", [f"{k}={v}" for k, v in sorted(run.env.items())] or ["none"]),
        ],
        "  ",
    )
    return lines


def _attempts(
    store: ReadStore, i: InstanceRecord, attempts: Sequence[AttemptRecord], now: float
) -> list[str]:
    if not attempts:
        return _fields([("Attempts", "none" if i.state in FINISHED else "none yet")])
    runs = RunFiles.of(store)  # (a log is shown where it is read: beside the store)
    rows: list[tuple[str, ...]] = [
        ("#", "STATE", "EXIT", "STARTED", "DURATION", "BACKEND", "MESSAGE", "LOG")
    ]
    for a in attempts:
        end = a.finished_at if a.finished_at is not None else now
        took = progress.duration(end - a.started_at)
        rows.append(
            (
                str(a.number),
                a.state,
                "-" if a.exit_code is None else str(a.exit_code),
                progress.utc(a.started_at) or "-",
                took if a.finished_at is not None else f"{took} so far",
                a.backend,
                progress.truncate(a.message, 60) or "-",
                runs.readable(a.log) if a.log else progress.log_removed(a) or "-",
            )
        )
    return ["Attempts:", *_indented(rows)]
