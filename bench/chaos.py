"""Chaos test of crash safety (issue 8; DESIGN §7 "Crash safety" and "Exactly once").

    python bench/chaos.py [--faults 200] [--seed N] [--nodes 10] [--dates 10] [--json]
                          [--final-timeout 180] [--workdir DIR] [--keep] [--no-reaper]
                          [--state postgresql://USER:PASSWORD@HOST:PORT/EMPTY_DATABASE]

Real processes only: controllers are `python -m backfill_ctl controller` processes, the
operations are `backfillctl stop|rerun` processes, the jobs run under the local backend.
Nothing in backfill_ctl is imported: the store is read with sqlite3, as an outsider would
(with `--state postgresql://...`, an empty database of a PostgreSQL server, with psycopg:
the controllers' and the operations' store; the local backend's files are then in
.backfillctl/ of the work directory, disk-full is skipped and integrity is the server's).

Workload (built here)
---------------------
A DAG of --nodes nodes (layers of 3, each node below the first layer reading one or two
nodes of the layer above) over --dates business dates in 2 date groups, one resource
group of concurrency 4. Every node runs `job.sh SECONDS` (argv, no shell), which:

1. takes a non-blocking flock on locks/<instance> (fd 9, inherited by everything the
   command starts, so the kernel keeps the lock while *any* process of the attempt
   lives); when that fails it writes `overlap` and then waits for the lock;
2. writes `start`, sleeps 0.4-0.8 s, writes `end ... 0` and exits 0.

Trace lines are `KIND INSTANCE WRAPPER_PID PID UPTIME [RC]`: WRAPPER_PID is the job's
process group, the pid of the attempt's first process (the one in its pid file and
handle: the job's shell under the shim; the /bin/sh wrapper of earlier versions), so
every line names its attempt exactly; UPTIME is CLOCK_BOOTTIME from /proc/uptime.
Nodes 1, 4, 7, ... are "timed": they ignore TERM (`trap '' TERM`, inherited by their
children), have `run.timeout: 2s` and `run.retries: 2`; the other nodes have 0 or 1
retries and no timeout. Retries wait `run.retryDelay: 0s` where backfillctl has it (a
retry at once is the likeliest to meet what its predecessor left).

Faults (every kind first, each until it hits something, then kinds at random by weight;
0.05-0.5 s apart, until --faults are counted)
-------------------------------------------------------------------------------------
- kill-controller: SIGKILL of the controller (at any moment, also while it loads or
  adopts), then a new one after 0-0.8 s.
- kill-shim: SIGKILL of the shim of a controller that has running attempts: the process
  that started their commands and writes their exit codes (their jobs live on). (Older
  backfillctl, without a shim: the /bin/sh wrapper of a running attempt.)
- kill-job: SIGKILL of the job's shell, the attempt's first process (its `sleep` lives
  on). (Older backfillctl: the wrapper's child.)
- hang: a token in arms/; the next timed command to start takes it, writes `hang` and
  sleeps 30 s ignoring TERM, so its timeout must KILL it; then it is retried. Counted
  when a command took it.
- sigstop: with `--lease-duration` (every controller then gets a 2 s lease): SIGSTOP of
  the controller past its lease, a second controller started, SIGCONT of the first
  once the second drives: the first must step down by itself (older backfillctl: exit;
  newer: say "back to standby" and wait for the lease), and is then stopped. Without
  the option (an older backfillctl): SIGSTOP within the lease, and the second
  controller must keep waiting; the past-lease case is reported as skipped.
- disk-full: the store's directory (state.db and runs/) is a 16 MiB tmpfs; a file fills
  it for 1-3 s, then is deleted; the controller must survive. Without permission to
  mount, skipped (and said so).
- ops-offline: the controller is stopped (SIGTERM or SIGKILL), then while none runs:
  `stop ID` of a running instance, `rerun ID...` of finished ones, or
  `stop backfill/chaos`; then a controller is started again.

Between faults, when fewer than 3 instances run, failed ones (else one business date)
are rerun so there is always work to hit ("refills", not counted as faults).

Final phase: no more faults; every controller is stopped, the failed instances are
rerun (which also resumes a stopped backfill), one controller runs until the backfill
finishes (at most --final-timeout s) and is stopped; then the checks.

Invariants (a violation makes the exit status 1)
-----------------------------------------------
- no-double-run: no `overlap` line in the trace, i.e. no command of an instance started
  while a process of another attempt of it was alive.
- none-lost: (a) after the final phase every instance is finished (succeeded, failed or
  cancelled); (b) no instance is failed without a reason (checked at the end of the
  chaos phase and at the end); (c) no attempt is still `starting`/`running` in the store
  after the final controller stopped; (d) every command that wrote `start` belongs to an
  attempt of the store (its wrapper pid is the pid of an attempt of that instance, from
  its pid file or handle): nothing ran that the store does not know of.
- states-match: (1) an attempt recorded succeeded wrote `end ... 0`; (2) an attempt
  recorded failed with exit code 0 was stopped or timed out (its message says so);
  (3) an attempt whose command wrote `end ... 0`, that no fault touched (no kill of its
  wrapper or job) and that was not cancelled, is not recorded with a non-zero exit
  code; (4) a succeeded instance's last attempt succeeded; a failed instance's last
  attempt did not. An attempt recorded `lost` (outcome unknown) is not a mismatch.
- converged: the final phase ended in time with every instance succeeded (it injects
  nothing and reran every failure, so anything else is a defect).
- no-process-left: after the final controller stopped, no process of any attempt is
  alive (found by a token in their environment).
- integrity: `PRAGMA integrity_check` says ok.
- controllers-survive: no controller exited without being killed or stopped by this
  script (a full disk included).
- lease: a controller SIGSTOPped past its lease is replaced by the second one, and stops
  by itself within 2 leases + 5 s of being resumed; within the lease, the second waits.

Output: the figures as text, or --json. With --workdir (or --keep) the work directory
stays: trace, faults.json (each fault, at the trace's clock), logs/controller-NNN.log,
and store-copy/ (state.db and runs/, copied off the tmpfs before it is unmounted).

PID 1 of this kind of container may not reap orphans; this script makes itself their
subreaper and reaps the attempts' orphaned processes (sh, sleep, flock, rm), as a proper
init does (`--no-reaper` leaves them as zombies). On exit, Ctrl-C included, it kills
every process it started (controllers by pid, then the attempts' processes found by the
token) and unmounts the tmpfs.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
API = "backfillctl.dev/v1alpha1"
BACKFILL = "chaos"
ACTOR = "chaos"
LAYER, CONCURRENCY, TIMEOUT_S, LEASE_S = 3, 4, 2, 2.0
TMPFS_SIZE = "16m"
FINISHED = ("succeeded", "failed", "cancelled")
ATTEMPT_PROCS = ("sh", "sleep", "flock", "rm")  # what an attempt runs: the only zombies we reap
WEIGHTS = {
    "kill-controller": 20,
    "kill-shim": 15,
    "kill-job": 15,
    "hang": 12,
    "ops-offline": 15,
    "sigstop": 6,
    "disk-full": 6,
}

JOB = r"""# One attempt of a chaos node ($1: seconds of work); see bench/chaos.py.
id=$BACKFILL_TASKID
secs=$1
# The attempt's process group (= the pid of its first process: this shell, or an older
# version's wrapper), not $PPID, which is the controller (its subreaper) once the
# shim that started it was killed.
read -r stat </proc/self/stat
set -- $stat
w=$5
exec 9>>"$CHAOS_LOCKS/$id"
if ! flock -n 9; then
  read -r t _ </proc/uptime; echo "overlap $id $w $$ $t" >>"$CHAOS_TRACE"
  flock -w 120 9
