"""The CLI's start-up figures of two (or more) checkouts, interleaved in one run.

    python bench/ab_start.py BEFORE AFTER [--runs 7] [--size 10x30]

BEFORE and AFTER are checkouts of this repository (e.g. `git worktree add --detach
/tmp/before BASE`). Each run times, for each checkout in turn (run 1: BEFORE first, run
2: AFTER first ...), a `backfillctl` console script as pip writes it (compare.py's
`console_script`: each checkout's own entry point) with that checkout first on
PYTHONPATH, each command a fresh process:

- `backfillctl --version` (wall);
- `backfillctl validate specs/` of AFTER's example specs (wall);
- `backfillctl apply specs --as bench --wait` of compare.py's workload (N tasks in
  diamonds x D dates, a fresh directory and SQLite store, the local backend): the time
  from the command's start to its first started instance (issue 15: <= 0.15 s for
  10x30), read from the store as compare.py reads it, and the whole wall.

Printed: the median (and the minimum: the least disturbed run) of each figure per
checkout. Both checkouts' modules are byte-compiled first (`compileall`), as an
installed package is, so that neither pays for compiling its sources in a run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # (bench/compare.py, beside this script)

AFTER_SPECS = Path(__file__).resolve().parent.parent / "specs"


def wall(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(start epoch, wall) of one command, which must succeed."""
    t0 = time.time()
    p = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - p
    if done.returncode:
        raise SystemExit(f"{argv} failed (exit code {done.returncode}): {done.stderr[-2000:]}")
    return t0, took


def first_start(exe: str, env: dict[str, str], spec: str) -> tuple[float, float]:
    """(seconds from the command's start to its first started instance, wall)."""
    with tempfile.TemporaryDirectory(prefix="bfabstart.") as tmp:
        work = Path(tmp)
        (work / "specs").mkdir()
        (work / "specs" / "bench.yaml").write_text(spec)
        argv = [exe, "apply", "specs", "--as", "bench", "--wait"]
        t0, took = wall(argv, work, {**env, "BACKFILLCTL_USER": "bench"})
        db = sqlite3.connect(work / "state.db")
        try:
            (started,) = db.execute("SELECT min(started_at) FROM attempts").fetchone()
        finally:
            db.close()
        return float(started) - t0, took


def measure(checkout: Path, exe: str, spec: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    here = Path.cwd()
    _, version = wall([exe, "--version"], here, env)
    _, validate = wall([exe, "validate", str(AFTER_SPECS)], here, env)
    first, apply_wall = first_start(exe, env, spec)
    return {"version": version, "validate": validate, "first": first, "apply": apply_wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", default="10x30", help="TASKSxDATES")
    args = parser.parse_args()
    scripts = tempfile.TemporaryDirectory(prefix="bfabstart.")
    exe = compare.console_script(Path(scripts.name))  # (each checkout's, on PYTHONPATH)
    true = shutil.which("true", path="/usr/bin:/bin") or sys.exit("no `true` binary found")
    tasks, dates = (int(x) for x in args.size.split("x"))
    spec = compare.spec_files(tasks, dates, 1, 2, true)
    checkouts = [c.resolve() for c in args.checkouts]
    for c in checkouts:
        compileall.compile_dir(c / "backfill_ctl", quiet=1)
    figures: dict[Path, list[dict[str, float]]] = {c: [] for c in checkouts}
    for run in range(args.runs):
        order = checkouts if run % 2 == 0 else checkouts[::-1]
        for c in order:
            got = measure(c, exe, spec)
            figures[c].append(got)
            print(
                f"run {run + 1} {c}: " + json.dumps({k: round(v, 4) for k, v in got.items()}),
                file=sys.stderr,
            )
    print(f"\n{args.runs} runs, {args.size}; this machine: {os.cpu_count()} cores")
    print(f"{'checkout':<40} {'--version':>10} {'validate':>10} {'first start':>12} {'apply':>8}")
    for name, stat in (("median", statistics.median), ("min", min)):
        for c in checkouts:
            got = {k: stat(f[k] for f in figures[c]) for k in figures[c][0]}
            print(
                f"{name + ' ' + str(c):<40} {got['version']:>8.3f} s {got['validate']:>8.3f} s "
                f"{got['first']:>10.3f} s {got['apply']:>6.2f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
