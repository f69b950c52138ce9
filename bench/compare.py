"""backfillctl and Luigi side by side (issue 15), in one run, on the same workloads.

    python bench/compare.py [--runs 3] [--sizes 10x30,20x60,20x365] [--concurrency 2]
                            [--groups 1] [--backfills 1] [--skip-luigi | --luigi-runs N]
                            [--json] [--before DIR]

Workload (generated here, for each size N x D): N tasks per business date in diamonds
(n0 -> n1, n2 -> n3 -> n4, n5 -> n6 ...), D daily dates from 2023-01-01, every task a
no-op that really starts a process: the absolute path of a `true` binary, never a shell
builtin. The dates of a group run one after another (DataWorks' strict day-by-day
order); Luigi is given the same order (each date requires the previous one's tasks).
With `--backfills B`, B Backfills of the same nodes, each of D dates (one after
another's), share the resource group and start in turn; Luigi gets them as B more date
groups.

- backfillctl: `backfillctl apply DIR --wait` in a fresh directory (fresh SQLite store,
  local backend, a resource group of --concurrency), as a user would type it: the
  interpreter, imports, load, plan, apply and the controller loop are all counted. The
  package is byte-compiled first, as an installed one is (--no-compile: as found).
  The time to the first started instance is read from the store (the first attempt's
  start minus the moment the command was started).
- Luigi (`pip install '.[bench]'`): the same DAG, local scheduler, --concurrency
  workers, each task `subprocess.run([true])` and an output file, as a fresh
  `python` process.

The two are interleaved (run 1: backfillctl first, run 2: Luigi first, ...) so that a
noisy neighbour weighs on both. Printed per size: the median wall of each, their ratio
(Luigi / backfillctl, from the medians), CPU per instance (user + system of the whole
process tree) and the peak RSS of the largest process; backfillctl's median time to
the first started instance. With `--before DIR` (a checkout, e.g. `git worktree add
/tmp/before BASE`), backfillctl with that checkout's package runs too, interleaved with
the others, and its figures and before/after ratio are printed.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API = "apiVersion: backfillctl.dev/v1alpha1"
FIRST = "2023-01-01"


def upstream(k: int) -> list[int]:
    """Diamonds: a join (k % 3 == 0) reads the two forks before it, a fork the join."""
    if k == 0:
        return []
    if k % 3 == 0:
        return [k - 2, k - 1]
    return [k - k % 3]


def spec_files(
    tasks: int, dates: int, groups: int, concurrency: int, true: str, backfills: int = 1
) -> str:
    """The specs of a workload: `backfills` Backfills of the same nodes, each of `dates`
    dates (one after another's), which start in turn as they share the resource group."""
    from datetime import date, timedelta

    first = date.fromisoformat(FIRST)
    docs = [
        f"{API}\nkind: Config\nmetadata: {{name: bench}}\n"
        "spec: {state: 'sqlite:///state.db', backend: local}",
        f"{API}\nkind: Workspace\nmetadata: {{name: ws}}\n"
        "spec: {timezone: UTC, operators: [bench]}",
        f"{API}\nkind: ResourceGroup\nmetadata: {{name: rg}}\nspec: {{concurrency: {concurrency}}}",
    ]
    for k in range(tasks):
        ups = ", ".join(f"t{u:03d}" for u in upstream(k))
        docs.append(
            f"{API}\nkind: Node\nmetadata: {{name: t{k:03d}, workspace: ws}}\n"
            f"spec: {{schedule: '0 1 * * *', upstream: [{ups}], resourceGroup: rg, "
            f"run: {{command: [{json.dumps(true)}]}}}}"
        )
    for b in range(backfills):
        start = first + timedelta(days=b * dates)
        last = start + timedelta(days=dates - 1)
        docs.append(
            f"{API}\nkind: Backfill\nmetadata: {{name: noop{b or ''}}}\nspec:\n"
            "  select: {method: descendants, roots: [t000]}\n"
            f"  dates: [{{from: {start.isoformat()}, to: {last.isoformat()}}}]\n"
            f"  groups: {groups}\n"
        )
    return "\n---\n".join(docs) + "\n"


LUIGI_JOB = """
import subprocess, sys
from pathlib import Path
import luigi

TASKS, DATES, GROUPS, WORKERS = (int(a) for a in sys.argv[1:5])
OUT, TRUE = Path(sys.argv[5]), sys.argv[6]
PER_GROUP = -(-DATES // GROUPS)


def upstream(k):
    if k == 0:
        return []
    return [k - 2, k - 1] if k % 3 == 0 else [k - k % 3]


class Inst(luigi.Task):
    task = luigi.IntParameter()
    day = luigi.IntParameter()

    def requires(self):
        reqs = [Inst(task=u, day=self.day) for u in upstream(self.task)]
        if self.day % PER_GROUP:  # the previous date of the group first
            reqs.append(DateDone(day=self.day - 1))
        return reqs

    def output(self):
        return luigi.LocalTarget(str(OUT / f"{self.task}-{self.day}"))

    def run(self):
        subprocess.run([TRUE], check=True)
        Path(self.output().path).touch()


class DateDone(luigi.WrapperTask):
    day = luigi.IntParameter()

    def requires(self):
        return [Inst(task=k, day=self.day) for k in range(TASKS)]


ok = luigi.build([DateDone(day=d) for d in range(DATES)], local_scheduler=True,
                 workers=WORKERS, log_level="ERROR")
sys.exit(0 if ok and len(list(OUT.iterdir())) == TASKS * DATES else 1)
"""


@dataclass
class Figures:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # seconds, the whole process tree
    rss: list[float] = field(default_factory=list)  # MB, the largest process
    first: list[float] = field(default_factory=list)  # seconds to the first start


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float, float]:
    """(start epoch, wall, CPU of the tree, peak RSS in MB) of one command, which must
    succeed. Run from a fresh `python -c` child so that RUSAGE_CHILDREN is its alone."""
    probe = (
        "import resource, subprocess, sys, time, json\n"
        "t0 = time.time(); p = time.perf_counter()\n"
        f"rc = subprocess.run({argv!r}, stdout=subprocess.DEVNULL).returncode\n"
        "wall = time.perf_counter() - p\n"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps([rc, t0, wall, r.ru_utime + r.ru_stime, r.ru_maxrss / 1024]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True
    )
    rc, t0, wall, cpu, rss = json.loads(out.stdout.strip().splitlines()[-1])
    if rc != 0:
        raise SystemExit(f"{argv[0]} failed in {cwd} (exit code {rc}): {out.stderr[-2000:]}")
    return t0, wall, cpu, rss


def console_script(directory: Path) -> str:
    """The console script as pip writes it, in `directory`, for whichever backfill_ctl is
    first on the path: its `console` (which ends the process without the interpreter's
    teardown), or `main` in a checkout older than that (2026-12-01)."""
    path = directory / "backfillctl"
    path.write_text(
        f"#!{sys.executable}\nimport sys\nfrom backfill_ctl.cli import main as cli\n"
        "sys.exit(getattr(cli, 'console', cli.main)())\n"
    )
    path.chmod(0o755)
    return str(path)


def backfillctl_run(
    work: Path, spec: str, instances: int, package: str | None = None
) -> tuple[float, ...]:
    """`apply --wait` in `work`; with `package`, that checkout's package (PYTHONPATH)."""
    (work / "specs").mkdir(parents=True)
    (work / "specs" / "bench.yaml").write_text(spec)
    exe = console_script(work)
    env = {**os.environ, "BACKFILLCTL_USER": "bench"}
    if package is not None:
        env["PYTHONPATH"] = package
    t0, wall, cpu, rss = timed([exe, "apply", "specs", "--as", "bench", "--wait"], work, env)
    sys.path.insert(0, str(ROOT))
    from backfill_ctl.state import open_store

    store = open_store(work / "state.db", create=False)
    attempts = store.attempts()
    assert len(attempts) == instances, f"{len(attempts)} attempts for {instances}"
    assert all(a.state == "succeeded" for a in attempts)
    first = min(a.started_at for a in attempts) - t0
    store.close()
    return wall, cpu, rss, first


def luigi_run(work: Path, sizes: tuple[int, int, int, int], true: str) -> tuple[float, ...]:
    (work / "out").mkdir(parents=True)
    (work / "job.py").write_text(LUIGI_JOB)
    argv = [sys.executable, "job.py", *(str(s) for s in sizes), str(work / "out"), true]
    _, wall, cpu, rss = timed(argv, work, dict(os.environ))
    return wall, cpu, rss


def byte_compile(before: str | None) -> None:
    """Byte-compile the backfill_ctl the console script imports (PYTHONPATH's, else the
    installed one) and `before`'s, as pip does for an installed package: an editable
    install or a checkout whose __pycache__ is missing or stale, run with
    PYTHONDONTWRITEBYTECODE=1, would otherwise compile those modules again in every run
    (~100 ms of the first start when none is compiled)."""
    where = subprocess.run(
        [sys.executable, "-c", "import backfill_ctl; print(backfill_ctl.__path__[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    compileall.compile_dir(where, quiet=1)
    if before is not None:
        compileall.compile_dir(str(Path(before) / "backfill_ctl"), quiet=1)


def machine_now(true: str) -> tuple[float, float]:
    """(median µs to create a file where the runs' files go, median ms to posix_spawn
    `true` and wait for it): what bounds a step, and what moves from minute to minute on
    a shared machine (its disk's journal, busy, makes a creation 30x slower)."""
    created, spawned = [], []
    with tempfile.TemporaryDirectory(prefix="bfcompare.") as tmp:
        for n in range(200):
            t = time.perf_counter()
            os.close(os.open(f"{tmp}/{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            created.append(time.perf_counter() - t)
    for _ in range(50):
        t = time.perf_counter()
        os.waitpid(os.posix_spawn(true, [true], {}), 0)
        spawned.append(time.perf_counter() - t)
    return statistics.median(created) * 1e6, statistics.median(spawned) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10x30,20x60,20x365", help="TASKSxDATES,...")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument(
        "--backfills",
        type=int,
        default=1,
        help="Backfills of the same nodes, each of the size's dates, starting in turn",
    )
    parser.add_argument("--skip-luigi", action="store_true")
    parser.add_argument(
        "--luigi-runs",
        type=int,
        metavar="N",
        help="Luigi in the first N runs only (default: every run; at 7,300 instances one "
        "of its runs takes ~12 minutes on 2 cores)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--before", metavar="DIR", help="also a checkout's package (PYTHONPATH=DIR), interleaved"
    )
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="measure the package's bytecode as found (default: byte-compile it first)",
    )
    args = parser.parse_args()
    true = shutil.which("true", path="/usr/bin:/bin") or sys.exit("no `true` binary found")
    if not args.no_compile:
        byte_compile(args.before)
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    if not args.skip_luigi:
        try:
            import luigi  # noqa: F401
        except ImportError:
            sys.exit("Luigi is not installed: pip install '.[bench]' (or --skip-luigi)")
    machine = [machine_now(true)]
    ours = {s: Figures() for s in sizes}
    theirs = {s: Figures() for s in sizes}
    before = {s: Figures() for s in sizes}
    tools = ["backfillctl", "luigi"] + (["before"] if args.before else [])
    luigi_runs = args.runs if args.luigi_runs is None else args.luigi_runs
    for run in range(args.runs):
        for tasks, dates in sizes:
            order = tools if run % 2 == 0 else tools[::-1]
            for tool in order:
                if tool == "luigi" and (args.skip_luigi or run >= luigi_runs):
                    continue
                with tempfile.TemporaryDirectory(prefix="bfcompare.") as tmp:
                    work = Path(tmp)
                    if tool != "luigi":
                        b = args.backfills
                        spec = spec_files(tasks, dates, args.groups, args.concurrency, true, b)
                        package = args.before if tool == "before" else None
                        n = tasks * dates * b
                        wall, cpu, rss, first = backfillctl_run(work, spec, n, package)
                        f = (before if package else ours)[(tasks, dates)]
                        f.first.append(first)
                    else:
                        # (backfills that start in turn: as many more date groups)
                        b = args.backfills
                        sized = (tasks, dates * b, args.groups * b, args.concurrency)
                        wall, cpu, rss = luigi_run(work, sized, true)
                        f = theirs[(tasks, dates)]
                    f.wall.append(wall)
                    f.cpu.append(cpu)
                    f.rss.append(rss)
                print(f"run {run + 1} {tasks}x{dates} {tool}: {wall:.2f} s", file=sys.stderr)
    machine.append(machine_now(true))
    return report(sizes, ours, theirs, args, before, machine)


def report(
    sizes: list[tuple[int, ...]],
    ours: dict[tuple[int, ...], Figures],
    theirs: dict[tuple[int, ...], Figures],
    args: argparse.Namespace,
    before: dict[tuple[int, ...], Figures],
    machine: list[tuple[float, float]],
) -> int:
    med = statistics.median
    rows = []
    for s in sizes:
        n = s[0] * s[1] * args.backfills
        o, t, b = ours[s], theirs[s], before[s]
        row = {
            "instances": n,
            "size": f"{s[0]}x{s[1]}",
            "backfillctl_wall": med(o.wall),
            "backfillctl_first_start": med(o.first),
            "backfillctl_cpu_ms_per_instance": med(o.cpu) / n * 1000,
            "backfillctl_peak_rss_mb": max(o.rss),
            "file_create_us_start_end": [m[0] for m in machine],
            "spawn_true_ms_start_end": [m[1] for m in machine],
        }
        if t.wall:
            row |= {
                "luigi_wall": med(t.wall),
                "luigi_cpu_ms_per_instance": med(t.cpu) / n * 1000,
                "luigi_peak_rss_mb": max(t.rss),
                "ratio": med(t.wall) / med(o.wall),
            }
        if b.wall:
            row |= {
                "before_wall": med(b.wall),
                "before_first_start": med(b.first),
                "before_cpu_ms_per_instance": med(b.cpu) / n * 1000,
            }
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    luigi = "" if args.luigi_runs is None else f" (Luigi: its first {args.luigi_runs})"
    print(
        f"\nmedians of {args.runs} runs{luigi}, concurrency {args.concurrency}, "
        f"{args.backfills} backfill(s) of {args.groups} date group(s), a process of "
        f"{shutil.which('true')} per task; "
        f"this machine: {os.cpu_count()} cores; at the start / the end: a file created in "
        f"{machine[0][0]:.0f} / {machine[1][0]:.0f} µs, `true` spawned and waited for in "
        f"{machine[0][1]:.2f} / {machine[1][1]:.2f} ms"
    )
    head = f"{'instances':>10} {'backfillctl':>12} {'first start':>12} {'cpu/inst':>9} {'rss':>7}"
    print(head + f" {'luigi':>9} {'cpu/inst':>9} {'rss':>7} {'luigi/bfctl':>11}")
    for r in rows:
        line = (
            f"{r['instances']:>10} {r['backfillctl_wall']:>10.2f} s "
            f"{r['backfillctl_first_start']:>10.3f} s "
            f"{r['backfillctl_cpu_ms_per_instance']:>6.2f} ms "
            f"{r['backfillctl_peak_rss_mb']:>4.0f} MB"
        )
        if "luigi_wall" in r:
            line += (
                f" {r['luigi_wall']:>7.2f} s {r['luigi_cpu_ms_per_instance']:>6.2f} ms "
                f"{r['luigi_peak_rss_mb']:>4.0f} MB {r['ratio']:>10.1f}x"
            )
        print(line)
    for r in rows:
        if "before_wall" in r:
            print(
                f"{r['instances']:>10} before ({args.before}): {r['before_wall']:.2f} s, first "
                f"start {r['before_first_start']:.3f} s, {r['before_cpu_ms_per_instance']:.2f} "
                f"ms CPU/instance; before/after {r['before_wall'] / r['backfillctl_wall']:.2f}x"
            )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this script: {own:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