fi
if [ "$CHAOS_TIMED" = 1 ]; then trap '' TERM; fi
read -r t _ </proc/uptime; echo "start $id $w $$ $t" >>"$CHAOS_TRACE"
if [ "$CHAOS_TIMED" = 1 ]; then
  for f in "$CHAOS_ARMS"/hang.*; do
    if rm "$f" 2>/dev/null; then
      read -r t _ </proc/uptime; echo "hang $id $w $$ $t" >>"$CHAOS_TRACE"
      sleep 30
      break
    fi
  done
fi
sleep "$secs"
read -r t _ </proc/uptime; echo "end $id $w $$ $t 0" >>"$CHAOS_TRACE"
"""


class Interrupted(Exception):
    """SIGTERM (or SIGINT) of this script: clean up and leave."""


def uptime() -> float:
    """The clock of the trace (/proc/uptime is CLOCK_BOOTTIME)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


# -- the workload ----------------------------------------------------------------------


@dataclass
class Layout:
    work: Path
    url: str | None = None  # a PostgreSQL store instead of store/state.db

    @property
    def specs(self) -> Path:
        return self.work / "specs"

    @property
    def store(self) -> Path:  # the tmpfs mount point when mounting is allowed
        return self.work / "store"

    @property
    def db(self) -> Path | str:
        return self.url or self.store / "state.db"

    def pid_files(self, instance: str, number: int) -> list[Path]:
        """An attempt's pid file: runs/<backfill>/ or (newer) runs/<store id>/<backfill>/
        beside the store file, or in .backfillctl/ of the work directory (PostgreSQL)."""
        pattern = f"runs/**/{BACKFILL}/{instance}.{number}.pid"
        root = self.work / ".backfillctl" if self.url else self.store
        return list(root.glob(pattern))

    @property
    def trace(self) -> Path:
        return self.work / "trace"

    @property
    def locks(self) -> Path:
        return self.work / "locks"

    @property
    def arms(self) -> Path:
        return self.work / "arms"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def job(self) -> Path:
        return self.work / "job.sh"


def upstream(n: int) -> list[int]:
    """Below the first layer, the node above and the next one of that layer."""
    if n < LAYER:
        return []
    above = (n // LAYER - 1) * LAYER
    return sorted({n - LAYER, above + (n + 1) % LAYER})


def timed(n: int) -> bool:
    return n % LAYER == 1


def write_workload(layout: Layout, nodes: int, dates: int, token: str) -> None:
    schema = json.loads((ROOT / "schemas" / "node.schema.json").read_text())
    retry_delay = "retryDelay" in schema["properties"]["spec"]["properties"]["run"]["properties"]
    for d in (layout.specs, layout.store, layout.locks, layout.arms, layout.logs):
        d.mkdir(parents=True, exist_ok=True)
    layout.job.write_text(JOB)
    layout.trace.touch()
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": API,
            "kind": "Workspace",
            "metadata": {"name": "ws"},
            "spec": {"timezone": "UTC", "operators": [ACTOR]},
        },
        {
            "apiVersion": API,
            "kind": "ResourceGroup",
            "metadata": {"name": "rg"},
            "spec": {"type": "shared", "concurrency": CONCURRENCY},
        },
    ]
    for n in range(nodes):
        env = {
            "CHAOS_TRACE": str(layout.trace),
            "CHAOS_LOCKS": str(layout.locks),
            "CHAOS_ARMS": str(layout.arms),
            "CHAOS_TOKEN": token,
            "CHAOS_TIMED": "1" if timed(n) else "0",
        }
        run: dict[str, Any] = {
            "command": ["/bin/sh", str(layout.job), f"{0.4 + 0.1 * (n % 5):.1f}"],
            "env": env,
            "retries": 2 if timed(n) else n % 2,
        }
        if timed(n):
            run["timeout"] = f"{TIMEOUT_S}s"
        if retry_delay:  # at once: a retry is most likely to meet what its predecessor left
            run["retryDelay"] = "0s"
        docs.append(
            {
                "apiVersion": API,
                "kind": "Node",
                "metadata": {"name": f"n{n}", "workspace": "ws", "owners": [ACTOR]},
                "spec": {
                    "schedule": "0 2 * * *",
                    "upstream": [f"n{u}" for u in upstream(n)],
                    "resourceGroup": "rg",
                    "run": run,
                },
            }
        )
    last = (date(2024, 3, 1) + timedelta(days=dates - 1)).isoformat()
    docs.append(
        {
            "apiVersion": API,
            "kind": "Backfill",
            "metadata": {"name": BACKFILL},
            "spec": {
                "select": {
                    "method": "descendants",
                    "roots": [f"n{n}" for n in range(min(LAYER, nodes))],
                },
                "dates": [{"from": "2024-03-01", "to": last}],
                "groups": 2 if dates >= 4 else 1,
            },
        }
    )
    config = {"apiVersion": API, "kind": "Config", "spec": {"backend": "local"}}
    (layout.specs / "backfillctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (layout.specs / "all.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))


