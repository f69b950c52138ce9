"""Which tables and indexes a controller's commits write (SQLite), and how much.

    python bench/wal_pages.py [--runs 3]

Drives run_bench.py's workload (10,000 no-op instances, concurrency 8) on the
in-memory backend over a fresh SQLite store whose WAL is never checkpointed during the
run, then reads the WAL: each frame is one page a commit wrote (4 KB, and a write of
it), named by the b-tree it belongs to (SQLite's dbstat). A commit's cost grows with
its frames, and an index whose keys are random (instance ids) dirties a page per
instance where one with keys in time order dirties one page per tick. Printed: the
ticks, the frames per tick and per instance, and each b-tree's share of the frames,
medians of --runs runs.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_bench  # (bench/run_bench.py, beside this script)

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.runtime.controller import Controller

WAL_HEADER, FRAME_HEADER = 32, 24


def one_run() -> tuple[int, Counter[str]]:
    """Ticks, and frames by b-tree, of one drive on a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        store, _ = run_bench.applied_store(str(path), Path(tmp))
        db = store._db  # the controller's own connection: the setting is per connection
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the apply's frames out of the way
        db.execute("PRAGMA wal_autocheckpoint = 0")
        ticks = 0
        tick = Controller._tick

        def counted(self: Controller, now: float) -> object:
            nonlocal ticks
            ticks += 1
            return tick(self, now)

        Controller._tick = counted  # type: ignore[assignment,method-assign]
        try:
            run_bench.drive(store, FakeBackend())
        finally:
            Controller._tick = tick  # type: ignore[method-assign]
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        wal = Path(f"{path}-wal").read_bytes()
        pages = [
            int.from_bytes(wal[at : at + 4], "big")
            for at in range(WAL_HEADER, len(wal) - FRAME_HEADER, FRAME_HEADER + page_size)
        ]
        reader = sqlite3.connect(path)
        try:
            owner = dict(reader.execute("SELECT pageno, name FROM dbstat"))
        except sqlite3.OperationalError:
            sys.exit("this SQLite has no dbstat table (SQLITE_ENABLE_DBSTAT_VTAB)")
        finally:
            reader.close()
        store.close()
        return ticks, Counter(owner.get(p, "(freed)") for p in pages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    instances = run_bench.NODES * run_bench.DATES
    runs = []
    for n in range(args.runs):
        ticks, frames = one_run()
        runs.append((ticks, frames))
        print(f"run {n + 1}: {ticks} ticks, {sum(frames.values())} frames", file=sys.stderr)
    ticks_median = statistics.median(t for t, _ in runs)
    total = statistics.median(sum(f.values()) for _, f in runs)
    print(f"\n{instances:,} instances, medians of {args.runs} runs")
    print(f"ticks                  {ticks_median:8.0f}")
    print(
        f"frames (pages) written {total:8.0f}: {total / ticks_median:.1f} a tick, "
        f"{total / instances:.1f} an instance"
    )
    print("the b-trees they belong to:")
    names = sorted({name for _, f in runs for name in f}, key=lambda k: -runs[0][1][k])
    for name in names:
        share = statistics.median(f[name] / sum(f.values()) for _, f in runs)
        if share >= 0.005:
            print(f"  {name:<28} {share:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
