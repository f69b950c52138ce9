"""Retention: the three rules of gc on real stores and real log files, to the second.

Stores are built the way apply and the controller build them (save_apply, begin_attempt,
set_attempt_handle, end_attempt, transition), with each attempt's log, pid and status
files where the local backend keeps them. Every threshold is pinned one second on
each side.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from backfill_ctl.backends.files import RunFiles
from backfill_ctl.core.records import (
    WAITING,
    AttemptRecord,
    BackfillRecord,
    InstanceAge,
    InstanceRecord,
    Run,
)
from backfill_ctl.spec.model import Retention
from backfill_ctl.state import StateStore, open_store
from backfill_ctl.usecases import retention
from backfill_ctl.usecases.log_cuts import LogFile
from tests.builders import NOW as NOW_DT
from tests.cli.helpers import files_under

NOW = NOW_DT.timestamp()
DAY = 86400.0
OLD = NOW - 90 * DAY  # when the test backfills were applied
GROUPS = (
    ("rg-shared", "shared", 4),
    ("rg-exclusive", "exclusive", 4),
    ("rg-serverless", "serverless", 4),
)


def instance(
    id: str, backfill: str = "bf", group: str = "rg-shared", created: float = OLD
) -> InstanceRecord:
    return InstanceRecord(
        id=id,
        backfill=backfill,
        node=f"node-{id}",
        bizdate="2024-01-01",
        cyctime="2024-01-02T02:00:00+00:00",
        cyctime_epoch=OLD,
        timezone="UTC",
        group=0,
        sequence=0,
        priority=1,
        depends_on=(),
        run=Run(command=("true",)),
        resource_group=group,
        created_at=created,
        updated_at=created,
    )


class World:
    """A state store in `root`, with the local backend's files under root/runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store: StateStore = open_store(root / "state.db")
        self.runs = RunFiles.of(self.store)  # root/runs

    def apply(
        self, *instances: InstanceRecord, backfills: tuple[str, ...] = ("bf",), at: float = OLD
    ) -> None:
        self.store.save_apply(
            [
                BackfillRecord(name, "sha256:test", {"spec": {}}, applied_at=at)
                for name in backfills
            ],
            list(instances),
            [],
            [],
            at=at,
            actor="tester",
            origin="test",
            resource_groups=GROUPS,
        )

    def base(self, backfill: str, id: str, number: int) -> Path:
        return self.root / "runs" / backfill / f"{id}.{number}"

    def start(self, id: str, *, at: float, log: bytes = b"started\n") -> tuple[int, Path]:
        """An attempt that runs, with its files as the local backend writes them."""
        number = self.store.begin_attempt(id, "local", at=at, actor="ctl", origin="test")
        assert number is not None
        backfill = self.store.instances(ids=[id])[0].backfill
        base = self.base(backfill, id, number)
        base.parent.mkdir(parents=True, exist_ok=True)
        path = Path(f"{base}.log")
        path.write_bytes(log)
        Path(f"{base}.pid").write_text("4242\n")
        self.store.set_attempt_handle(id, number, {"pid": 4242, "base": str(base)}, str(path))
        return number, path

    def run(
        self,
        id: str,
        *,
        ended: float,
        state: str = "succeeded",
        log: bytes = b"output\n",
        then: str | None = None,
    ) -> Path:
        """One attempt of `id` that ended at `ended` in `state`; its log's path. `then`
        is what the instance becomes (default: `state`; "pending" for a retry)."""
        number, path = self.start(id, at=ended - 60, log=log)
        Path(f"{path.with_suffix('')}.status").write_text("0\n" if state == "succeeded" else "1\n")
        self.store.end_attempt(
            id,
            number,
            attempt_state=state,
            exit_code=0 if state == "succeeded" else 1,
            message=None,
            instance_state=then or state,
            at=ended,
            actor="ctl",
            origin="test",
        )
        return path

    def cancel(self, id: str, *, at: float, finished: bool = True) -> None:
        fields = {"finished_at": at} if finished else {}
        moved = self.store.transition(
            [id], "cancelled", allowed=WAITING, at=at, actor="ops", origin="test", **fields
        )
        assert moved == [id]

    def finish(self, backfill: str, at: float) -> None:
        self.store.update_backfill(
            backfill,
            at=at,
            actor="ctl",
            origin="test",
            event="finished: succeeded",
            finished_at=at,
            outcome="succeeded",
        )

    def gc(
        self,
        policy: Retention | None = None,
        now: float = NOW,
        types: dict[str, str] | None = None,
    ) -> retention.Done:
        policy = policy or Retention()
        found = (
            types
            if types is not None
            else {n: t for n, (t, _) in self.store.resource_groups().items()}
        )
        plan = retention.survey(self.store, now, policy, found, runs=self.runs)
        return retention.collect(
            self.store,
            plan,
            now=now,
            retention=policy,
            at=NOW + 5,
            actor="ops",
            origin="gc",
            runs=self.runs,
        )

    def ids(self) -> list[str]:
        return [i.id for i in self.store.instances()]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    found = World(tmp_path)
    yield found
    found.store.close()


