"""A real store (SQLite; PostgreSQL with --store postgresql) with specs applied, and a
controller on the in-memory backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.runtime.controller import Controller
from backfill_ctl.state import StateStore, open_store
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.plan import make_plan
from tests.builders import resource_group, specs_of, workspace

NOW = datetime(2024, 3, 20, 1, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


# Set by tests/conftest.py under --store postgresql: a new database's URL per call.
NEW_STORE_URL: Callable[[], str] | None = None


def new_store(tmp_path: Path, *, sqlite: bool = False) -> StateStore:
    """A new, empty store: a SQLite file in `tmp_path` (always, with `sqlite`: a test of
    SQLite's own locks), or with --store postgresql a new database of the session's
    PostgreSQL server."""
    url = NEW_STORE_URL() if NEW_STORE_URL and not sqlite else None
    store = open_store(url or tmp_path / "state.db")
    _OPENED[store.path] = url or store.path
    return store


_OPENED: dict[str, str] = {}  # a store's path (a URL's password hidden) -> how to open it


def where(store: StateStore) -> str:
    """What opens `store` again (a second connection, as another process would): its
    file, or its URL with the password."""
    return _OPENED.get(store.path, store.path)


def applied(
    tmp_path: Path, *docs: dict[str, Any], operators: tuple[str, ...] = (), sqlite: bool = False
) -> StateStore:
    """A store holding `docs` applied; the workspace `ws` is operated by `operators`."""
    specs = specs_of(workspace(operators=operators), resource_group("rg", 2), *docs)
    plan, diagnostics = make_plan(specs, NOW, None)
    assert not [d for d in diagnostics if d.is_error], diagnostics
    store = new_store(tmp_path, sqlite=sqlite)
    at = NOW.timestamp()
    changes = reconcile.diff(reconcile.desired(specs, plan, None, at), store, prune=False)
    reconcile.apply(store, changes, specs, at=at, actor="test", origin="apply")
    return store


def controller(
    store: StateStore, backend: Any = None, clock: Clock | None = None, timer: Clock | None = None
) -> Controller:
    """A controller holding the lease, loaded; timeouts on `timer`, else on `clock` (a
    test's time passes for both)."""
    clock = clock or Clock()
    c = Controller(store, backend or FakeBackend(), clock=clock, timer=timer or clock)
    assert c.acquire(wait=False)
    c.load()
    return c


def states(store: StateStore) -> dict[str, str]:
    return {f"{i.node}@{i.bizdate[-2:]}": i.state for i in store.instances()}


def drain(c: Controller, ticks: int = 50) -> None:
    for _ in range(ticks):
        c.tick()
        if not c.running and c.scheduler.finished():
            return
