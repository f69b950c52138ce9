"""Execution benchmark (issues 4, 14): the controller against a no-op workload, and Luigi.

    python bench/run_bench.py [--runs 3] [--skip-luigi] [--skip-idle]
                              [--state postgresql://... | --postgres]

Every figure is measured on SQLite and, with --state or --postgres, on PostgreSQL in the
same run, side by side (bench/stores.py: fresh databases on the reader's server, or on
one the bench starts itself).

With the idle tick it also measures the same tick with the controller's --serve
endpoints beside it (the tick histogram, a /metrics scrape after each tick) and the
scrape itself (issue 13: /metrics under 100 ms on 1,000,000 instances).

Workload (generated here): a 20-node DAG (4 layers of 5 nodes, each node reading one or
two nodes of the layer above) over 500 business dates in 10 groups, every command
`true`, one resource group of concurrency 8: 10,000 instances.

- `fake`: the controller with the in-memory backend: everything but process spawning
  (store transactions, scheduling, events). Its time per instance is the scheduler
  overhead (target < 1 ms on both stores).
- `local`: the controller with the local backend, real processes: instances per second
  end to end (target >= 200/s on SQLite, >= 300/s on PostgreSQL).
- `luigi`: the same DAG and date order in Luigi 3 (local scheduler, 8 workers, each task
  runs `true` in a subprocess, completion by output file), in the first run only (it
  takes about 11 minutes); compared with the local backend's time on SQLite of that same
  run. Needs `pip install luigi`.
- `idle tick`: a store holding 1,000,000 instances (1,000 nodes x 1,000 future dates in
  10 groups, so 10,000 instances are at the front waiting for their time): the time of
  one controller tick when nothing changes (target < 50 ms, issue 15), and before it the
  controller's load of that store in a fresh child process that does nothing else: its
  time (target <= 3 s) and the child's peak RSS, imports included (target <= 300 MB).

Each figure is the median of --runs runs, each run in this process after a fresh store
(in each run SQLite first, then PostgreSQL).
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stores  # noqa: E402  (bench/stores.py, beside this script)

from backfill_ctl.backends.fake import FakeBackend  # noqa: E402
from backfill_ctl.backends.local import LocalBackend  # noqa: E402
from backfill_ctl.core.records import BackfillRecord, InstanceRecord, Run  # noqa: E402
from backfill_ctl.runtime.controller import Controller  # noqa: E402
from backfill_ctl.spec.loader import load_files  # noqa: E402
from backfill_ctl.spec.source import SourceFile  # noqa: E402
from backfill_ctl.state import open_store  # noqa: E402
from backfill_ctl.usecases import reconcile  # noqa: E402
from backfill_ctl.usecases.plan import make_plan  # noqa: E402

NODES, LAYER, DATES, GROUPS, CONCURRENCY = 20, 5, 500, 10, 8
NOW = datetime(2024, 1, 1, tzinfo=UTC)
API = "apiVersion: backfillctl.dev/v1alpha1"


def upstream(n: int) -> list[int]:
    """Each node below the first layer reads one or two nodes of the layer above."""
    if n < LAYER:
        return []
    above = (n // LAYER - 1) * LAYER
    return sorted({above + n % LAYER, above + (n + 1) % LAYER})


def spec_text() -> str:
    docs = [
        f"{API}\nkind: Workspace\nmetadata: {{name: ws}}\nspec: {{timezone: UTC}}",
        f"{API}\nkind: ResourceGroup\nmetadata: {{name: rg}}\nspec: {{concurrency: {CONCURRENCY}}}",
    ]
    for n in range(NODES):
        ups = ", ".join(f"n{u:02d}" for u in upstream(n))
        docs.append(
            f"{API}\nkind: Node\nmetadata: {{name: n{n:02d}, workspace: ws}}\n"
            f"spec: {{schedule: '0 1 * * *', upstream: [{ups}], resourceGroup: rg, "
            "run: {command: ['true']}}"
        )
    roots = ", ".join(f"n{n:02d}" for n in range(LAYER))
    docs.append(
        f"{API}\nkind: Backfill\nmetadata: {{name: noop}}\nspec:\n"
        f"  select: {{method: descendants, roots: [{roots}]}}\n"
        f"  dates: [{{from: 2022-01-01, to: 2023-05-15}}]\n  groups: {GROUPS}\n"
    )
    return "\n---\n".join(docs) + "\n"


def applied_store(target: str, cwd: Path) -> tuple[Any, float]:
    """A fresh store at `target` with the workload applied; and how long the apply took.
    (`cwd` is unused since commands run in the spec root of the backend that starts them;
    it stays for bench/ab.py, which drives older checkouts' run_bench too.)"""
    specs = load_files([SourceFile("bench.yaml", spec_text())])
    plan, diagnostics = make_plan(specs, NOW, None)
    assert not [d for d in diagnostics if d.is_error], diagnostics
    assert len(plan.backfills[0].instances) == NODES * DATES
    store = open_store(target)
    t = time.perf_counter()
    at = time.time()
    changes = reconcile.diff(reconcile.desired(specs, plan, None, at), store, prune=False)
    reconcile.apply(store, changes, specs, at=at, actor="bench", origin="apply")
    return store, time.perf_counter() - t


def drive(store: object, backend: object) -> float:
    """Wall time of the controller loop from the first tick to the last instance."""
    c = Controller(store, backend)  # type: ignore[arg-type]
    assert c.acquire(wait=False)
    c.load()
    gate = c.scheduler.gates["noop"]
    t = time.perf_counter()
    c.run(interval=0.01, until=lambda tick: gate.record.finished_at is not None)
    took = time.perf_counter() - t
    c.release()
    assert gate.record.outcome == "succeeded", gate.counts
    return took


def luigi_run(directory: Path) -> float:
    import luigi

    out = directory / "luigi"
    out.mkdir()
    per_group = DATES // GROUPS

    class Inst(luigi.Task):  # type: ignore[misc]
        node = luigi.IntParameter()
        day = luigi.IntParameter()

        def requires(self) -> list[luigi.Task]:
            reqs = [Inst(node=u, day=self.day) for u in upstream(self.node)]
            if self.day % per_group:  # the previous date of the same group must be done
                reqs.append(DateDone(day=self.day - 1))
            return reqs

        def output(self) -> luigi.LocalTarget:
            return luigi.LocalTarget(str(out / f"{self.node}-{self.day}"))

        def run(self) -> None:
            subprocess.run(["true"], check=True)
            Path(self.output().path).touch()

    class DateDone(luigi.WrapperTask):  # type: ignore[misc]
        day = luigi.IntParameter()

        def requires(self) -> list[luigi.Task]:
            return [Inst(node=n, day=self.day) for n in range(NODES)]

    t = time.perf_counter()
    ok = luigi.build(
        [DateDone(day=d) for d in range(DATES)],
        local_scheduler=True,
        workers=CONCURRENCY,
        log_level="ERROR",
    )
    took = time.perf_counter() - t
    assert ok and len(list(out.iterdir())) == NODES * DATES
    return took


def idle_tick(target: str, runs: int) -> dict[str, float]:
    """Seconds to fill a store at `target` with 1M instances and to load them, the median
    idle tick, the peak tick of the first one, the median idle tick while --serve's
    endpoints run and are scraped, the median /metrics, the median of the dashboard's
    page of that backfill."""
    store = open_store(target)
    t = time.perf_counter()
    million(store)
    filled = time.perf_counter() - t
    fresh = fresh_load(target)
    c = Controller(store, FakeBackend())
    assert c.acquire(wait=False)
    t = time.perf_counter()
    c.load()
    loaded = time.perf_counter() - t
    t = time.perf_counter()
    c.tick()  # the first tick writes the waiting states of the front
    first_tick = time.perf_counter() - t
    ticks = []
    for _ in range(max(runs, 5)):
        t = time.perf_counter()
        c.tick()
        ticks.append(time.perf_counter() - t)
    served, scrapes, page = serving_ticks(c, target, max(runs, 5))
    c.release()
    store.close()
    return {
        "fill": filled,
        "fresh": fresh["load"],
        "cpu": fresh["cpu"],
        "base": fresh["base"],
        "peak": fresh["peak"],
        "load": loaded,
        "first": first_tick,
        "tick": statistics.median(ticks),
        "served": served,
        "scrape": scrapes,
        "page": page,
    }


def fresh_load(target: str) -> dict[str, float]:
    """Controller.load of the store at `target` in a fresh child process doing just that:
    its seconds (wall and CPU: this machine is shared), its RSS before (imports), and its
    peak RSS (MB, /proc's VmHWM)."""
    child = [sys.executable, __file__, "--load-only", target]
    out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


def vm(field: str) -> float:
    """This process's /proc/self/status `field` (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def load_only(target: str) -> None:
    """The child of fresh_load(): load, then print the figures as JSON."""
    store = open_store(target, create=False)
    c = Controller(store, FakeBackend())
    gc.collect()
    base = vm("VmRSS")
    t, cpu = time.perf_counter(), time.process_time()
    c.load()
    took, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(json.dumps({"load": took, "cpu": cpu, "base": base, "peak": vm("VmHWM")}))


def million(store: Any) -> None:
    """1,000 nodes x 1,000 future dates in 10 groups, saved 100,000 at a time."""
    nodes, dates, groups = 1000, 1000, 10
    future = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    per_group = dates // groups
    record = BackfillRecord("million", "sha256:bench", {"spec": {"order": "ascending"}})
    run = Run(("true",))
    batch: list[InstanceRecord] = []
    first = True
    for d in range(dates):
        day = f"2030-{1 + d // 28 % 12:02d}-{1 + d % 28:02d}"
        for n in range(nodes):
            batch.append(
                InstanceRecord(
                    f"m{d:04d}n{n:04d}",
                    "million",
                    f"n{n}",
                    day,
                    "2030-01-02T01:00:00+00:00",
                    future + d * 86400,
                    "UTC",
                    d // per_group,
                    d % per_group,
                    5,
                    (),
                    run,
                    "rg",
                    tries_left=1,
                )
            )
        if len(batch) >= 100_000 or d == dates - 1:
            store.save_apply(
                [record] if first else [],
                batch,
                [],
                [],
                at=time.time(),
                actor="bench",
                origin="bench",
                resource_groups=[("rg", "shared", 8)],
            )
            first, batch = False, []


def serving_ticks(c: Controller, target: str, runs: int) -> tuple[float, float, float]:
    """The controller's idle tick with `--serve`'s endpoints beside it (each tick observed
    by the histogram, a scrape of /metrics after each), the median scrape, and the median
    time to serve the dashboard's page of the 1,000,000-instance backfill."""
    import urllib.request

    from backfill_ctl.serve import Health, Server

    health = Health()
    c.beat = health.beat
    server = Server(
        ("127.0.0.1", 0), lambda: open_store(target, create=False), controller=c, health=health
    )
    ticks, scrapes, pages = [], [], []
    try:
        for _ in range(runs):
            t = time.perf_counter()
            server.observe(c.tick())
            ticks.append(time.perf_counter() - t)
            t = time.perf_counter()
            with urllib.request.urlopen(server.url + "/metrics", timeout=30) as response:
                assert b"backfillctl_instances" in response.read()
            scrapes.append(time.perf_counter() - t)
            t = time.perf_counter()
            with urllib.request.urlopen(server.url + "/backfills/million", timeout=60) as page:
                assert b'data-cell="n0|2030-01"' in page.read()
            pages.append(time.perf_counter() - t)
    finally:
        server.stop()
    return statistics.median(ticks), statistics.median(scrapes), statistics.median(pages)


# By store: the scheduler's overhead below (ms/instance), local instances/s at least.
TARGETS = {stores.SQLITE: (1.0, 200.0), stores.POSTGRES: (1.0, 300.0)}


def measure(kinds: stores.Stores, runs: int, skip_luigi: bool) -> dict[str, list[float]]:
    """Each run: the apply, the fake backend and the local one on each store in turn
    (SQLite first), Luigi after the first; the figures by "kind:what"."""
    figures: dict[str, list[float]] = {}
    for n in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            for kind in kinds.kinds:
                for backend in ("fake", "local"):
                    target = kinds.fresh(kind, d / kind / backend)
                    store, took = applied_store(target, d)
                    if backend == "fake":
                        figures.setdefault(f"{kind}:apply", []).append(took)
                    gc.collect()
                    chosen = FakeBackend() if backend == "fake" else LocalBackend(d / "runs")
                    figures.setdefault(f"{kind}:{backend}", []).append(drive(store, chosen))
                    store.close()
                    kinds.drop(target)
                    shutil.rmtree(d / "runs", ignore_errors=True)
            if not skip_luigi and n == 0:  # once: it takes about 11 minutes
                figures["luigi"] = [luigi_run(d)]
        this_run = {k: v[n] for k, v in figures.items() if len(v) > n}
        print(f"run {n + 1}: " + ", ".join(f"{k}={t:.2f}s" for k, t in this_run.items()))
    return figures


def report(kinds: list[str], figures: dict[str, list[float]], runs: int) -> bool:
    """Print the medians side by side; whether a target was missed."""
    total = NODES * DATES
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(
        f"\n{total} instances ({NODES} nodes x {DATES} dates, {GROUPS} groups, "
        f"concurrency {CONCURRENCY}); medians of {runs} runs:"
    )
    print(f"  {'':40}" + "".join(f"{stores.label(k):>14}" for k in kinds))
    overhead = [med[f"{k}:fake"] / total * 1000 for k in kinds]
    rate = [total / med[f"{k}:local"] for k in kinds]
    limits = [TARGETS[k][0] for k in kinds]
    floors = [TARGETS[k][1] for k in kinds]
    row("apply (diff + one transaction), s", [med[f"{k}:apply"] for k in kinds], ".2f")
    row(
        "fake backend: overhead, ms/instance",
        overhead,
        ".3f",
        "(< " + " / ".join(f"{x:g}" for x in limits) + ")",
    )
    row("local backend: end to end, s", [med[f"{k}:local"] for k in kinds], ".2f")
    row(
        "local backend: instances/s",
        rate,
        ".0f",
        "(>= " + " / ".join(f"{x:g}" for x in floors) + ")",
    )
    if "luigi" in med:
        print(
            f"  luigi 3, local scheduler, 8 workers  {med['luigi']:8.2f} s = "
            f"{total / med['luigi']:.0f} instances/s (run 1 only)"
        )
        ratio = figures["luigi"][0] / figures[f"{kinds[0]}:local"][0]  # the same run
        print(f"  ratio luigi / backfillctl (local, SQLite) {ratio:8.1f}x (run 1)")
    missed = [o >= lim for o, lim in zip(overhead, limits, strict=True)]
    missed += [r < f for r, f in zip(rate, floors, strict=True)]
    return any(missed)


def row(name: str, values: list[float], form: str, target: str = "") -> None:
    cells = "".join(f"{v:>14{form}}" for v in values)
    ratio = f"  x{values[1] / values[0]:.2f}" if len(values) == 2 and values[0] else ""
    print(f"  {name:40}{cells}{ratio}  {target}")


def idle(kinds: stores.Stores, runs: int) -> bool:
    """The idle tick over 1,000,000 instances on each store; whether a target was missed."""
    found: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds.kinds:
            target = kinds.fresh(kind, Path(tmp) / kind)
            found[kind] = idle_tick(target, runs)
            kinds.drop(target)
    print("  1,000,000 instances:")
    for key, name, scale, form in (
        ("fill", "save_apply in 10 batches, s", 1, ".1f"),
        ("fresh", "controller load, fresh process, s (<= 3)", 1, ".2f"),
        ("cpu", "  its CPU time, s", 1, ".2f"),
        ("base", "  its RSS before the load (imports), MB", 1, ".0f"),
        ("peak", "  its peak RSS, MB (<= 300)", 1, ".0f"),
        ("load", "controller load, in this process, s", 1, ".2f"),
        ("first", "first tick, ms", 1000, ".0f"),
        ("tick", "idle tick, ms (< 50)", 1000, ".1f"),
        ("served", "idle tick with --serve, ms", 1000, ".1f"),
        ("scrape", "/metrics, ms (< 100)", 1000, ".0f"),
        ("page", "the backfill's dashboard page, ms (< 1000)", 1000, ".0f"),
    ):
        row(name, [found[k][key] * scale for k in kinds.kinds], form)
    return any(
        f["tick"] >= 0.05
        or f["fresh"] > 3.0
        or f["peak"] > 300
        or f["scrape"] >= 0.1
        or f["page"] >= 1.0
        for f in found.values()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-luigi", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--skip-run", action="store_true", help="the idle tick only")
    parser.add_argument("--load-only", metavar="STORE", help=argparse.SUPPRESS)
    stores.add_arguments(parser)
    args = parser.parse_args()
    if args.load_only:  # the child of fresh_load()
        load_only(args.load_only)
        return 0
    kinds = stores.Stores(args)
    try:
        missed = False
        if not args.skip_run:
            figures = measure(kinds, args.runs, args.skip_luigi)
            missed = report(kinds.kinds, figures, args.runs)
        if not args.skip_idle:
            missed = idle(kinds, args.runs) or missed
    finally:
        kinds.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process             {peak:8.0f} MB")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