KEEP = 30 * DAY  # the default retention.instances


# -- (a) whole backfills ---------------------------------------------------------------


def test_a_backfill_finished_past_the_retention_loses_its_instances_to_the_second(
    world: World,
) -> None:
    names = ("old", "young", "edge")
    world.apply(*(instance(f"{n}-1", n) for n in names), backfills=names)
    for name, ended in (("old", NOW - KEEP - 1), ("young", NOW - KEEP + 1), ("edge", NOW - KEEP)):
        world.run(f"{name}-1", ended=ended - 10)
        world.finish(name, ended)  # "edge": exactly the retention, not older than it

    done = world.gc()

    assert [d.id for d in done.collection.instances] == ["old-1"]
    assert done.collection.collected == ["old"]
    assert world.ids() == ["edge-1", "young-1"]
    old = world.store.backfill("old")
    assert old is not None and old.status == "collected"  # remembered: apply leaves it


@pytest.mark.parametrize("state", ["succeeded", "failed"])
def test_collected_instances_take_their_attempts_events_and_files(world: World, state: str) -> None:
    world.apply(instance("gone"), instance("stays", "other"), backfills=("bf", "other"))
    first = world.run("gone", ended=NOW - KEEP - 100, state="failed", then="pending")
    second = world.run("gone", ended=NOW - KEEP - 50, state=state)
    kept = world.run("stays", ended=NOW - DAY)
    world.finish("bf", NOW - KEEP - 1)
    files = [p.with_suffix(s) for p in (first, second) for s in (".log", ".pid", ".status")]
    assert all(f.exists() for f in files)

    done = world.gc()

    (dropped,) = done.collection.instances
    assert (dropped.id, dropped.attempts, dropped.logs, dropped.size) == ("gone", 2, 2, 14)
    assert world.store.attempts("gone") == []
    assert world.store.events(instance="gone") == []
    assert not any(f.exists() for f in files)
    assert kept.exists() and kept.with_suffix(".pid").exists()
    assert [a.number for a in world.store.attempts("stays")] == [1]
    assert world.store.events(instance="stays") != []
    assert done.errors == []


@pytest.mark.parametrize(
    "state", ["pending", "waiting-for-time", "waiting-for-resources", "running", "frozen"]
)
def test_nothing_of_a_backfill_under_way_is_deleted(world: World, state: str) -> None:
    # Its old finished instances stay too: later dates and dependents rely on them, and
    # applying its spec would create them again.
    world.apply(
        instance("done", created=NOW - 365 * DAY),
        instance("i", created=NOW - 365 * DAY),
        at=NOW - 365 * DAY,
    )
    world.run("done", ended=NOW - 300 * DAY, state="failed")
    if state == "running":
        world.start("i", at=NOW - 300 * DAY)
    elif state != "pending":
        world.store.transition(
            ["i"], state, allowed=["pending"], at=NOW - 300 * DAY, actor="t", origin="test"
        )

    done = world.gc()

    assert (done.collection.instances, done.collection.collected) == ([], [])
    assert world.ids() == ["done", "i"]  # (its old log went by rule (b): that is fine)
    assert world.store.backfill("bf") is not None


def test_a_deleted_backfill_goes_with_its_instances_and_events(world: World) -> None:
    world.apply(instance("i"))
    world.cancel("i", at=NOW - 40 * DAY)  # as `delete backfill/NAME` does
    world.store.update_backfill("bf", at=NOW - 40 * DAY, actor="ops", origin="t", status="deleted")

    done = world.gc()

    assert (done.collection.backfills, done.collection.collected) == (["bf"], [])
    assert world.store.backfills(include_deleted=True) == []
    assert world.ids() == []


