"""What watching a running backfill on the controller's dashboard costs the backfill.

    python bench/serve_load.py [--runs 3] [--size 30x730] [--window 6] [--clients 0,1,8]
                               [--before DIR]

A controller with `--serve` answers the dashboard from a thread of its own process, so
a page rendered competes with the loop for the interpreter. This runs compare.py's
workload (N tasks per date in diamonds, D dates one after another, concurrency 8, each
task the absolute path of `true`: 21,900 instances by default, whose backfill page is a
big one) under `backfillctl controller --serve`, and, once it runs, counts the
instances that end in successive windows while C clients each ask for the backfill's
page and its live update (`/backfills/NAME`, `/api/backfills/NAME/live`) over and over,
as browsers left open on it would (without the pause a browser's script makes: the
worst case). Printed per checkout: the median instances ended per second at each C,
its ratio to C = 0 in the same run, and the dashboard answers per second. With
`--before DIR`, that checkout's package is measured too, interleaved.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # (bench/compare.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def succeeded(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        (n,) = conn.execute("SELECT count(*) FROM instances WHERE state = 'succeeded'").fetchone()
    conn.close()
    return int(n)


def clients(base: str, count: int, until: float) -> tuple[int, int]:
    """`count` clients asking for the page and its live update until `until`: (answers,
    failures)."""
    answered = [0, 0]
    lock = threading.Lock()
    paths = ("/backfills/noop", "/api/backfills/noop/live")

    def ask() -> None:
        k = 0
        while time.monotonic() < until:
            try:
                with urllib.request.urlopen(base + paths[k % 2], timeout=60) as r:
                    r.read()
                ok = 0
            except OSError:
                ok = 1
            with lock:
                answered[ok] += 1
            k += 1

    threads = [threading.Thread(target=ask, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answered[0], answered[1]


def measure(
    package: Path, spec: str, total: int, counts: list[int], window: float
) -> dict[int, tuple[float, float]]:
    """Per client count: (instances ended per second, dashboard answers per second)."""
    with tempfile.TemporaryDirectory(prefix="bfserve.") as tmp:
        work = Path(tmp)
        (work / "specs").mkdir()
        (work / "specs" / "bench.yaml").write_text(spec)
        env = {**os.environ, "PYTHONPATH": str(package), "BACKFILLCTL_USER": "bench"}
        run = [sys.executable, "-m", "backfill_ctl"]
        subprocess.run(
            [*run, "apply", "specs", "--as", "bench"],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        port = free_port()
        controller = subprocess.Popen(
            [*run, "controller", "specs", "--as", "bench", "--serve", f"127.0.0.1:{port}"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        db = work / "state.db"
        try:
            deadline = time.monotonic() + 60
            while succeeded(db) < 200:
                if time.monotonic() > deadline or controller.poll() is not None:
                    raise SystemExit(f"{package}: the controller did not start the backfill")
                time.sleep(0.1)
            base = f"http://127.0.0.1:{port}"
            found: dict[int, tuple[float, float]] = {}
            for count in counts:
                before, began = succeeded(db), time.monotonic()
                if count:
                    answers, failures = clients(base, count, began + window)
                    if failures:
                        print(f"  ({failures} requests failed)", file=sys.stderr)
                else:
                    time.sleep(window)
                    answers = 0
                took = time.monotonic() - began
                found[count] = ((succeeded(db) - before) / took, answers / took)
            if succeeded(db) >= total:
                raise SystemExit("the backfill ended within the windows: give a bigger --size")
            return found
        finally:
            controller.terminate()
            controller.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="30x730")
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--clients", default="0,1,8")
    parser.add_argument("--before", type=Path)
    args = parser.parse_args()
    tasks, dates = (int(x) for x in args.size.split("x"))
    counts = [int(c) for c in args.clients.split(",")]
    true = shutil.which("true", path="/usr/bin:/bin") or sys.exit("no `true` binary found")
    config = "spec: {state: 'sqlite:///state.db', backend: local"
    spec = compare.spec_files(tasks, dates, 1, 8, true).replace(
        config, config + ", checks: {maxInstances: 1000000}", 1
    )
    packages = {"after": ROOT}
    if args.before is not None:
        packages = {"before": args.before.resolve(), "after": ROOT}
    results: dict[str, list[dict[int, tuple[float, float]]]] = {k: [] for k in packages}
    for r in range(args.runs):
        order = list(packages) if r % 2 == 0 else list(reversed(packages))
        for name in order:
            found = measure(packages[name], spec, tasks * dates, counts, args.window)
            results[name].append(found)
            shown = ", ".join(
                f"{c} clients {v[0]:.0f}/s ({v[1]:.1f} answers/s)" for c, v in found.items()
            )
            print(f"run {r + 1} {name}: {shown}", flush=True)
    print(
        f"\n{tasks * dates:,} instances, windows of {args.window:g} s, medians of {args.runs} runs:"
    )
    for name, runs in results.items():
        base = statistics.median(run[counts[0]][0] for run in runs)
        for c in counts:
            ended = statistics.median(run[c][0] for run in runs)
            answers = statistics.median(run[c][1] for run in runs)
            print(
                f"  {name:6s} {c} clients: {ended:6.0f} instances ended/s "
                f"({ended / base:.2f} of {counts[0]} clients), {answers:.1f} answers/s"
            )


if __name__ == "__main__":
    main()
