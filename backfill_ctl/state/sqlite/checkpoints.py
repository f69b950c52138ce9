"""Checkpoints of a busy store's WAL in a thread of their own.

SQLite copies the WAL back into the database file (a checkpoint) in the commit that
takes the WAL past 1,000 pages, and with `synchronous=NORMAL` that commit syncs both files
to disk too: a few milliseconds, in the middle of whatever the committing thread was
doing (a controller's tick: a chain of steps waits for it). A connection that commits
often hands that work to a `Checkpointer`: its own connection, in a daemon thread, runs a
PASSIVE checkpoint (which waits for no reader and no writer) every `EVERY` commits of the
busy one. sqlite3 lets go of the GIL while SQLite works, so the copy and the syncs run
beside the controller, not in its ticks.

A PASSIVE checkpoint that overlaps a commit leaves that commit's pages for the next one,
and SQLite starts the WAL over only after a checkpoint that copied all of it; under
back-to-back commits that never happens, and the WAL grows without end. So the busy
connection keeps its own automatic checkpoint, at `BACKSTOP` pages: it copies the few
pages the thread left (its syncs remain, ten times more seldom) and lets the WAL start
over. If the thread's connection fails (a full disk), the busy connection checkpoints by
itself again at 1,000 pages, as before.
"""

from __future__ import annotations

import sqlite3
import threading

EVERY = 64  # commits of the busy connection between two checkpoints (~600 WAL pages)
AFTER = 16  # commits before a connection counts as busy (a CLI command seldom does)
BACKSTOP = 10_000  # WAL pages: the busy connection's own checkpoint (SQLite's: 1,000)


class Checkpointer:
    """The thread checkpointing the store at `path` when `nudge`d."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self.failed = False  # its connection failed: the busy one checkpoints again
        self.done = 0  # checkpoints run
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Ask for a checkpoint (the busy connection does, every EVERY commits)."""
        self._wake.set()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            self.failed = True
            return
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.done += 1
        except sqlite3.Error:
            self.failed = True
        finally:
            db.close()

    def stop(self) -> None:
        """End the thread (after the checkpoint it may be in), before the busy connection
        closes: that one, the last, then checkpoints the rest and removes the WAL."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10.0)