# -- processes -------------------------------------------------------------------------


def proc_state(pid: int) -> tuple[str, int, str] | None:
    """(state, ppid, comm) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), comm


def alive(pid: int) -> bool:
    """Running, not a zombie."""
    st = proc_state(pid)
    return st is not None and st[0] != "Z"


def pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def token_processes(token: str) -> list[dict[str, Any]]:
    """Live processes of attempts: their environment holds this run's token."""
    needle = f"CHAOS_TOKEN={token}".encode()
    found = []
    for pid in pids():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and alive(pid):
            taskid = next(
                (v[15:].decode() for v in env.split(b"\0") if v.startswith(b"BACKFILL_TASKID=")), ""
            )
            cmd = cmdline(pid).replace(b"\0", b" ").decode(errors="replace").strip()
            found.append({"pid": pid, "instance": taskid, "cmdline": cmd[:120]})
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


class Reaper:
    """This process as the subreaper of the attempts' orphans (PID 1 here does not reap
    them, and a zombie wrapper looks alive to kill(pid, 0)). Only zombies named like an
    attempt's processes are reaped, never our own Popen children (python, mount)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.enabled = False
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER
            self.enabled = True
            self.thread.start()

    def _loop(self) -> None:
        me = os.getpid()
        while not self.stop.wait(0.1):
            for pid in pids():
                st = proc_state(pid)
                if st and st[0] == "Z" and st[1] == me and st[2] in ATTEMPT_PROCS:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)


@dataclass
class Ctl:
    n: int
    proc: subprocess.Popen[bytes]
    log: Path
    expected: str | None = None  # why it may exit (set before we make it exit)
    stopped: bool = False  # SIGSTOPped

    def says(self, text: str) -> bool:
        try:
            return text in self.log.read_text(errors="replace")
        except OSError:
            return False

    def tail(self, lines: int = 4) -> list[str]:
        try:
            return self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []


class Fleet:
    """The controllers this script started; notices those that exit on their own."""

    def __init__(self, layout: Layout, env: dict[str, str], lease: bool) -> None:
        self.layout, self.env, self.lease = layout, env, lease
        self.all: list[Ctl] = []
        self.crashes: list[dict[str, Any]] = []

    def start(self) -> Ctl:
        n = len(self.all) + 1
        log = self.layout.logs / f"controller-{n:03d}.log"
        argv = [
            sys.executable,
            "-m",
            "backfill_ctl",
            "controller",
            str(self.layout.specs),
            "--state",
            str(self.layout.db),
            "--interval",
            "0.1",
        ]
        if self.lease:
            argv += ["--lease-duration", str(LEASE_S)]
        with log.open("ab") as err:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self.env,
                cwd=self.layout.work,
                start_new_session=True,
            )
        ctl = Ctl(n, proc, log)
        self.all.append(ctl)
        return ctl

    def live(self) -> list[Ctl]:
        return [c for c in self.all if c.proc.poll() is None]

    def active(self) -> Ctl | None:
        live = [c for c in self.live() if not c.stopped and c.expected is None]
        return live[-1] if live else None

    def check(self) -> None:
        """Record controllers that exited while nobody made them."""
        for c in self.all:
            if c.expected is None and c.proc.poll() is not None:
                c.expected = "crashed"
                self.crashes.append(
                    {
                        "controller": c.n,
                        "exit": c.proc.returncode,
                        "when": "while driving" if c.says(" drives ") else "while starting",
                        "log": c.tail(6),
                    }
                )

    def ensure(self) -> Ctl:
        self.check()
        return self.active() or self.start()

    def kill(self, c: Ctl, why: str) -> None:
        c.expected = why
        with contextlib.suppress(ProcessLookupError):
            os.kill(c.proc.pid, signal.SIGKILL)
        c.proc.wait()

    def term(self, c: Ctl, why: str, wait: float = 15.0) -> None:
        c.expected = why
        with contextlib.suppress(ProcessLookupError):
            if c.stopped:
                os.kill(c.proc.pid, signal.SIGCONT)
                c.stopped = False
            os.kill(c.proc.pid, signal.SIGTERM)
        try:
            c.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.kill(c, why + " (killed: no exit after SIGTERM)")

    def stop_all(self) -> None:
        for c in self.live():
            self.term(c, c.expected or "stopped at the end")


def lease_supported(env: dict[str, str]) -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "backfill_ctl", "controller", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return "--lease-duration" in out.stdout


# -- the store, read as an outsider ----------------------------------------------------


def query(db: Path | str, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """A short read (a connection per call, as `backfillctl get` would); rows by name."""
    if isinstance(db, str):
        return query_postgres(db, sql, args)
    con = sqlite3.connect(db, timeout=10)
    try:
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA query_only = 1")
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def query_postgres(url: str, sql: str, args: tuple[Any, ...]) -> list[Any]:
    import psycopg
    from psycopg.rows import dict_row

    if sql.startswith("PRAGMA integrity_check"):  # the server keeps its own data whole
        return [{0: "ok"}]
    with psycopg.connect(url, row_factory=dict_row, connect_timeout=10) as con:
        return con.execute(sql.replace("?", "%s"), args).fetchall()


def counts(db: Path | str) -> dict[str, int]:
    rows = query(db, "SELECT state, count(*) AS n FROM instances GROUP BY state")
    return {r["state"]: r["n"] for r in rows}


def running_attempts(db: Path | str) -> list[dict[str, Any]]:
    """Running attempts whose first process is alive (its environment marks it as the
    attempt's, or an older version's wrapper's command line names the attempt's files:
    a reused pid is not taken for it): instance, number, pid, base."""
    found = []
    for r in query(db, "SELECT instance, number, handle FROM attempts WHERE state = 'running'"):
        handle = json.loads(r["handle"] or "{}")
        pid, base = int(handle.get("pid") or 0), str(handle.get("base")).encode()
        if pid <= 0 or not alive(pid) or not (base in cmdline(pid) or marked(pid, base)):
            continue
        found.append({"instance": r["instance"], "number": r["number"], "pid": pid, "base": base})
    return found


def marked(pid: int, base: bytes) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return b"BACKFILLCTL_ATTEMPT=" + base in env.split(b"\0")


def cli(layout: Layout, env: dict[str, str], *args: str) -> tuple[int, str]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "backfill_ctl",
            *args,
            "--state-file",
            str(layout.db),
            "--as",
            ACTOR,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=layout.work,
        timeout=120,
        check=False,
    )
    text = (out.stdout + out.stderr).strip().splitlines()
    return out.returncode, text[-1] if text else ""


# -- the trace -------------------------------------------------------------------------


@dataclass
class CommandRun:
    """One command of an attempt, as it wrote itself in the trace."""

    instance: str
    wrapper: int
    start: float | None = None
    end: float | None = None
    rc: int | None = None
    hang: bool = False
    overlap: float | None = None


def read_trace(path: Path) -> dict[tuple[str, int], CommandRun]:
    runs: dict[tuple[str, int], CommandRun] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        kind, instance, wrapper, t = parts[0], parts[1], int(parts[2]), float(parts[4])
        r = runs.setdefault((instance, wrapper), CommandRun(instance, wrapper))
        if kind == "start":
            r.start = t
        elif kind == "end":
            r.end, r.rc = t, int(parts[5]) if len(parts) > 5 else None
        elif kind == "hang":
            r.hang = True
        elif kind == "overlap":
            r.overlap = t
    return runs


# -- faults ----------------------------------------------------------------------------


@dataclass
class Chaos:
    layout: Layout
    env: dict[str, str]
    fleet: Fleet
    rng: random.Random
    mounted: bool
    lease: bool
    faults: list[dict[str, Any]] = field(default_factory=list)
    touched: set[tuple[str, int]] = field(default_factory=set)  # (instance, wrapper) killed
    findings: list[dict[str, Any]] = field(default_factory=list)  # to report, not violations
    lease_problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # spent injecting, by kind
    refills: int = 0
    armed: int = 0
    final_rounds: int = 0  # reruns of failures in the final phase
    _last_refill: float = 0.0

    def fault(self, kind: str, **detail: Any) -> None:
        self.faults.append({"kind": kind, "at": round(uptime(), 2), **detail})

    def hangs_taken(self) -> int:
        return sum(1 for line in self.layout.trace.read_text().splitlines() if line[:5] == "hang ")

    def injected(self) -> int:
        return len(self.faults) + self.hangs_taken()

    def kinds(self) -> list[str]:
        return [k for k in WEIGHTS if k != "disk-full" or self.mounted]

    def inject(self, kind: str) -> bool:
        t = time.monotonic()
        done: bool = getattr(self, kind.replace("-", "_"))()
        self.seconds[kind] = self.seconds.get(kind, 0.0) + time.monotonic() - t
        return done

    # each fault: injects and says True, or says False when it has nothing to hit now

    def kill_controller(self) -> bool:
        c = self.fleet.active()
        if c is None:
            return False
        self.fleet.kill(c, "kill -9")
        self.fault("kill-controller", controller=c.n)
        time.sleep(self.rng.uniform(0, 0.8))
        self.fleet.start()
        return True

    def running(self) -> list[dict[str, Any]]:
        """Running attempts; waits up to 2 s for one (a new controller may be starting)."""
        deadline = time.monotonic() + 2.0
        while True:
            found = running_attempts(self.layout.db)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def kill_shim(self) -> bool:
        """SIGKILL of a controller's shim, with every running attempt it started touched
        (their codes are never written); an older backfillctl's wrapper of one attempt."""
        running = self.running()
        self.rng.shuffle(running)
        for a in running:
            st = proc_state(a["pid"])
            if st is None or b"backends/local/shim.py" not in cmdline(st[1]):
                continue
            shim = st[1]
            mine = [b for b in running if (proc_state(b["pid"]) or ("", 0))[1] == shim]
            with contextlib.suppress(ProcessLookupError):
                os.kill(shim, signal.SIGKILL)
            self.touched |= {(b["instance"], b["pid"]) for b in mine}
            self.fault("kill-shim", pid=shim, attempts=[[b["instance"], b["number"]] for b in mine])
            return True
        wrapped = [a for a in running if a["base"] in cmdline(a["pid"])]
        if not wrapped:
            return False
        a = self.rng.choice(wrapped)
        with contextlib.suppress(ProcessLookupError):
            os.kill(a["pid"], signal.SIGKILL)
        self.touched.add((a["instance"], a["pid"]))
        self.fault("kill-shim", instance=a["instance"], attempt=a["number"], pid=a["pid"])
        return True

    def kill_job(self) -> bool:
        """SIGKILL of the job's shell: the attempt's first process (an older backfillctl's
        wrapper's child)."""
        running = self.running()
        self.rng.shuffle(running)
        for a in running:
            wrapped = a["base"] in cmdline(a["pid"])
            jobs = children(a["pid"]) if wrapped else [a["pid"]]
            if jobs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(jobs[0], signal.SIGKILL)
                self.touched.add((a["instance"], a["pid"]))
                self.fault(
                    "kill-job",
                    instance=a["instance"],
                    attempt=a["number"],
                    wrapper=a["pid"],
                    pid=jobs[0],
                )
                return True
        return False

    def hang(self) -> bool:
        if any(self.layout.arms.iterdir()):
            return False  # one at a time: it is counted when a command takes it
        self.armed += 1
        (self.layout.arms / f"hang.{self.armed}").touch()
        return True

    def sigstop(self) -> bool:
        a = self.fleet.active()
        if a is None or not wait_for(lambda: a.says(" drives "), 10):
            return False
        os.kill(a.proc.pid, signal.SIGSTOP)
        a.stopped = True
        b = self.fleet.start()
        if self.lease:  # past the lease: b must take over, a must give up when resumed
            took = wait_for(lambda: b.says(" drives "), LEASE_S * 4 + 10)
            a.expected = "resumed after losing its lease"
            os.kill(a.proc.pid, signal.SIGCONT)
            a.stopped = False
            gone = wait_for(
                lambda: a.proc.poll() is not None or a.says("back to standby"), LEASE_S * 2 + 5
            )
            if gone and a.proc.poll() is None:  # a standby now: one controller at a time here
                self.fleet.term(a, "stepped down after losing its lease: stopped by chaos")
            self.fault("sigstop", controller=a.n, second=b.n, took_over=took, first_left=gone)
            if not took:
                self.lease_problems.append(
                    f"controller {b.n} did not take over the expired lease of SIGSTOPped "
                    f"controller {a.n}: " + " | ".join(b.tail())
                )
            if not gone:
                self.lease_problems.append(
                    f"controller {a.n}, resumed after its lease expired, went on for "
                    f"{LEASE_S * 2 + 5:.0f} s: " + " | ".join(a.tail())
                )
                self.fleet.term(a, "resumed after losing its lease: stopped by chaos")
            return True
        time.sleep(1.0)  # within the lease: b must wait
        drove = b.says(" drives ")
        waited = b.says("waiting for the lease")
        os.kill(a.proc.pid, signal.SIGCONT)
        a.stopped = False
        self.fleet.term(b, "second controller, stopped by chaos")
        self.fault("sigstop-within-lease", controller=a.n, second=b.n, second_waited=waited)
        if drove:
            self.lease_problems.append(
                f"controller {b.n} drove while SIGSTOPped controller {a.n} held the lease: "
                + " | ".join(b.tail())
            )
        return True

    def disk_full(self) -> bool:
        filler = self.layout.store / "filler"
        written = fill(filler)
        hold = self.rng.uniform(1.0, 3.0)
        time.sleep(hold)
        filler.unlink(missing_ok=True)
        before = len(self.fleet.crashes)
        self.fleet.check()
        self.fault(
            "disk-full",
            filled_mib=round(written / 2**20, 1),
            seconds=round(hold, 1),
            controller_crashed=len(self.fleet.crashes) > before,
        )
        return True

    def ops_offline(self) -> bool:
        c = self.fleet.active()
        if c is not None:
            if self.rng.random() < 0.5:
                self.fleet.term(c, "SIGTERM before an operation")
            else:
                self.fleet.kill(c, "kill -9 before an operation")
        for other in self.fleet.live():  # none may run (a waiting one included)
            self.fleet.term(other, "stopped before an operation")
        rows = query(self.layout.db, "SELECT id, state FROM instances")
        running = [r["id"] for r in rows if r["state"] == "running"]
        done = [r["id"] for r in rows if r["state"] in ("succeeded", "failed")]
        choices = [("stop", 2)] * bool(running) + [("rerun", 2)] * bool(done)
        choices.append(("stop-backfill", 1))
        op = self.rng.choices([k for k, _ in choices], [w for _, w in choices])[0]
        if op == "stop":
            targets = [self.rng.choice(running)]
            code, said = cli(self.layout, self.env, "stop", *targets)
        elif op == "rerun":
            targets = self.rng.sample(done, min(len(done), self.rng.randint(1, 3)))
            code, said = cli(self.layout, self.env, "rerun", *targets)
        else:
            targets = [f"backfill/{BACKFILL}"]
            code, said = cli(self.layout, self.env, "stop", *targets)
        self.fault("ops-offline", op=op, targets=targets, exit=code, said=said[:160])
        if code not in (0, 1):  # 1: refused (its state changed); 2: an error
            self.findings.append({"what": f"`{op}` failed", "exit": code, "said": said})
        time.sleep(self.rng.uniform(0, 0.5))
        self.fleet.start()
        return True

    def refill(self) -> None:
        """Keep work going: rerun failures (or a date) when little runs."""
        now = time.monotonic()
        if now - self._last_refill < 1.0:
            return
        n = counts(self.layout.db)
        if n.get("running", 0) >= CONCURRENCY - 1 or n.get("waiting-for-resources", 0):
            return
        self._last_refill = now
        self.refills += 1
        if n.get("failed"):
            cli(self.layout, self.env, "rerun", "--backfill", BACKFILL, "--state", "failed")
        else:
            days = [
                r["bizdate"]
                for r in query(self.layout.db, "SELECT DISTINCT bizdate FROM instances")
            ]
            day = self.rng.choice(days)
            cli(self.layout, self.env, "rerun", "--backfill", BACKFILL, "--bizdate", day)

    def run(self, target: int, deadline: float) -> None:
        owed = self.kinds()  # every kind at least once, then by weight
        kinds = self.kinds()
        # faults hit a backfill that runs: the first one waits for the first command
        while "start " not in self.layout.trace.read_text():
            if time.monotonic() > deadline:
                self.findings.append({"what": "no command started", "injected": 0})
                return
            self.fleet.ensure()
            time.sleep(0.1)
        while self.injected() < target:
            if time.monotonic() > deadline:
                self.findings.append(
                    {"what": "the chaos phase ran out of time", "injected": self.injected()}
                )
                return
            self.fleet.ensure()
            time.sleep(self.rng.uniform(0.05, 0.5))
            self.fleet.check()
            if owed:
                kind = self.rng.choice(owed)
            else:
                kind = self.rng.choices(kinds, [WEIGHTS[k] for k in kinds])[0]
            try:
                self.refill()
                if self.inject(kind) and kind in owed:  # else nothing to hit: again later
                    owed.remove(kind)
            except sqlite3.Error as exc:  # a store we cannot read is a finding, not our end
                self.findings.append({"what": f"reading the store failed: {exc}", "kind": kind})


