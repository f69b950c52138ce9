"""The store contract (tests/state/contract.py) run against every store: SQLite (a new
file per store), PostgreSQL (a new database per store; the tier of BACKFILLCTL_PG=1) and
the in-memory store."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from backfill_ctl.state import StateStore, open_store
from backfill_ctl.state.memory import MemoryStore
from backfill_ctl.state.sqlite import SQLiteStore
from tests.state import contract
from tests.state.contract import Make, StoreContract
from tests.tools.postgres import PostgresServer


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def make(self, tmp_path: Path) -> Make:
        count = itertools.count()

        def make() -> SQLiteStore:
            store = open_store(tmp_path / f"s{next(count)}.db")
            assert isinstance(store, SQLiteStore)
            return store

        return make


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def make(self, postgres: PostgresServer) -> Make:
        from backfill_ctl.state.postgres.store import PostgresStore

        def make() -> StateStore:
            store = open_store(postgres.database())
            assert isinstance(store, PostgresStore)
            return store

        return make


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def make(self) -> Make:
        def make() -> MemoryStore:
            store = open_store("memory:")
            assert isinstance(store, MemoryStore)
            return store

        return make


def test_the_contract_exercises_every_method_of_the_protocol() -> None:
    source = Path(contract.__file__).read_text()
    attributes = {a for base in StateStore.__mro__ for a in vars(base).get("__annotations__", {})}
    methods = {name for name in {*dir(StateStore), *attributes} if not name.startswith("_")}
    assert methods >= {"save_apply", "begin_attempt", "acquire_lease", "path", "store_id"}
    assert sorted(m for m in methods if f".{m}" not in source) == []
