"""The scheduler and store overhead of two (or more) checkouts, interleaved in one run.

    python bench/ab.py BEFORE AFTER [--runs 3] [--local]
                       [--state postgresql://... | --postgres]

BEFORE and AFTER are checkouts of this repository (e.g. `git worktree add /tmp/before
BASE`). Each run drives run_bench.py's workload (10,000 no-op instances on the in-memory
backend: everything but process spawning) with each checkout's own `bench/run_bench.py`
and package, in a fresh process, on a fresh store; the checkouts alternate (run 1:
BEFORE first, run 2: AFTER first ...) so a noisy neighbour weighs on both. Printed per
store and checkout: the median wall and CPU time of the controller per instance. With
--local, the local backend runs the instances (real processes, as run_bench.py's `local`):
the median instances per second, and the CPU of the controller per instance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import stores  # (bench/stores.py, beside this script)

# Run in a fresh interpreter with a checkout first on sys.path: its package, its bench.
DRIVE = r"""
import json, resource, sys, tempfile
from pathlib import Path
sys.path[:0] = [sys.argv[1] + "/bench", sys.argv[1]]
import run_bench
from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.backends.local import LocalBackend
work = Path(tempfile.mkdtemp())
store, _ = run_bench.applied_store(sys.argv[2], work)
backend = LocalBackend(work / "runs") if sys.argv[3] == "local" else FakeBackend()
before = resource.getrusage(resource.RUSAGE_SELF)
wall = run_bench.drive(store, backend)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
print(json.dumps({"wall": wall, "cpu": cpu}))
"""
INSTANCES = 10_000


def drive(checkout: Path, target: str, backend: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", DRIVE, str(checkout), target, backend],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{checkout}: {done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--local", action="store_true", help="the local backend, not the fake")
    stores.add_arguments(parser)
    args = parser.parse_args()
    kinds = stores.Stores(args)
    results: dict[tuple[str, Path], list[dict[str, float]]] = {}
    try:
        for n in range(args.runs):
            order = args.checkouts if n % 2 == 0 else args.checkouts[::-1]
            for kind in kinds.kinds:
                for checkout in order:
                    target = kinds.fresh(kind, Path(tempfile.mkdtemp()))
                    backend = "local" if args.local else "fake"
                    results.setdefault((kind, checkout), []).append(
                        drive(checkout, target, backend)
                    )
                    if kind != stores.SQLITE:
                        kinds.drop(target)
    finally:
        kinds.close()
    where = "the local backend" if args.local else "the in-memory backend"
    print(f"{INSTANCES:,} instances on {where}; medians of {args.runs} runs")
    for (kind, checkout), runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs) / INSTANCES * 1000
        rate = f"{INSTANCES / wall:.0f} inst/s" if args.local else ""
        print(
            f"  {stores.label(kind):10} {checkout}: {wall / INSTANCES * 1000:.3f} ms/instance"
            f" wall {rate}, {cpu:.3f} ms CPU of the controller"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