def test_the_instance_retention_comes_from_the_config(world: World) -> None:
    world.apply(instance("old-1", "old"), instance("young-1", "young"), backfills=("old", "young"))
    for name, ended in (("old", NOW - 2 * DAY - 1), ("young", NOW - 2 * DAY + 1)):
        world.run(f"{name}-1", ended=ended - 10)
        world.finish(name, ended)

    world.gc(Retention(instances=timedelta(days=2)))

    assert world.ids() == ["young-1"]


def test_an_instance_rerun_after_the_survey_keeps_its_backfill(world: World) -> None:
    world.apply(instance("i"), instance("j"))
    log = world.run("i", ended=NOW - KEEP - 10)
    world.run("j", ended=NOW - KEEP - 10)
    world.finish("bf", NOW - KEEP - 1)
    plan = retention.survey(world.store, NOW, Retention(), {}, runs=world.runs)
    world.store.transition(["i"], "pending", allowed=["succeeded"], at=NOW, actor="ops", origin="t")

    done = retention.collect(
        world.store,
        plan,
        now=NOW,
        retention=Retention(),
        at=NOW,
        actor="ops",
        origin="gc",
        runs=world.runs,
    )

    assert [d.id for d in done.collection.instances] == ["j"]  # i is under way again
    assert done.collection.collected == []
    assert world.ids() == ["i"] and log.exists()
    record = world.store.backfill("bf")
    assert record is not None and record.status == "active"


# -- (b) logs by resource group type --------------------------------------------------------

LOG_RETENTION = Retention(
    logs=(
        ("shared", timedelta(days=1)),
        ("exclusive", timedelta(days=2)),
        ("serverless", timedelta(days=3)),
    )
)


@pytest.mark.parametrize(
    ("group", "days"),
    [("rg-shared", 1), ("rg-exclusive", 2), ("rg-serverless", 3), ("rg-unknown", 1)],
)
def test_logs_go_by_the_retention_of_their_group_type(world: World, group: str, days: int) -> None:
    world.apply(instance("old", group=group), instance("young", group=group))
    old = world.run("old", ended=NOW - days * DAY - 1, log=b"old log\n")
    young = world.run("young", ended=NOW - days * DAY + 1)

    done = world.gc(LOG_RETENTION)

    kind = "shared" if group == "rg-unknown" else group.removeprefix("rg-")
    assert done.collection.logs == [retention.DropLog("old", 1, "bf", str(old), 8, kind)]
    assert not old.exists() and young.exists()
    assert old.with_suffix(".pid").exists()  # only the log goes; the instance stays
    assert [a.log for a in world.store.attempts("old")] == [None]
    assert [a.log for a in world.store.attempts("young")] == [str(young)]
    assert world.ids() == ["old", "young"]


def test_default_log_retention_is_7_days_shared_and_30_days_otherwise(world: World) -> None:
    world.apply(
        *(
            instance(f"{kind}-{age}", group=f"rg-{kind}")
            for kind in ("shared", "exclusive", "serverless")
            for age in ("old", "young")
        )
    )
    limits = {"shared": 7 * DAY, "exclusive": 30 * DAY, "serverless": 30 * DAY}
    for t, limit in limits.items():
        world.run(f"{t}-old", ended=NOW - limit - 1)
        world.run(f"{t}-young", ended=NOW - limit + 1)

    done = world.gc(Retention(instances=timedelta(days=365)))

    assert [d.instance for d in done.collection.logs] == [
        "exclusive-old",
        "serverless-old",
        "shared-old",
    ]


def test_a_group_type_the_store_lacks_can_come_from_the_specs(world: World) -> None:
    world.apply(instance("i", group="rg-new"))
    world.run("i", ended=NOW - 7 * DAY - 1)

    done = world.gc(types={"rg-new": "exclusive"})

    assert done.collection.logs == []


def test_a_finished_attempt_of_an_instance_that_retries_loses_its_old_log(world: World) -> None:
    world.apply(instance("i"))
    log = world.run("i", ended=NOW - 8 * DAY, state="failed", then="pending")

    done = world.gc()

    assert [(d.instance, d.number) for d in done.collection.logs] == [("i", 1)]
    assert not log.exists()
    assert world.store.instances()[0].state == "pending"


# -- (c) large logs ---------------------------------------------------------------------


