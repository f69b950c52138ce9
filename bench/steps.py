"""Where a step of a small `apply --wait` goes, across the controller and the shim.

    python bench/steps.py [--runs 3] [--size 10x30]

A step is what follows an attempt's end until the end of the attempt that end made ready
(compare.py's workload runs its dates one after another, and a date's diamonds in
order: 7 steps a date for 10 tasks, 210 for 10x30, most of the run). Its segments:

- heard: the shim wrote the end (`E`) -> the controller's wait returned;
- loop: -> the controller's tick began;
- decide: -> its first request to the shim (the ends and the starts they allow written,
  one commit, then the request);
- deliver: -> the shim began the request;
- prepare: -> the shim called posix_spawn (the log and pid files: spares renamed and
  linked);
- spawn: the call (it returns once the command's process has exec'ed);
- command: -> the command reaped (its code written first), with the CPU it used
  (wait4's rusage): what is left of its wall waited for a CPU or to be noticed;
- report: -> the shim wrote its end.

Each is timed by CLOCK_MONOTONIC marks, one clock for both processes: the controller's
by wrappers added in its process (a few µs a call), the shim's by a copy of shim.py with
marks added at fixed lines (this script stops if one of them moved). Printed: each
segment's median per attempt, their sum (a step of the chain) beside the loop's wall
divided by its steps, and, measured here, `true` spawned and waited for, the floor of a
step's command. Figures from the same run of compare.py's workload, a fresh process,
directory and SQLite store each run; the medians of all runs' attempts.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # (bench/compare.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent
SHIM = ROOT / "backfill_ctl" / "backends" / "local" / "shim.py"

# The shim's lines that get a mark (each must be found once).
SHIM_MARKS = {
    "import select\n": (
        "import select\nimport time as _time\n\n_MARKS = []\n\n\ndef _mark(what):\n"
        "    _MARKS.append((_time.monotonic_ns(), what))\n"
    ),
    '    fields = record.split(b"\\0")\n': (
        '    _mark("req")\n    fields = record.split(b"\\0")\n'
    ),
    "            pid = _spawn(log_fd, cwd, int(umask, 8), argv, env)\n": (
        '            _mark("spawn")\n'
        "            pid = _spawn(log_fd, cwd, int(umask, 8), argv, env)\n"
        '            _mark("spawned %d" % pid)\n'
    ),
    "        os.waitpid(pid, 0)\n": (
        "        usage = os.wait4(pid, 0)[2]\n"
        '        _mark("reaped %d %d" % (pid, (usage.ru_utime + usage.ru_stime) * 1e6))\n'
    ),
    "                del out[: os.write(1, out)]\n": (
        '                ends = b"E " in out\n'
        "                del out[: os.write(1, out)]\n"
        '                if ends:\n                    _mark("wrote")\n'
    ),
    'if __name__ == "__main__":\n    main()\n': (
        'if __name__ == "__main__":\n    try:\n        main()\n    finally:\n'
        '        with open(os.environ["BFSTEPS_SHIM_MARKS"], "w") as fh:\n'
        '            fh.write("\\n".join(f"{t} {w}" for t, w in _MARKS))\n'
    ),
}

# The command, with the controller's marks (a fresh interpreter; `sys.argv[1]`: the
# file its marks are written to).
PROBE = r"""
import atexit, json, os, sys, time
out = sys.argv.pop(1)
marks = [(time.monotonic_ns(), "begin")]
from backfill_ctl.backends.local import LocalBackend, spawner
spawner.SHIM = os.environ["BFSTEPS_SHIM"]
from backfill_ctl.runtime.controller import Controller

def mark(what):
    marks.append((time.monotonic_ns(), what))

wait = LocalBackend.wait
def woke(self, timeout):
    wait(self, timeout)
    mark("woke")
LocalBackend.wait = woke
tick = Controller._tick
def ticked(self, now):
    mark("tick")
    return tick(self, now)
Controller._tick = ticked
ask = spawner.Shim.ask
def asked(self, *args, **kwargs):
    mark("ask")
    return ask(self, *args, **kwargs)
spawner.Shim.ask = asked

def write():
    mark("end")
    with open(out, "w") as fh:
        json.dump(marks, fh)
atexit.register(write)

