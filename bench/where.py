"""Where the time of a small `apply --wait` goes, measured inside the command.

    python bench/where.py [--runs 5] [--size 10x30] [--memory-store]

Runs `backfillctl apply specs --as bench --wait` of compare.py's workload (N tasks in
diamonds x D dates in strict date order, each task a process of `true`, the local
backend, a fresh directory and SQLite store) in a fresh process each run, with timers
around the parts of the loop (wrappers added in that process, which cost a few µs a
call; the figures are a little above an untimed run's):

- to the first start: from the interpreter's first line of ours to the first request
  to the shim (imports, load, plan, apply, the controller's load, the first tick), and
  how much of it went to building dataclasses;
- ticks: how many, and their time (`Controller.tick`), of which SQLite's statements
  (every `execute` of the store's connection, by statement) and the commits;
- waits: the controller waiting for attempts to end (`LocalBackend.wait`: the shim
  starting each command, the command, its end coming back), and the progress line;
- the end: from the end of the last tick to the command's end (its `atexit` handlers),
  and to the process's exit as this script sees it (the interpreter's ending too).

Printed: the medians over the runs, and the statements that took the most.

`--memory-store`: each run is followed by one with the tests' in-memory store
(`state/memory`, the same semantics in dictionaries, nothing written anywhere) in place of
SQLite, and both walls are printed: what the store costs end to end, and what is left of
the run without it (a bound: no store is faster than one that does nothing durable).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # (bench/compare.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent

# The command, timed from within (a fresh interpreter; `sys.argv[1]` is the file the
# figures are written to).
PROBE = r"""
import atexit, collections, dataclasses, json, os, re, sqlite3, sys, time
T0 = time.perf_counter()
out = sys.argv.pop(1)
acc = collections.defaultdict(float)
count = collections.Counter()
statements = collections.defaultdict(float)
marks = {}

def timed(key, f):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            acc[key] += time.perf_counter() - t
            count[key] += 1
    return wrapper

dataclasses._process_class = timed("dataclasses", dataclasses._process_class)

class Timed(sqlite3.Connection):
    def execute(self, sql, *args):
        t = time.perf_counter()
        try:
            return super().execute(sql, *args)
        finally:
            took = time.perf_counter() - t
            key = " ".join(sql.split())[:70]
            statements[key] += took
            acc["sql"] += took
            count["sql"] += 1

connect = sqlite3.connect
sqlite3.connect = lambda *a, **k: connect(*a, **{"factory": Timed, **k})

from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.backends.local.spawner import Shim
from backfill_ctl.cli import waiting

if os.environ.get("BFWHERE_STORE") == "memory":  # (--memory-store)
    from pathlib import Path
    from backfill_ctl.cli import apply, state
    from backfill_ctl.state.memory import MemoryStore
    def memory_store(flag, specs=None, *, create=False):
        return MemoryStore(str(Path("state.db").absolute()))  # (the runs go beside it)
    state.open_state = apply.open_state = memory_store
from backfill_ctl.runtime.controller import Controller

ask = Shim.ask
def first_ask(self, *args, **kwargs):
    marks.setdefault("first", time.perf_counter() - T0)
    return ask(self, *args, **kwargs)
Shim.ask = first_ask
tick = timed("tick", Controller.tick)
def last_tick(self):
    result = tick(self)
    marks["last tick"] = time.perf_counter() - T0
    marks["last tick epoch"] = time.time()
    return result
Controller.tick = last_tick
LocalBackend.wait = timed("wait", LocalBackend.wait)
waiting.Progress.__call__ = timed("progress", waiting.Progress.__call__)

