"""The PostgreSQL server of the state tests (tests/tools/postgres.py): one per session,
started only with BACKFILLCTL_PG=1 (.ci/run's PostgreSQL tier); without it the tests
that need it skip, saying so. Under BACKFILLCTL_PG=1 a server that cannot start fails
them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.tools.postgres import PostgresServer, bin_dir

ENABLED = os.environ.get("BACKFILLCTL_PG") == "1"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if not ENABLED:
        pytest.skip("the PostgreSQL tier: BACKFILLCTL_PG=1 (.ci/run runs it)")
    if bin_dir() is None:
        pytest.fail("no PostgreSQL server: python -m tests.tools.postgres install")
    try:
        server = PostgresServer()
        server.start()
    except Exception as exc:  # the tier must not pass without its server
        pytest.fail(f"the PostgreSQL server did not start: {exc}")
    yield server
    server.stop(remove=True)


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A new, empty database of the session's server."""
    return postgres.database()