from backfill_ctl.cli import main as cli
sys.argv = ["backfillctl", *sys.argv[1:]]
sys.exit(getattr(cli, "console", cli.main)())
"""

SEGMENTS = ("heard", "loop", "decide", "deliver", "prepare", "spawn", "command", "report")


def traced_shim(path: Path) -> None:
    """shim.py with marks, written to `path`."""
    text = SHIM.read_text()
    for line, marked in SHIM_MARKS.items():
        if text.count(line) != 1:
            raise SystemExit(f"shim.py changed: {line.strip()!r} not found once (SHIM_MARKS)")
        text = text.replace(line, marked)
    path.write_text(text)


def one_run(spec: str) -> list[tuple[int, str]]:
    """Run the workload once: its marks, merged into one timeline of (ns, "c|s what")."""
    with tempfile.TemporaryDirectory(prefix="bfsteps.") as tmp:
        work = Path(tmp)
        (work / "specs").mkdir()
        (work / "specs" / "bench.yaml").write_text(spec)
        traced_shim(work / "shim.py")
        marks, shim_marks = work / "controller.json", work / "shim.marks"
        env = {
            **os.environ,
            "BACKFILLCTL_USER": "bench",
            "PYTHONPATH": str(ROOT),
            "BFSTEPS_SHIM": str(work / "shim.py"),
            "BFSTEPS_SHIM_MARKS": str(shim_marks),
        }
        argv = ["apply", "specs", "--as", "bench", "--wait"]
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(marks), *argv],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"apply --wait failed ({done.returncode}): {done.stderr[-2000:]}")
        timeline = [(int(t), "c " + w) for t, w in json.loads(marks.read_text())]
        for line in shim_marks.read_text().splitlines():
            t, _, what = line.partition(" ")
            timeline.append((int(t), "s " + what))
        return sorted(timeline)


def segments(
    timeline: list[tuple[int, str]],
) -> tuple[dict[str, list[float]], list[float], dict[str, float]]:
    """Each segment's durations (µs) in a run's timeline, the commands' CPU (µs), and the
    run's landmarks (s): its first request, its last tick, its end."""
    found: dict[str, list[float]] = {name: [] for name in SEGMENTS}
    cpu: list[float] = []
    asks = [t for t, w in timeline if w == "c ask"]
    requests = [t for t, w in timeline if w == "s req"]
    for ask, request in zip(asks, requests, strict=False):
        found["deliver"].append((request - ask) / 1e3)
    last: dict[str, int] = {}
    spawned_at: dict[int, int] = {}
    reaped: list[int] = []
    for t, what in timeline:
        kind, _, rest = what.partition(" ")
        name, _, args = rest.partition(" ")
        if kind == "s" and name == "spawn" and "req" in last:
            found["prepare"].append((t - last.pop("req")) / 1e3)
        elif kind == "s" and name == "spawned" and "spawn" in last:
            found["spawn"].append((t - last["spawn"]) / 1e3)
            spawned_at[int(args)] = t
        elif kind == "s" and name == "reaped":
            pid, used = args.split()
            if int(pid) in spawned_at:
                found["command"].append((t - spawned_at.pop(int(pid))) / 1e3)
                cpu.append(float(used))
            reaped.append(t)
        elif kind == "s" and name == "wrote":
            found["report"] += [(t - r) / 1e3 for r in reaped]
            reaped.clear()
        elif kind == "c" and name == "woke" and "wrote" in last:
            found["heard"].append((t - last.pop("wrote")) / 1e3)
        elif kind == "c" and name == "tick" and "woke" in last:
            found["loop"].append((t - last.pop("woke")) / 1e3)
        elif kind == "c" and name == "ask" and "tick" in last:
            found["decide"].append((t - last.pop("tick")) / 1e3)
        if name in ("req", "spawn", "wrote", "woke", "tick"):
            last[name] = t
    begin = timeline[0][0]
    ticks = [t for t, w in timeline if w == "c tick"]
    landmarks = {
        "first": (asks[0] - begin) / 1e9,
        "loop": (ticks[-1] - asks[0]) / 1e9,
        "end": (timeline[-1][0] - begin) / 1e9,
    }
    return found, cpu, landmarks


def chain(tasks: int, dates: int) -> int:
    """The steps of the workload's longest chain: its dates, one after another, each as
    deep as its diamonds."""
    depth: dict[int, int] = {}
    for k in range(tasks):
        depth[k] = 1 + max((depth[u] for u in compare.upstream(k)), default=0)
    return dates * max(depth.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="10x30", help="TASKSxDATES")
    args = parser.parse_args()
    true = shutil.which("true", path="/usr/bin:/bin") or sys.exit("no `true` binary found")
    tasks, dates = (int(x) for x in args.size.split("x"))
    spec = compare.spec_files(tasks, dates, 1, 2, true)
    compileall.compile_dir(str(ROOT / "backfill_ctl"), quiet=1)  # (as pip would)
    found: dict[str, list[float]] = {name: [] for name in SEGMENTS}
    cpu: list[float] = []
    marks: list[dict[str, float]] = []
    before = compare.machine_now(true)[1]
    for run in range(args.runs):
        each, used, landmarks = segments(one_run(spec))
        for name in SEGMENTS:
            found[name] += each[name]
        cpu += used
        marks.append(landmarks)
        print(f"run {run + 1}: {landmarks['end']:.3f} s", file=sys.stderr)
    after = compare.machine_now(true)[1]
    steps = chain(tasks, dates)
    print(f"\n{tasks * dates} instances ({args.size}), {args.runs} runs: medians per attempt, µs")
    total = 0.0
    for name in SEGMENTS:
        median = statistics.median(found[name]) if found[name] else float("nan")
        total += median
        extra = ""
        if name == "command":
            extra = f"  (its CPU {statistics.median(cpu):.0f})"
        print(f"  {name:9s} {median:7.0f}{extra}   n={len(found[name])}")
    loop = statistics.median(m["loop"] for m in marks)
    per = loop / steps * 1e6
    print(f"  a step    {total:7.0f}   (the loop's wall / its {steps} steps: {per:.0f})")
    print(
        f"first request {statistics.median(m['first'] for m in marks):.3f} s, loop {loop:.3f} s, "
        f"end {statistics.median(m['end'] for m in marks):.3f} s after the command's first line"
    )
    print(
        f"`true` spawned and waited for here: {before * 1e3:.0f}, {after * 1e3:.0f} µs (start, end)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
