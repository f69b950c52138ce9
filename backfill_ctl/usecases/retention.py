"""Retention (DESIGN §7, `backfillctl gc`): what to forget is decided, then done.

Three rules, as DataWorks keeps instances and logs:

(a) a backfill that finished (or was deleted) more than `retention.instances` ago, and
    has nothing unfinished, loses its instances with their attempts, events and files,
    all at once. A deleted backfill then goes too; one that is still applied is kept,
    marked `collected`, so that applying its unchanged spec does not run it again.
    Instances of a backfill that is still under way are never deleted: their dependents
    and later dates rely on them, and apply would create them again.
(b) the log of a finished attempt that ended more than the log retention of its
    instance's resource group type ago (a group the store does not know counts as
    `shared`) is removed, and the attempt forgets it;
(c) a log of a finished instance larger than `maxLogSize` keeps its last maxLogSize
    bytes after one line saying how many were cut (an earlier cut counts, so cutting
    twice changes nothing).

`decide()` is pure (rows, file sizes and `now` in; a `Collection` out), so every
threshold is tested without a clock. `collect()` carries it out: each batch is one
guarded transaction, and files are touched only after the rows that name them have
changed, so a locked store changes nothing, and an instance rerun meanwhile is kept.

The plan names files as the store does (where they were written); they are weighed,
removed and cut where they are now, in the store's runs directory (`RunFiles`), and
never outside it: a copy of a checkout collects its own files, not the original's.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from backfill_ctl.core.records import FINISHED
from backfill_ctl.usecases.log_cuts import LogFile, cut, inspect

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from backfill_ctl.backends.files import RunFiles
    from backfill_ctl.core.records import AttemptRecord, BackfillRecord, InstanceAge
    from backfill_ctl.spec.model import Retention
    from backfill_ctl.state import RetentionStore

BATCH = 500  # instances or logs per transaction: the controller waits for none for long
DEFAULT_TYPE = "shared"
_SIBLINGS = (".log", ".pid", ".status")  # the local backend's files of an attempt
_T = TypeVar("_T")


@dataclass(frozen=True)
class DropInstance:
    """A finished instance gc removes, with its attempts' files."""

    id: str
    backfill: str
    attempts: int
    logs: int  # log files that exist
    size: int  # their bytes
    files: tuple[str, ...]  # every file of its attempts, to remove


@dataclass(frozen=True)
class DropLog:
    """An attempt's log file gc removes."""

    instance: str
    number: int
    backfill: str
    path: str
    size: int
    group_type: str


@dataclass(frozen=True)
class CutLog:
    """An attempt's log file gc cuts to its last bytes."""

    instance: str
    number: int
    backfill: str
    path: str
    removed: int  # bytes this cut removes


@dataclass
class Collection:
    """What gc deletes, removes and cuts."""

    instances: list[DropInstance] = field(default_factory=list)
    backfills: list[str] = field(default_factory=list)  # deleted backfills removed
    logs: list[DropLog] = field(default_factory=list)
    cuts: list[CutLog] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)  # applied backfills kept as collected

    @property
    def empty(self) -> bool:
        return not (self.instances or self.backfills or self.logs or self.cuts or self.collected)

    @property
    def freed(self) -> int:
        return (
            sum(d.size for d in self.instances)
            + sum(d.size for d in self.logs)
            + sum(c.removed for c in self.cuts)
        )

    def messages(self) -> list[tuple[str, str]]:
        """(backfill, what was done to it) for every backfill touched, by name."""
        parts: dict[str, list[str]] = defaultdict(list)
        for name, count in sorted(Counter(d.backfill for d in self.instances).items()):
            parts[name].append(f"{count} instance(s) deleted")
        for name, count in sorted(Counter(d.backfill for d in self.logs).items()):
            parts[name].append(f"{count} log(s) removed")
        for name, count in sorted(Counter(c.backfill for c in self.cuts).items()):
            parts[name].append(f"{count} log(s) cut")
        for name in self.backfills:
            parts[name].append("the backfill deleted")
        for name in self.collected:
            parts[name].append("the backfill kept as collected")
        return [(name, ", ".join(parts[name])) for name in sorted(parts)]


