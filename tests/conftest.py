"""The PostgreSQL server of the tests (tests/tools/postgres.py): one per session, started
only with BACKFILLCTL_PG=1 (.ci/run's PostgreSQL tier); without it the tests that need
it skip, saying so. Under BACKFILLCTL_PG=1 a server that cannot start fails them.

`--store postgresql` runs the tests that make their stores with tests.running.new_store
(the controller's, tests/runtime) on a new database of that server each."""

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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store of tests.running.new_store (postgresql: needs BACKFILLCTL_PG=1)",
    )


@pytest.fixture(autouse=True)
def _stores(request: pytest.FixtureRequest) -> Iterator[None]:
    """With --store postgresql, tests.running.new_store makes a new database."""
    if request.config.getoption("--store") != "postgresql":
        yield
        return
    from tests import running

    server = request.getfixturevalue("postgres")
    running.NEW_STORE_URL = server.database
    yield
    running.NEW_STORE_URL = None