def fill(path: Path) -> int:
    """Write zeros until the filesystem is full; bytes written."""
    written = 0
    with path.open("wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1 << 9):  # then the last blocks
            chunk = b"\0" * size
            while True:
                try:
                    f.write(chunk)
                    written += size
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def wait_for(what: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return False


def mount_tmpfs(where: Path) -> str | None:
    """None when mounted, else why not."""
    try:
        out = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "chaos", str(where)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except OSError as exc:
        return str(exc)
    return None if out.returncode == 0 else (out.stderr.strip() or f"exit {out.returncode}")


# -- the checks ------------------------------------------------------------------------


CANCELLED = ("timed out", "stopped by")


def check(
    layout: Layout,
    chaos: Chaos,
    before_final: list[sqlite3.Row],
    converged: bool,
    left: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    db = layout.db
    instances = {r["id"]: r for r in query(db, "SELECT * FROM instances")}
    attempts = query(db, "SELECT * FROM attempts ORDER BY instance, number")
    trace = read_trace(layout.trace)
    by_instance: dict[str, list[sqlite3.Row]] = {}
    wrapper_of: dict[tuple[str, int], int] = {}
    for a in attempts:
        by_instance.setdefault(a["instance"], []).append(a)
        handle = json.loads(a["handle"] or "{}")
        base = handle.get("base")
        pid_files = [Path(f"{base}.pid")] if base else []
        pid = 0
        for pid_file in pid_files or layout.pid_files(a["instance"], a["number"]):
            with contextlib.suppress(OSError, ValueError):
                pid = pid or int(pid_file.read_text().strip() or 0)
        pid = pid or int(handle.get("pid") or 0)
        wrapper_of[(a["instance"], a["number"])] = pid
    attempt_of = {(i, w): n for (i, n), w in wrapper_of.items() if w}

    def one(instance: str, number: int | str) -> str:
        """An attempt as the store recorded it."""
        for a in by_instance.get(instance, []):
            if a["number"] == number:
                message = f" ({a['message']})" if a["message"] else ""
                return f"attempt {number} {a['state']} exit={a['exit_code']}{message}"
        return f"attempt {number}: not in the store"

    def describe(instance: str, last: int = 3) -> str:
        tries = by_instance.get(instance, [])
        shown = "; ".join(one(instance, a["number"]) for a in tries[-last:])
        return f"{len(tries)} attempts, last: {shown}" if len(tries) > last else shown

    def touched_by(instance: str, wrapper: int) -> list[str]:
        return [
            f["kind"]
            for f in chaos.faults
            if f.get("instance") == instance and wrapper in (f.get("pid"), f.get("wrapper"))
        ]

    # no-double-run: the first overlap of each instance, and the attempts that held the lock
    overlaps: dict[str, list[CommandRun]] = {}
    for r in sorted(trace.values(), key=lambda r: r.overlap or 0.0):
        if r.overlap is not None:
            overlaps.setdefault(r.instance, []).append(r)
    doubles = []
    for instance, runs in overlaps.items():
        r = runs[0]
        at = r.overlap or 0.0
        holders = [
            o
            for o in trace.values()
            if o.instance == instance
            and o.wrapper != r.wrapper
            and o.start is not None
            and o.start <= at
            and (o.end is None or o.end >= at)
        ]
        held = "; ".join(
            one(instance, attempt_of.get((instance, o.wrapper), "?"))
            + f" [wrapper {o.wrapper}; "
            + ", ".join([*touched_by(instance, o.wrapper), *(["hang"] if o.hang else [])])
            + ("; its command never wrote end" if o.end is None else f"; wrote end at {o.end:.2f}")
            + "]"
            for o in holders
        )
        doubles.append(
            f"{instance} ({instances[instance]['node'] if instance in instances else '?'}): "
            f"{len(runs)} attempt(s) started while another attempt's process was alive; first, "
            f"attempt {attempt_of.get((instance, r.wrapper), '?')} at {at:.2f} while: "
            + (held or "an earlier attempt's leftover process")
        )

    # none-lost
    lost = []
    for i in instances.values():
        if i["state"] not in FINISHED:
            lost.append(
                f"{i['id']}: {i['state']} ({i['reason'] or 'no reason'}) at the end | "
                f"store: {describe(i['id'])}"
            )
        if i["state"] == "failed" and not (i["reason"] or "").strip():
            lost.append(f"{i['id']}: failed without a reason")
    for i in before_final:
        if i["state"] == "failed" and not (i["reason"] or "").strip():
            lost.append(f"{i['id']}: failed without a reason (end of the chaos phase)")
    for a in attempts:
        if a["state"] in ("starting", "running"):
            lost.append(
                f"{a['instance']}: attempt {a['number']} still {a['state']} after the "
                f"final controller stopped"
            )
    for (instance, wrapper), r in trace.items():
        if r.start is not None and (instance, wrapper) not in attempt_of:
            lost.append(
                f"{instance}: a command ran (wrapper {wrapper}) that no attempt of the "
                f"store knows | store: {describe(instance)}"
            )

    # states-match
    mismatch = []
    for a in attempts:
        key = (a["instance"], a["number"])
        ran = trace.get((a["instance"], wrapper_of[key]))
        ended_ok = ran is not None and ran.end is not None and ran.rc == 0
        message = a["message"] or ""
        cancelled = any(w in message for w in CANCELLED)
        label = f"{a['instance']}: attempt {a['number']} (wrapper {wrapper_of[key]})"
        if a["state"] == "succeeded" and not ended_ok:
            what = "never started" if ran is None or ran.start is None else "never wrote end"
            mismatch.append(f"{label} recorded succeeded but its command {what}")
        if a["state"] == "failed" and a["exit_code"] == 0 and not cancelled:
            mismatch.append(f"{label} recorded failed for exit 0 ({message})")
        if (
            ended_ok
            and a["exit_code"] not in (0, None)
            and not cancelled
            and (a["instance"], wrapper_of[key]) not in chaos.touched
        ):
            mismatch.append(
                f"{label} recorded {a['state']} exit {a['exit_code']} ({message}) but its "
                "command ended 0 and no fault touched it"
            )
    for i in instances.values():
        tries = by_instance.get(i["id"], [])
        last = tries[-1] if tries else None
        if i["state"] == "succeeded" and (last is None or last["state"] != "succeeded"):
            mismatch.append(
                f"{i['id']}: succeeded but its last attempt is "
                f"{last['state'] if last else 'missing'} | store: {describe(i['id'])}"
            )
        if i["state"] == "failed" and last is not None and last["state"] == "succeeded":
            mismatch.append(f"{i['id']}: failed ({i['reason']}) but its last attempt succeeded")

    integrity = [r[0] for r in query(db, "PRAGMA integrity_check")]
    not_done = [
        f"{i['id']}: {i['state']} ({i['reason']})"
        for i in instances.values()
        if i["state"] != "succeeded"
    ]
    crashes = [
        f"controller {c['controller']} exited {c['exit']} {c['when']}: " + " | ".join(c["log"])
        for c in chaos.fleet.crashes
    ]

    def verdict(problems: list[str]) -> dict[str, Any]:
        return {"ok": not problems, "count": len(problems), "evidence": problems[:6]}

    return {
        "no-double-run": verdict(doubles),
        "none-lost": verdict(lost),
        "states-match": verdict(mismatch),
        "converged": verdict(not_done + ([] if converged else ["the final phase timed out"])),
        "no-process-left": verdict(
            [f"pid {p['pid']} of {p['instance']}: {p['cmdline']}" for p in left]
        ),
        "integrity": verdict([] if integrity == ["ok"] else integrity),
        "controllers-survive": verdict(crashes),
        "lease": verdict(chaos.lease_problems),
    }


# -- the run ---------------------------------------------------------------------------


def final_phase(layout: Layout, chaos: Chaos, timeout: float) -> tuple[bool, list[sqlite3.Row]]:
    """No more faults; one controller runs the backfill to its end, failures rerun (at
    most 3 rounds: none should fail). (ended in time, the instances at the chaos end)"""
    for f in layout.arms.iterdir():
        f.unlink(missing_ok=True)
    (layout.store / "filler").unlink(missing_ok=True)
    chaos.fleet.check()
    chaos.fleet.stop_all()
    before = query(layout.db, "SELECT * FROM instances")
    rounds = 0

    def resume() -> None:
        """Rerun the failures; a stopped backfill with none is resumed by a rerun too."""
        nonlocal rounds
        rounds += 1
        cli(layout, chaos.env, "rerun", "--backfill", BACKFILL, "--state", "failed")
        status = query(layout.db, "SELECT status FROM backfills WHERE name = ?", (BACKFILL,))
        if status and status[0]["status"] == "stopped":
            done = query(layout.db, "SELECT id FROM instances WHERE state = 'succeeded' LIMIT 1")
            if done:
                cli(layout, chaos.env, "rerun", done[0]["id"])

    resume()
    chaos.fleet.start()

    def finished() -> bool:
        chaos.fleet.ensure()  # a crash is counted; another controller goes on
        (b,) = query(layout.db, "SELECT * FROM backfills WHERE name = ?", (BACKFILL,))
        n = counts(layout.db)
        if n.get("running"):
            return False
        stuck = b["status"] == "stopped" or (b["finished_at"] and n.get("failed"))
        if stuck and rounds < 4:  # a stop requested before the end has only now taken effect
            resume()
            return False
        return bool(b["finished_at"])

    in_time = wait_for(finished, timeout)
    chaos.final_rounds = rounds
    chaos.fleet.stop_all()
    return in_time, before


def figures(
    layout: Layout, chaos: Chaos, args: argparse.Namespace, skipped: dict[str, str]
) -> dict[str, Any]:
    by_kind = Counter(f["kind"] for f in chaos.faults)
    taken = chaos.hangs_taken()
    if taken:
        by_kind["hang"] = taken
    trace = read_trace(layout.trace)
    attempts = query(layout.db, "SELECT state, count(*) AS n FROM attempts GROUP BY state")
    ops = Counter(f["op"] for f in chaos.faults if f["kind"] == "ops-offline")
    return {
        "faults": {
            "total": sum(by_kind.values()),
            "by_kind": dict(sorted(by_kind.items())),
            "ops": dict(ops),
            "seconds_by_kind": {k: round(v, 1) for k, v in sorted(chaos.seconds.items())},
            "skipped": skipped,
        },
        "workload": {
            "nodes": args.nodes,
            "dates": args.dates,
            "instances": sum(counts(layout.db).values()),
            "attempts": sum(r["n"] for r in attempts),
            "attempts_by_state": {r["state"]: r["n"] for r in attempts},
            "commands_started": sum(1 for r in trace.values() if r.start is not None),
            "refills": chaos.refills,
            "final_reruns": chaos.final_rounds,
            "controllers_started": len(chaos.fleet.all),
        },
        "findings": chaos.findings,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--dates", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--final-timeout", type=float, default=180.0)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="of the chaos phase")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-reaper", action="store_true")
    parser.add_argument(
        "--state", default=None, help="a postgresql:// URL of an empty database (else SQLite)"
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    rng = random.Random(seed)

    def interrupted(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    reaper = Reaper()
    if not args.no_reaper:
        reaper.start()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="chaos-"))
    layout = Layout(work.resolve(), args.state)
    token = uuid.uuid4().hex
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for var in ("BACKFILLCTL_STATE", "BACKFILLCTL_ACTOR", "BACKFILLCTL_NOW"):
        env.pop(var, None)
    layout.store.mkdir(parents=True, exist_ok=True)
    why_not = mount_tmpfs(layout.store) if args.state is None else "the store is PostgreSQL"
    mounted = why_not is None
    fleet: Fleet | None = None
    started = time.monotonic()
    try:
        write_workload(layout, args.nodes, args.dates, token)
        skipped: dict[str, str] = {}
        if not mounted:
            skipped["disk-full"] = (
                f"mount -t tmpfs refused ({why_not}); run as root or with CAP_SYS_ADMIN "
                "(e.g. sudo, or a container with --cap-add SYS_ADMIN) to include it"
                if args.state is None
                else "the store is a PostgreSQL server (its disk is not this script's to fill)"
            )
        lease = lease_supported(env)
        if not lease:
            skipped["sigstop past the lease"] = (
                "`backfillctl controller` has no --lease-duration yet (the lease is 30 s); "
                "SIGSTOP within the lease was injected instead"
            )
        code, said = cli(layout, env, "apply", str(layout.specs))
        if code != 0:
            raise SystemExit(f"apply failed ({code}): {said}")
        # a controller's internal error then ends with its traceback in its log
        fleet = Fleet(layout, {**env, "BACKFILLCTL_DEBUG": "1"}, lease)
        chaos = Chaos(layout, env, fleet, rng, mounted, lease)
        try:
            chaos.run(args.faults, time.monotonic() + args.max_seconds)
        finally:  # what was done when, for a post-mortem with the trace and the logs
            (layout.work / "faults.json").write_text(json.dumps(chaos.faults, indent=1))
        chaos_s = time.monotonic() - started
        t = time.monotonic()
        converged, before = final_phase(layout, chaos, args.final_timeout)
        final_s = time.monotonic() - t
        time.sleep(1.0)  # what the last attempts leave behind has a moment to go
        left = token_processes(token)
        result = figures(layout, chaos, args, skipped)
        result["invariants"] = check(layout, chaos, before, converged, left)
        result["wall_s"] = {
            "chaos": round(chaos_s, 1),
            "final": round(final_s, 1),
            "total": round(time.monotonic() - started, 1),
        }
        result["seed"] = seed
        result["tmpfs"] = mounted
        result["reaper"] = reaper.enabled
        result["ok"] = all(v["ok"] for v in result["invariants"].values())
        if args.keep or args.workdir:
            result["workdir"] = str(layout.work)  # the store is copied to store-copy/
        print(json.dumps(result, indent=2) if args.json else report(result))
        return 0 if result["ok"] else 1
    except Interrupted as exc:
        print(f"interrupted ({exc}): stopping everything this run started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip this
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup(layout, fleet, token, mounted, keep=args.keep or args.workdir is not None)
        reaper.stop.set()


def cleanup(layout: Layout, fleet: Fleet | None, token: str, mounted: bool, keep: bool) -> None:
    """Every controller and operation we started, every process of an attempt, the mount;
    with `keep`, a copy of the store first (it lives on the tmpfs)."""
    ours = [c.proc.pid for c in fleet.all if c.proc.poll() is None] if fleet else []
    # a controller or `backfillctl` process started just as we were interrupted, before
    # the fleet knew it: it names our store on its command line (and is backfillctl: a
    # PostgreSQL URL is on this script's command line, and on those of its parents)
    ours += [
        p
        for p in pids()
        if str(layout.db).encode() in cmdline(p)
        and b"backfill_ctl" in cmdline(p)
        and p != os.getpid()
    ]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    for c in fleet.all if fleet else []:
        c.proc.wait()
    for _ in range(5):  # a dying wrapper may have started one more child
        procs = token_processes(token)
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p["pid"], signal.SIGKILL)
        if not procs:
            break
        time.sleep(0.2)
    (layout.store / "filler").unlink(missing_ok=True)
    if keep and mounted:
        with contextlib.suppress(OSError, shutil.Error):
            shutil.copytree(layout.store, layout.work / "store-copy", dirs_exist_ok=True)
    if mounted:
        out = subprocess.run(["umount", str(layout.store)], capture_output=True, check=False)
        if out.returncode != 0:
            subprocess.run(["umount", "-l", str(layout.store)], capture_output=True, check=False)
    if not keep:
        shutil.rmtree(layout.work, ignore_errors=True)


def report(result: dict[str, Any]) -> str:
    f, w, wall = result["faults"], result["workload"], result["wall_s"]
    lines = [
        f"chaos: seed {result['seed']}, {w['nodes']} nodes x {w['dates']} dates = "
        f"{w['instances']} instances",
        f"faults injected: {f['total']}  ("
        + ", ".join(f"{k} {n}" for k, n in f["by_kind"].items())
        + ")",
    ]
    if f["ops"]:
        lines.append(
            "  operations while no controller ran: "
            + ", ".join(f"{k} {n}" for k, n in f["ops"].items())
        )
    for kind, why in f["skipped"].items():
        lines.append(f"  skipped: {kind}: {why}")
    lines.append(
        f"attempts: {w['attempts']} ("
        + ", ".join(f"{k} {n}" for k, n in sorted(w["attempts_by_state"].items()))
        + f"); commands started {w['commands_started']}; refills {w['refills']}; "
        f"controllers started {w['controllers_started']}"
    )
    lines.append(
        f"wall time: chaos {wall['chaos']} s, final {wall['final']} s, total {wall['total']} s"
    )
    lines.append("invariants:")
    for name, v in result["invariants"].items():
        lines.append(f"  {'ok  ' if v['ok'] else 'FAIL'} {name}: {v['count']}")
        lines.extend(f"         {e}" for e in v["evidence"])
    for finding in result["findings"]:
        lines.append(f"  note: {finding}")
    lines.append("OK" if result["ok"] else "VIOLATED")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
