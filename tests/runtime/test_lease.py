"""The lease in the loop (in-process, a real SQLite store, the in-memory backend): a
controller that lost the lease starts nothing more and waits for it again as a standby;
the lease is renewed while the loop idles, however long its interval; a store locked by
a paused writer is waited for, not a reason to exit."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.runtime.controller import Controller
from backfill_ctl.runtime.lease import this_host
from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.running import Clock, applied, where
from tests.test_reliability import wait_until

DATES = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
TWO = (node("a", resourceGroup="rg"), node("b", resourceGroup="rg"))


def _controller(
    store_path: Path | str, backend: FakeBackend, said: list[str], ttl: float
) -> Controller:
    return Controller(
        open_store(store_path), backend, clock=Clock(), say=said.append, lease_ttl=ttl
    )


def test_a_controller_that_lost_the_lease_starts_nothing_and_becomes_a_standby(
    tmp_path: Path,
) -> None:
    path = where(
        applied(
            tmp_path, *TWO, backfill(dates=DATES, select={"method": "manual", "roots": ["a", "b"]})
        )
    )
    release = threading.Event()
    backend = FakeBackend(lambda spec: 0 if release.is_set() else None)  # run until released
    said_a: list[str] = []
    a = _controller(path, backend, said_a, ttl=0.6)
    assert a.acquire(wait=False)
    a.load()
    a.tick()
    started = len(backend.started)
    assert started == 2  # the group's two slots
    time.sleep(0.7)  # A "paused" past its lease: B takes it and adopts A's attempts
    b = _controller(path, backend, [], ttl=0.6)
    assert b.acquire(wait=False)
    b.load()
    assert set(b.running) == set(a.running)
    a.tick()  # A resumes: it must renew, finds B's epoch, starts nothing
    assert a.lost and len(backend.started) == started
    assert "back to standby" in said_a[-1]

    thread = threading.Thread(target=a.run, kwargs={"interval": 0.05}, daemon=True)
    thread.start()
    wait_until(lambda: not a.running and not a.lost, 5, "A to let go of what it followed")
    assert a.acquire(wait=False) is False and thread.is_alive()  # a standby, not gone
    release.set()
    for _ in range(20):
        b.tick()
    b.release()
    wait_until(lambda: any("took the lease again" in s for s in said_a), 10, "A to drive again")
    a.stopping = True
    thread.join(10)
    store = open_store(path)
    wait_until(lambda: store.backfill("bf").finished_at, 1, "the end")  # type: ignore[union-attr]
    runs = [(s.instance, s.number) for s in backend.started]
    assert len(runs) == len(set(runs)) == len({s.instance for s in backend.started}) == 8


def test_the_lease_is_renewed_while_the_loop_idles_with_a_long_interval(tmp_path: Path) -> None:
    path = where(applied(tmp_path, *TWO))
    a = _controller(path, FakeBackend(), [], ttl=0.6)
    assert a.acquire(wait=False)
    a.load()
    thread = threading.Thread(target=a.run, kwargs={"interval": 30}, daemon=True)
    thread.start()
    try:
        b = _controller(path, FakeBackend(), [], ttl=0.6)
        for _ in range(8):  # 2 s: more than three times the lease
            time.sleep(0.25)
            assert b.acquire(wait=False) is False
    finally:
        a.stopping = True
        a.release()


def test_a_store_locked_by_a_paused_writer_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(tmp_path, *TWO, backfill(), sqlite=True)  # SQLite's own lock, held below
    monkeypatch.setattr("backfill_ctl.state.sqlite.BUSY_TIMEOUT", 0.1)
    said: list[str] = []
    c = _controller(tmp_path / "state.db", FakeBackend(), said, ttl=5)
    holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a controller paused in the middle of a write
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(c.acquire(poll=0.05)), daemon=True)
    thread.start()
    try:
        wait_until(lambda: said, 5, "the controller to say why it waits")
        time.sleep(0.3)
        assert thread.is_alive() and not got
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    thread.join(5)
    assert got == [True]
    assert said == [
        f"the state store {tmp_path / 'state.db'} is locked by another process: "
        "waiting for it to be writable"
    ]


def test_the_lease_of_a_killed_controller_nobody_reaped_yet_is_taken_over(tmp_path: Path) -> None:
    path = where(applied(tmp_path, *TWO))
    zombie = subprocess.Popen(["sleep", "30"])
    zombie.kill()
    time.sleep(0.2)  # dead, and not reaped: a zombie, as under a parent that is busy
    try:
        store = open_store(path)
        store.acquire_lease("killed", pid=zombie.pid, host=this_host(), ttl=3600)
        said: list[str] = []
        assert _controller(path, FakeBackend(), said, ttl=5).acquire(wait=False)
        assert said == [f"taking over the lease of a controller that is gone (pid {zombie.pid})"]
    finally:
        zombie.wait()