def attempt_files(attempt: AttemptRecord) -> tuple[str, ...]:
    """An attempt's files: its log, and the local backend's log, pid and status files."""
    found = [attempt.log] if attempt.log else []
    base = attempt.handle.get("base")
    if isinstance(base, str):
        found += [base + suffix for suffix in _SIBLINGS]
    return tuple(dict.fromkeys(found))


def _older(at: float, now: float, seconds: float) -> bool:
    return at < now - seconds


def decide(
    now: float,
    retention: Retention,
    backfills: Iterable[BackfillRecord],
    instances: Iterable[InstanceAge],
    attempts: Iterable[AttemptRecord],
    group_types: Mapping[str, str],
    files: Mapping[str, LogFile],
) -> Collection:
    """The three rules, on the store's rows and the log files found (path -> LogFile)."""
    instances = list(instances)
    attempts_of: dict[str, list[AttemptRecord]] = defaultdict(list)
    for a in attempts:
        attempts_of[a.instance].append(a)
    out = Collection()
    records = list(backfills)
    done = _expired(records, instances, now, retention.instances.total_seconds())
    for i in instances:
        if i.backfill in done:
            out.instances.append(_drop(i, attempts_of.get(i.id, []), files))
    out.backfills = [b.name for b in records if b.name in done and b.status == "deleted"]
    out.collected = [
        b.name for b in records if b.name in done and b.status not in ("deleted", "collected")
    ]
    dropped = {d.id for d in out.instances}
    log_ages: dict[str, float] = {kind: age.total_seconds() for kind, age in retention.logs}
    for i in instances:
        if i.id not in dropped:
            kind = group_types.get(i.resource_group, DEFAULT_TYPE)
            kind = kind if kind in log_ages else DEFAULT_TYPE
            _log_rules(
                out,
                i,
                attempts_of.get(i.id, []),
                files,
                now,
                log_ages[kind],
                kind,
                retention.max_log_size,
            )
    return out


def _expired(
    records: list[BackfillRecord], instances: list[InstanceAge], now: float, keep: float
) -> set[str]:
    """Backfills finished (or deleted) longer than `keep` ago, none of whose instances
    is unfinished (a rerun reopens a backfill)."""
    unfinished = {i.backfill for i in instances if i.state not in FINISHED}
    return {
        b.name
        for b in records
        if b.name not in unfinished
        and (b.status == "deleted" or b.finished_at is not None)
        and _older(b.finished_at if b.finished_at is not None else b.applied_at, now, keep)
    }


def _drop(i: InstanceAge, mine: list[AttemptRecord], files: Mapping[str, LogFile]) -> DropInstance:
    logs = [files[a.log] for a in mine if a.log and a.log in files]
    paths = tuple(dict.fromkeys(p for a in mine for p in attempt_files(a)))
    return DropInstance(i.id, i.backfill, len(mine), len(logs), sum(f.size for f in logs), paths)


def _log_rules(
    out: Collection,
    i: InstanceAge,
    mine: list[AttemptRecord],
    files: Mapping[str, LogFile],
    now: float,
    limit: float,
    kind: str,
    max_size: int,
) -> None:
    """Logs older than their group type's retention go; larger ones of a finished
    instance are cut to `max_size`."""
    for a in mine:
        if not a.log or a.finished_at is None:
            continue
        log = files.get(a.log)
        if _older(a.finished_at, now, limit):
            out.logs.append(
                DropLog(i.id, a.number, i.backfill, a.log, log.size if log else 0, kind)
            )
        elif log and i.state in FINISHED and log.size - log.header > max_size:
            removed = log.size - log.header - max_size
            out.cuts.append(CutLog(i.id, a.number, i.backfill, a.log, removed))


# -- reading and changing the disk ----------------------------------------------------


def survey(
    store: RetentionStore,
    now: float,
    retention: Retention,
    group_types: Mapping[str, str],
    *,
    runs: RunFiles,
) -> Collection:
    """Read the store and the log files (those in its runs directory, `runs`), and decide."""
    attempts = store.attempts()
    files = {
        a.log: log
        for a in attempts
        if a.log
        and (path := runs.removable(a.log)) is not None
        and (log := inspect(str(path), retention.max_log_size)) is not None
    }
    return decide(
        now,
        retention,
        store.backfills(include_deleted=True),
        store.instance_ages(),
        attempts,
        group_types,
        files,
    )


