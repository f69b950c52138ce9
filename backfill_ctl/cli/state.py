"""Finding the state store and the backend from the command line.

The store is `--state-file PATH` (`--state PATH` where that does not filter by
instance state), else $BACKFILLCTL_STATE, else the Config's `state`, else
`.backfillctl/state.db`; relative paths are relative to the current directory (the
repository root, where backfillctl is run from). Each of them may instead be a URL:
sqlite:///relative/path.db, sqlite:////absolute/path.db, or a PostgreSQL URL
(postgresql://USER@HOST:PORT/DATABASE), taken as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.backends.files import state_dir
from backfill_ctl.state import NoStore, open_store, store_path
from backfill_ctl.state.postgres.url import is_postgres_url

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.backends import Backend
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.spec.model import Config
    from backfill_ctl.state import StateStore

DEFAULT_STATE = "sqlite:///.backfillctl/state.db"
_STORE_HELP = (
    "The state store file, or a sqlite:/// or postgresql:// URL (default: "
    "$BACKFILLCTL_STATE, else the Config's state, else .backfillctl/state.db)."
)
StateOpt = Annotated[
    str | None, typer.Option("--state", "--state-file", help=_STORE_HELP, show_default=False)
]
# Where --state filters instances by their state (get, the operations), the store is
# named by --state-file only.
StateFileOpt = Annotated[
    str | None, typer.Option("--state-file", help=_STORE_HELP, show_default=False)
]


def state_file(flag: str | None, specs: Specs | None = None) -> Path | str:
    """The store's path, made absolute once, here: attempts run in other directories (the
    spec root), and the files they write next to the store must be found from there. Or
    a PostgreSQL URL, as given."""
    given = flag or os.environ.get("BACKFILLCTL_STATE")
    if not given:  # (the Config's is a URL)
        given = specs.config.state if specs is not None else DEFAULT_STATE
    elif not given.startswith("sqlite:") and "://" not in given:
        return Path(given).absolute()
    return given if is_postgres_url(given) else store_path(given, Path.cwd()).absolute()


def open_state(flag: str | None, specs: Specs | None = None, *, create: bool = False) -> StateStore:
    return open_store(state_file(flag, specs), create=create)


def existing_state(flag: str | None, specs: Specs | None = None) -> StateStore | None:
    """The store, or None when there is none yet (a dry run before the first apply)."""
    location = state_file(flag, specs)
    if isinstance(location, Path) and not location.exists():
        return None
    try:
        return open_store(location, create=False)
    except NoStore:
        return None


def backend_for(
    name: str,
    store: StateStore,
    config: Config | None = None,
    *,
    supervise: bool = False,
    root: str | None = None,
) -> Backend:
    """The Config's backend; `supervise` when this process runs the controller loop, whose
    attempts run in `root` (this process's `spec_root`)."""
    from backfill_ctl.backends import BackendContext, make_backend
    from backfill_ctl.spec.model import Config

    ctx = BackendContext(
        state_dir(store.path), config or Config(), store.store_id, supervise, spec_root=root
    )
    return make_backend(name, ctx)


def spec_root(specs: Specs, paths: Sequence[str]) -> str:
    """Where the commands this process starts run (the controller, `apply --wait`): the
    directory of the Config, else of the first path. Absolute but with symlinks kept:
    git-sync swaps a link to a new checkout on every commit, and the commands follow it.
    Found by whoever runs the commands, never stored: a pipeline applying the same specs
    from its own clone (removed afterwards) does not move them."""
    if specs.config.origin is not None and specs.config.origin.file != "<stdin>":
        return os.path.abspath(Path(specs.config.origin.file).parent)  # noqa: PTH100
    first = Path(paths[0]) if paths and paths[0] != "-" else Path.cwd()
    return os.path.abspath(first if first.is_dir() else first.parent)  # noqa: PTH100


def who(actor: str | None) -> str:
    """The actor written into events: the resolved actor, else the local user."""
    if actor:
        return actor
    import getpass  # (termios with it: only without an actor)

    return getpass.getuser()