def test_a_large_log_of_a_finished_instance_keeps_its_last_bytes_after_a_line(
    world: World,
) -> None:
    world.apply(instance("big"), instance("exact"))
    big = world.run("big", ended=NOW - DAY, log=b"0123456789" + b"a" * 90 + b"TAIL\n")
    exact = world.run("exact", ended=NOW - DAY, log=b"x" * 64)

    done = world.gc(Retention(max_log_size=64))

    assert done.collection.cuts == [retention.CutLog("big", 1, "bf", str(big), 41)]
    assert (
        big.read_bytes() == b"[cut by backfillctl gc: 41 bytes removed]\n" + b"a" * 59 + b"TAIL\n"
    )
    assert exact.read_bytes() == b"x" * 64
    assert [a.log for a in world.store.attempts("big")] == [str(big)]


def test_cutting_again_changes_nothing_and_a_grown_cut_log_counts_every_byte(
    world: World,
) -> None:
    world.apply(instance("big"))
    big = world.run("big", ended=NOW - DAY, log=b"z" * 200)
    world.gc(Retention(max_log_size=100))
    first = big.read_bytes()

    again = world.gc(Retention(max_log_size=100))

    assert again.collection.cuts == []
    assert big.read_bytes() == first == b"[cut by backfillctl gc: 100 bytes removed]\n" + b"z" * 100
    with big.open("ab") as f:  # as if it had been appended to since
        f.write(b"y" * 10)
    world.gc(Retention(max_log_size=100))
    assert big.read_bytes() == (
        b"[cut by backfillctl gc: 110 bytes removed]\n" + b"z" * 90 + b"y" * 10
    )


def test_logs_of_unfinished_instances_are_not_cut(world: World) -> None:
    world.apply(instance("running"), instance("retrying"))
    _, running = world.start("running", at=NOW - DAY, log=b"r" * 500)
    retrying = world.run(
        "retrying", ended=NOW - DAY, state="failed", then="pending", log=b"f" * 500
    )

    done = world.gc(Retention(max_log_size=10))

    assert done.collection.cuts == []
    assert running.read_bytes() == b"r" * 500 and retrying.read_bytes() == b"f" * 500


def test_a_log_that_is_removed_is_not_cut_too(world: World) -> None:
    world.apply(instance("i"))
    log = world.run("i", ended=NOW - 8 * DAY, log=b"q" * 500)

    done = world.gc(Retention(max_log_size=10))

    assert (len(done.collection.logs), done.collection.cuts, log.exists()) == (1, [], False)


# -- events and the pure decision ----------------------------------------------------------


def test_one_gc_event_per_backfill_touched(world: World) -> None:
    world.apply(
        instance("a1", "a"),
        instance("a2", "a"),
        instance("b1", "b"),
        instance("c1", "c"),
        backfills=("a", "b", "c"),
    )
    world.run("a1", ended=NOW - KEEP - 1)
    world.run("a2", ended=NOW - 8 * DAY)
    world.run("b1", ended=NOW - DAY, log=b"b" * 100)
    world.run("c1", ended=NOW - DAY)  # untouched
    before = world.store.last_event_id()

    world.gc(Retention(max_log_size=50))

    events = world.store.events(after=before)
    assert [(e.kind, e.backfill, e.message, e.actor, e.origin, e.at) for e in events] == [
        ("gc", "a", "2 log(s) removed", "ops", "gc", NOW + 5),  # a is under way: logs only
        ("gc", "b", "1 log(s) cut", "ops", "gc", NOW + 5),
    ]


def test_nothing_to_collect_writes_no_event(world: World) -> None:
    world.apply(instance("i"))
    world.run("i", ended=NOW - DAY)
    before = world.store.last_event_id()

    done = world.gc()

    assert done.collection.empty and world.store.last_event_id() == before


def _attempt(instance: str, number: int, finished: float | None, log: str | None) -> AttemptRecord:
    return AttemptRecord(instance, number, "fake", "succeeded", 0.0, {}, 0, None, log, finished)


# -- only the store's own files ----------------------------------------------------------