@dataclass
class Done:
    """What gc did, and the files it could not change."""

    collection: Collection  # what was done (a guard may have kept some of the plan)
    errors: list[str] = field(default_factory=list)  # files that could not be changed


def collect(
    store: RetentionStore,
    plan: Collection,
    *,
    now: float,
    retention: Retention,
    at: float,
    actor: str,
    origin: str,
    runs: RunFiles,
) -> Done:
    """Carry out `plan` (from `survey` at `now`); one "gc" event per backfill touched.
    Files are removed and cut only in the store's runs directory, `runs`."""
    errors: list[str] = []
    instances, backfills, dropped = _delete_rows(
        store, plan, now - retention.instances.total_seconds(), at
    )
    _remove([p for d in instances for p in d.files] + [d.path for d in dropped], runs, errors)
    cuts = _cut_all(plan.cuts, retention.max_log_size, runs, errors)
    collected = [name for name in plan.collected if not store.counts(name)]
    for name in collected:  # (an instance rerun meanwhile keeps the backfill applied)
        store.update_backfill(
            name,
            at=at,
            actor=actor,
            origin=origin,
            event="instances collected by gc",
            status="collected",
        )
    gone = set(backfills) | set(collected)  # no instance left: their run folders go too
    folders = {
        path.parent
        for d in instances
        if d.backfill in gone
        for p in d.files
        if (path := runs.removable(p)) is not None
    }
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty, or already gone: leave it
            folder.rmdir()
    done = Collection(instances, backfills, dropped, cuts, collected)
    store.add_events("gc", done.messages(), at=at, actor=actor, origin=origin)
    return Done(done, errors)


def _delete_rows(
    store: RetentionStore, plan: Collection, cutoff: float, at: float
) -> tuple[list[DropInstance], list[str], list[DropLog]]:
    """Delete the planned rows the store still agrees to (a guard may keep some): the
    instances, the deleted backfills and the logs' rows that went (each attempt
    noting that gc removed its log `at`)."""
    deleted: set[str] = set()
    for chunk in _batches(plan.instances):
        deleted.update(store.delete_instances([d.id for d in chunk], finished_before=cutoff))
    backfills = (
        store.delete_backfills(plan.backfills, finished_before=cutoff) if plan.backfills else []
    )
    cleared: set[tuple[str, int]] = set()
    for logs in _batches(plan.logs):
        cleared.update(store.clear_logs([(d.instance, d.number, d.path) for d in logs], at=at))
    return (
        [d for d in plan.instances if d.id in deleted],
        backfills,
        [d for d in plan.logs if (d.instance, d.number) in cleared],
    )


def _mine(stored: str, runs: RunFiles, doing: str, errors: list[str]) -> Path | None:
    """The file to change for the one the store names `stored` (`RunFiles.removable`);
    None when it is not in the runs directory: said in `errors` if something is there."""
    path = runs.removable(stored)
    if path is None:
        left = runs.here(stored) or Path(stored)
        if os.path.lexists(left):  # (a link too: it is left)
            errors.append(
                f"did not {doing} {left}: "
                + (
                    runs.refused()
                    or f"it is not inside this store's runs directory {runs.top}; "
                    f"{doing} it by hand if it is this store's"
                )
            )
    return path


def _remove(stored: list[str], runs: RunFiles, errors: list[str]) -> None:
    for name in stored:
        path = _mine(name, runs, "remove", errors)
        if path is None:
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            errors.append(f"cannot remove {path}: {exc.strerror}")


def _cut_all(
    planned: list[CutLog], max_size: int, runs: RunFiles, errors: list[str]
) -> list[CutLog]:
    cuts = []
    for c in planned:
        path = _mine(c.path, runs, "cut", errors)
        if path is None:
            continue
        try:
            removed = cut(str(path), max_size)
        except OSError as exc:
            errors.append(f"cannot cut {path}: {exc.strerror}")
            continue
        if removed:
            cuts.append(replace(c, removed=removed))
    return cuts


def _batches(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
