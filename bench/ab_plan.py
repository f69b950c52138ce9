"""`plan` of the planning benchmark's workload by two (or more) checkouts, interleaved.

    python bench/ab_plan.py BEFORE AFTER [--runs 5]

BEFORE and AFTER are checkouts of this repository (e.g. `git worktree add --detach
/tmp/before BASE`). The workload is plan_bench.py's (20,000 nodes, a backfill of
813,940 instances), generated once. Each run times, for each checkout in turn (run 1:
BEFORE first, run 2: AFTER first ...), `python -m backfill_ctl plan DIR -o json` (issue
15: <= 6 s) and `plan DIR` (the summary), each a fresh process with that checkout first
on PYTHONPATH, its output to /dev/null. Both checkouts are byte-compiled first.
Printed: the median and the minimum (the least disturbed run) per checkout, and the
ratio of the medians to the first checkout's.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plan_bench  # (bench/plan_bench.py, beside this script)

COMMANDS = {"plan -o json": ["-o", "json"], "plan": []}


def timed(checkout: Path, workload: Path, extra: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    argv = [sys.executable, "-m", "backfill_ctl", "plan", str(workload), "--as", "ops"]
    argv += ["--now", "2024-06-01", *extra]
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=workload)
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkouts]
    for c in checkouts:
        compileall.compile_dir(c / "backfill_ctl", quiet=1)
    figures: dict[tuple[Path, str], list[float]] = {(c, k): [] for c in checkouts for k in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="bfabplan.") as tmp:
        workload = Path(tmp)
        plan_bench.generate(workload)
        for run in range(args.runs):
            for c in checkouts if run % 2 == 0 else checkouts[::-1]:
                for name, extra in COMMANDS.items():
                    figures[c, name].append(timed(c, workload, extra))
                got = ", ".join(f"{k} {figures[c, k][-1]:.2f} s" for k in COMMANDS)
                print(f"run {run + 1} {c}: {got}", file=sys.stderr)
    print(f"\n{args.runs} runs; this machine: {os.cpu_count()} cores")
    for name in COMMANDS:
        first = statistics.median(figures[checkouts[0], name])
        for c in checkouts:
            times = figures[c, name]
            median = statistics.median(times)
            print(
                f"{name:<14} {c!s:<40} median {median:6.2f} s  min {min(times):6.2f} s"
                f"  {median / first:5.2f}x the first"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
