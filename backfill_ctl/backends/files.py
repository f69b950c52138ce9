"""Where the files backends keep beside a state store are, and which of them are its own.

A store's runs directory is `<state dir>/runs`: beside the store file, or .backfillctl/
of the current directory for a PostgreSQL store. The local backend keeps an attempt's
log and pid file in `runs/<store id>/<backfill>/`, the kubernetes backend its copy of a
pod's log in `runs/<backfill>/`.

The store names each file by the absolute path it was written at. A checkout copied or
moved takes its store and its runs directory along, and the paths in the store go on
naming the old place: the copy's gc would remove the original's logs, and the moved
checkout would find none of its own. So a stored path is taken for its tail
(`<store id>/<backfill>/<file>`, or `<backfill>/<file>`) under the store's runs
directory now (`here`). A file is read there, else where it was written (`readable`:
reading moves nothing); and it is removed or cut only where it is inside the runs
directory once links are resolved, a runs directory that is not a symlink nor another
user's (`removable`). Nothing stored is rewritten: a store's paths stay as they were
written, and a store written before reads and collects as it did in place.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from backfill_ctl.backends import RUNS, BackendError
from backfill_ctl.state.postgres.url import is_postgres_url

if TYPE_CHECKING:
    from backfill_ctl.state.protocols import StoreIdentity


def state_dir(location: Path | str) -> Path:
    """Where backends keep their files (logs, pid and status files): beside a store file;
    for a PostgreSQL store (`location` its URL, or the store's path), .backfillctl/ in the
    current directory (the repository root)."""
    if is_postgres_url(location):
        return (Path.cwd() / ".backfillctl").absolute()
    return Path(location).parent


def refusal(d: Path, info: os.stat_result) -> str | None:
    """Why the directory `d` (`info`: its lstat) is not one to keep attempts' files in,
    and what to do; None if it is (a directory of this user's)."""
    again = "(backfillctl makes it again, private to this user)"
    if stat.S_ISLNK(info.st_mode):
        return f"{d} is a symlink, not a directory: refusing to use it; remove it {again}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{d} is not a directory: refusing to use it; remove it {again}"
    if info.st_uid != os.getuid():
        return (
            f"{d} belongs to uid {info.st_uid}, not to this user: refusing to use it; "
            f"move it away {again}"
        )
    return None


def make_private(directory: Path, top: Path) -> None:
    """`directory`, at or under the runs directory `top`: it and every directory from
    `top` down are made 0700 whatever the umask, and refused if one is a symlink or not
    a directory (it would take the attempts' files elsewhere) or another user owns one
    (who could plant a pid file or a link there). Missing directories above `top` are
    created 0700 too; existing ones are left alone."""
    for d in reversed([directory, *directory.parents]):
        mine = d == top or top in d.parents
        if not mine:
            if not d.exists():
                with contextlib.suppress(FileExistsError):
                    d.mkdir(mode=0o700)
            continue
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
        info = d.lstat()
        refused = refusal(d, info)
        if refused:
            raise BackendError(refused)
        if stat.S_IMODE(info.st_mode) != 0o700:
            d.chmod(0o700)


@dataclass(frozen=True)
class RunFiles:
    """A store's runs directory (`top`), and where the files the store names are now."""

    top: Path
    store_id: str = ""

    @classmethod
    def of(cls, store: StoreIdentity) -> RunFiles:
        return cls(state_dir(store.path) / RUNS, store.store_id)

    def here(self, stored: str) -> Path | None:
        """Where the file the store names `stored` is beside the store now: its tail under
        the runs directory. None for a path that names no file of a runs directory."""
        parts = PurePath(stored).parts
        if len(parts) >= 4 and parts[-4] == RUNS and parts[-3] == self.store_id:
            tail = parts[-3:]  # the local backend's
        elif len(parts) >= 3 and parts[-3] == RUNS:
            tail = parts[-2:]  # the kubernetes backend's, and the local one's before store ids
        else:
            return None
        return None if ".." in tail else self.top.joinpath(*tail)

    def readable(self, stored: str) -> str:
        """Where to read the file the store names `stored`: beside the store; else where
        it was written, when it is there and not beside the store (a shared store's log
        on the controller's machine, read from another directory)."""
        here = self.here(stored)
        if here is None or (not here.exists() and os.path.exists(stored)):  # noqa: PTH110
            return stored
        return str(here)

    def refused(self) -> str | None:
        """Why nothing in the runs directory may be touched (a symlink in its place,
        another user's); None when it may, or is not there."""
        try:
            return refusal(self.top, self.top.lstat())
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{self.top} cannot be read: {exc.strerror}"

    def removable(self, stored: str) -> Path | None:
        """The file to remove or cut for the one the store names `stored`: `here`, if its
        directory, links resolved, is inside the runs directory (itself not refused).
        None when there is no such file of this store's to touch."""
        here = self.here(stored)
        if here is None or self.refused() is not None:
            return None
        top = self.top.resolve()
        folder = here.parent.resolve()
        return here if folder == top or top in folder.parents else None