def write():
    marks["end"] = time.perf_counter() - T0
    top = sorted(statements.items(), key=lambda kv: -kv[1])[:8]
    figures = {
        "first": marks.get("first", 0.0),
        "dataclasses": acc["dataclasses"],
        "ticks": count["tick"],
        "tick": acc["tick"],
        "sql": acc["sql"],
        "statements": count["sql"],
        "commit": statements.get("COMMIT", 0.0),
        "wait": acc["wait"],
        "progress": acc["progress"],
        "last tick": marks.get("last tick", 0.0),
        "end": marks["end"],
        "last tick epoch": marks.get("last tick epoch", 0.0),
        "top": top,
    }
    with open(out, "w") as fh:
        json.dump(figures, fh)
atexit.register(write)  # (run by the console script's ending too: cli/teardown.py)

from backfill_ctl.cli import main as cli
sys.argv = ["backfillctl", *sys.argv[1:]]
sys.exit(getattr(cli, "console", cli.main)())
"""


def one_run(spec: str, store: str = "sqlite") -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bfwhere.") as tmp:
        work = Path(tmp)
        (work / "specs").mkdir()
        (work / "specs" / "bench.yaml").write_text(spec)
        figures = work / "figures.json"
        env = {**os.environ, "BACKFILLCTL_USER": "bench", "PYTHONPATH": str(ROOT)}
        env["BFWHERE_STORE"] = store
        argv = ["apply", "specs", "--as", "bench", "--wait"]
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(figures), *argv],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        exited, wall = time.time(), time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"apply --wait failed ({done.returncode}): {done.stderr[-2000:]}")
        got: dict[str, object] = json.loads(figures.read_text())
        got["exit"] = exited - float(got["last tick epoch"])  # type: ignore[arg-type]
        got["wall"] = wall
        return got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", default="10x30", help="TASKSxDATES")
    parser.add_argument(
        "--memory-store", action="store_true", help="also the in-memory store, interleaved"
    )
    args = parser.parse_args()
    true = shutil.which("true", path="/usr/bin:/bin") or sys.exit("no `true` binary found")
    tasks, dates = (int(x) for x in args.size.split("x"))
    spec = compare.spec_files(tasks, dates, 1, 2, true)
    compileall.compile_dir(str(ROOT / "backfill_ctl"), quiet=1)  # (as pip would)
    runs, memory = [], []
    for run in range(args.runs):
        got = one_run(spec)
        runs.append(got)
        print(f"run {run + 1}: first start {float(got['first']):.3f} s", file=sys.stderr)
        if args.memory_store:
            memory.append(one_run(spec, "memory"))

    def med(key: str, of: list[dict[str, object]] = runs) -> float:
        return statistics.median(float(r[key]) for r in of)  # type: ignore[arg-type]

    ticks = med("ticks")
    print(f"\n{tasks * dates} instances ({args.size}), medians of {args.runs} runs")
    first, built, tick = med("first"), med("dataclasses"), med("tick")
    print(f"to the first start      {first:.3f} s (dataclasses built: {built:.3f} s)")
    print(f"ticks                   {ticks:.0f}, {tick:.3f} s ({tick / ticks * 1e3:.2f} ms each)")
    print(
        f"  SQLite statements     {med('statements'):.0f}, {med('sql'):.3f} s "
        f"(commits {med('commit'):.3f} s)"
    )
    print(f"waits for ends          {med('wait'):.3f} s; the progress line {med('progress'):.3f} s")
    print(
        f"last tick               ends {med('last tick'):.3f} s after our first line; "
        f"the command ends {med('end') - med('last tick'):.3f} s later, "
        f"its process {med('exit'):.3f} s later"
    )
    print(f"wall                    {med('wall'):.3f} s (as this script sees the process)")
    if memory:
        each = med("tick", memory) / med("ticks", memory) * 1e3
        print(
            f"with the in-memory store: wall {med('wall', memory):.3f} s, to the first start "
            f"{med('first', memory):.3f} s, ticks {each:.2f} ms each; the waits for ends "
            f"{med('wait', memory):.3f} s"
        )
    print("statements that took the most (the last run):")
    for sql, took in runs[-1]["top"]:  # type: ignore[union-attr]
        print(f"  {took * 1e3:7.1f} ms  {sql}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
