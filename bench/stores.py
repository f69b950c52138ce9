"""The state stores a benchmark compares, side by side in one run (issue 14): SQLite (a
file in the run's temporary directory) and, when asked, PostgreSQL:

- `--state postgresql://USER@HOST:PORT/DB`: a server of the reader's; each measurement
  gets a fresh database there (CREATE DATABASE, so the role needs CREATEDB), dropped at
  the end. The password as libpq takes it (the URL, $PGPASSWORD, a passfile).
- `--postgres`: a server of the bench's own (tests/tools/postgres.py: Debian's
  `postgresql`, as root; `python -m tests.tools.postgres install`), on 127.0.0.1 in a
  temporary directory, stopped and removed at the end. It runs with PostgreSQL's
  default durability (fsync, synchronous_commit and full_page_writes on), not the test
  server's shortcuts: each commit waits for its WAL on disk, as on a team's server.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

SQLITE, POSTGRES = "sqlite", "postgresql"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--state",
        metavar="URL",
        help="also measure PostgreSQL: fresh databases on the server of this postgresql:// URL",
    )
    group.add_argument(
        "--postgres",
        action="store_true",
        help="also measure PostgreSQL: on a server of the bench's own (tests/tools/postgres.py)",
    )


class Stores:
    """Where each measurement's fresh store goes, for each kind measured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._server = None
        self._admin: str | None = None
        self._made: list[str] = []
        self._names = itertools.count()
        if getattr(args, "postgres", False):
            from tests.tools.postgres import PostgresServer

            self._server = PostgresServer(durable=True)
            self._server.start()
        elif getattr(args, "state", None):
            if not args.state.startswith(("postgresql://", "postgres://")):
                raise SystemExit(f"--state takes a postgresql:// URL, not {args.state!r}")
            self._admin = args.state
        self.kinds = [SQLITE] + ([POSTGRES] if self._server or self._admin else [])

    def fresh(self, kind: str, directory: Path) -> str:
        """A new, empty store of `kind`: a file in `directory` or a new database."""
        if kind == SQLITE:
            directory.mkdir(parents=True, exist_ok=True)
            return str(directory / "state.db")
        if self._server is not None:
            url = self._server.database()
        else:
            assert self._admin is not None
            name = f"bench_{os.getpid()}_{next(self._names)}"
            self._sql(f"CREATE DATABASE {name}")
            parts = urlsplit(self._admin)
            url = urlunsplit(parts._replace(path=f"/{name}"))
        self._made.append(url)
        return url

    def drop(self, url: str) -> None:
        """Drop a database made by `fresh` (its stores closed or not)."""
        if url in self._made:
            self._made.remove(url)
            name = urlsplit(url).path.lstrip("/")
            self._sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _sql(self, statement: str) -> None:
        if self._server is not None:
            self._server.sql(statement)
            return
        import psycopg

        assert self._admin is not None
        with psycopg.connect(self._admin, autocommit=True) as db:
            db.execute(statement)  # type: ignore[arg-type]

    def close(self) -> None:
        for url in list(self._made):
            self.drop(url)
        if self._server is not None:
            self._server.stop(remove=True)


def label(kind: str) -> str:
    return "SQLite" if kind == SQLITE else "PostgreSQL"
