"""`backfillctl state migrate --from STORE --to STORE`: move a state store, with its whole
history, into an empty one (usecases/migrate.py says what moves and why it is safe).

A store is a SQLite URL (sqlite:///relative.db, sqlite:////absolute.db), a file path, or
a postgresql:// URL (shown with its password as ***). The source must exist; the target
is made when there is none. Progress goes to stderr, the summary to stdout. Exit 0 when
moved, 2 when refused (a held lease, a target that is not empty, a newer schema, an
unreachable store): then nothing was written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.cli.console import err, out
from backfill_ctl.errors import UsageError
from backfill_ctl.state import MEMORY, open_store, store_path
from backfill_ctl.state.postgres.url import is_postgres_url

if TYPE_CHECKING:
    from backfill_ctl.state.protocols import MovableStore

state_app = typer.Typer(
    help="The state store itself."
    "\n\n\b\nExamples:"
    "\n  backfillctl state migrate --from sqlite:///.backfillctl/state.db \\"
    "\n      --to postgresql://backfill@db.example.com/backfill",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def location(value: str) -> Path | str:
    """A store named on the command line: a PostgreSQL URL as it is, a SQLite URL or a
    path as an absolute path."""
    if is_postgres_url(value):
        return value
    if value == MEMORY:
        raise UsageError("an in-memory store cannot be migrated", hint="name a store file or a URL")
    if value.startswith("sqlite:"):
        return store_path(value, Path.cwd()).absolute()
    return Path(value).absolute()


def _open(place: Path | str, *, create: bool) -> MovableStore:
    store = open_store(place, create=create)
    if not hasattr(store, "rows"):  # pragma: no cover - every store a URL opens has it
        raise UsageError(f"the store {store.path} cannot be migrated")
    return store  # type: ignore[return-value]


class _Progress:
    """One line on stderr: rewritten in place on a terminal, else a line per table."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.began = time.monotonic()

    def __call__(self, table: str, done: int, total: int) -> None:
        name = table.replace("_", " ")
        line = f"copying {name}: {done:,} of {total:,} ({time.monotonic() - self.began:.1f} s)"
        if self.live:
            sys.stderr.write(f"\r\x1b[K{line}" + ("\n" if done == total else ""))
            sys.stderr.flush()
        elif done == total:
            err(line)


def migrate_command(
    source: Annotated[
        str,
        typer.Option(
            "--from", metavar="STORE", help="The store to move (it must exist).", show_default=False
        ),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="STORE",
            help="An empty store to move it into (made when there is none).",
            show_default=False,
        ),
    ],
    batch: Annotated[int, typer.Option("--batch", metavar="ROWS", hidden=True)] = 10_000,
) -> None:
    """Move a state store with its whole history (backfills, instances, attempts, events
    with their ids, the lease's epoch, the store's id) into an empty store.

    Refused, with nothing written, while a controller holds the source's lease, when the
    target is not empty or either store's schema is newer than this backfillctl. The
    source is left as it was: point controllers and CI at the target afterwards, and
    start no controller on the source again.

    \b
    Examples:
      backfillctl state migrate --from sqlite:///.backfillctl/state.db \\
          --to postgresql://backfill@db.example.com:5432/backfill
      backfillctl state migrate --from postgresql://backfill@db/backfill --to backup.db
    """
    from backfill_ctl.usecases.migrate import migrate

    places = location(source), location(target)
    if places[0] == places[1]:
        raise UsageError("--from and --to name the same store", hint="name an empty target")
    src = _open(places[0], create=False)
    try:
        moved = migrate(
            src,
            lambda: _open(places[1], create=True),
            now=time.time(),
            progress=_Progress(),
            batch=batch,
        )
    finally:
        src.close()
    rows = ", ".join(f"{n:,} {t.replace('_', ' ')}" for t, n in moved.counts.items())
    out(f"moved {src.path} to {moved.target} in {moved.seconds:.1f} s: {rows}")
    out(f"store id {moved.store_id}, lease epoch {moved.epoch}: counts verified")
    err(
        f"next: point controllers, CI and operators at {moved.target} ($BACKFILLCTL_STATE, "
        "--state-file or the Config's state); the source was left as it was: start no "
        f"controller on it again (both stores are {moved.store_id}: the Kubernetes Jobs "
        "of one would be adopted by the other's controller)"
    )


state_app.command("migrate")(migrate_command)