def test_a_copy_of_the_store_collects_its_own_files_and_none_of_the_original_s(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The copy's rows name the original's files: each rule acts on the copy's."""
    world.apply(instance("gone", "old"), instance("b1"), instance("b3"), backfills=("bf", "old"))
    world.run("gone", ended=NOW - KEEP - 1)
    world.run("b1", ended=NOW - 8 * DAY)
    world.run("b3", ended=NOW - DAY, log=b"3" * 100)
    world.finish("old", NOW - KEEP - 1)
    world.store.close()
    elsewhere = tmp_path_factory.mktemp("copy") / "store"
    shutil.copytree(world.root, elsewhere)
    original = files_under(world.root / "runs")
    copy = World(elsewhere)
    try:
        done = copy.gc(Retention(max_log_size=64))
    finally:
        copy.store.close()

    c = done.collection
    assert ([d.id for d in c.instances], [d.instance for d in c.logs]) == (["gone"], ["b1"])
    assert [(x.instance, x.removed) for x in c.cuts] == [("b3", 36)]
    assert (c.instances[0].size, c.logs[0].size) == (7, 7)  # weighed in the copy
    assert done.errors == []
    assert files_under(world.root / "runs") == original
    left = files_under(copy.root / "runs")
    assert sorted(p.name for p in left) == [
        "b1.1.pid",
        "b1.1.status",
        "b3.1.log",
        "b3.1.pid",
        "b3.1.status",
    ]
    assert left[copy.root / "runs" / "bf" / "b3.1.log"].startswith(b"[cut by backfillctl gc: 36 ")


def test_files_the_store_names_outside_its_runs_directory_are_left_and_said(
    world: World, tmp_path: Path
) -> None:  # (world.root is tmp_path)
    """A log row naming a path that is no runs directory's, and a backfill's directory in
    the runs directory that is a symlink leading out of it: neither is removed nor cut."""
    world.apply(instance("odd"), instance("big", "linked"), backfills=("bf", "linked"))
    number = world.store.begin_attempt("odd", "local", at=NOW - 9 * DAY, actor="c", origin="t")
    assert number is not None
    victim = tmp_path / "victim.log"
    victim.write_text("not gc's\n")
    world.store.set_attempt_handle("odd", number, {"pid": 4242}, str(victim))
    world.store.end_attempt(
        "odd",
        number,
        attempt_state="succeeded",
        exit_code=0,
        message=None,
        instance_state="succeeded",
        at=NOW - 8 * DAY,
        actor="ctl",
        origin="test",
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (world.root / "runs").mkdir(exist_ok=True)
    (world.root / "runs" / "linked").symlink_to(outside)
    big = world.run("big", ended=NOW - DAY, log=b"b" * 100)  # written through the link
    before = files_under(outside)

    done = world.gc(Retention(max_log_size=64))

    assert [d.instance for d in done.collection.logs] == ["odd"]  # the row forgets it
    assert done.collection.cuts == []
    assert victim.read_text() == "not gc's\n"
    assert files_under(outside) == before and big.read_bytes() == b"b" * 100
    assert done.errors == [
        f"did not remove {victim}: it is not inside this store's runs directory "
        f"{world.root / 'runs'}; remove it by hand if it is this store's",
    ]


def test_decide_is_pure_and_uses_the_given_file_sizes() -> None:
    rows = [
        InstanceAge("x", "bf", "succeeded", "g", NOW - 10 * DAY, OLD),
        InstanceAge("y", "bf", "failed", "g", NOW - 10 * DAY, OLD),
    ]
    attempts = [_attempt("x", 1, NOW - 10 * DAY, "/x.log"), _attempt("y", 1, NOW - DAY, "/y.log")]
    files = {"/x.log": LogFile(5), "/y.log": LogFile(300, cut=7, header=40)}

    found = retention.decide(
        NOW,
        Retention(max_log_size=100),
        [BackfillRecord("bf", "d", {})],
        rows,
        attempts,
        {"g": "exclusive"},
        files,
    )

    assert (found.instances, found.backfills, found.logs) == ([], [], [])
    assert found.cuts == [retention.CutLog("y", 1, "bf", "/y.log", 160)]  # 300 - 40 - 100


def test_attempt_files_are_the_log_and_the_local_backends_siblings() -> None:
    local = AttemptRecord(
        "i", 1, "local", "succeeded", 0.0, {"base": "/r/b/i.1"}, 0, None, "/r/b/i.1.log"
    )

    assert retention.attempt_files(local) == ("/r/b/i.1.log", "/r/b/i.1.pid", "/r/b/i.1.status")
    assert retention.attempt_files(_attempt("i", 1, 1.0, None)) == ()
