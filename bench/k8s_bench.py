"""Kubernetes backend benchmark (issue 5): 1,000 Jobs created and tracked by the
controller against the loopback API server of the tests, counting its requests.

    python bench/k8s_bench.py [--runs 3] [--jobs 1000] [--no-commands]

Workload (generated here): 100 independent nodes over 10 business dates, each date its
own group, one resource group of concurrency 1,000, image `busybox`, command `true`:
1,000 instances, all ready at once. The controller (`Controller` + the SQLite store)
drives the kubernetes backend through the real `kubernetes` client against
`tests/backends/k8s_api.py`, which runs every pod's command as a local process (or, with
--no-commands, ends it at once). The figure is the wall time from the first tick until
every instance succeeded (target < 30 s), and the requests the server received, by
kind: tracking is one list and a watch, not a GET per Job per tick.

Medians of --runs runs. Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backfill_ctl.backends.kubernetes import KubernetesBackend  # noqa: E402
from backfill_ctl.runtime.controller import Controller  # noqa: E402
from backfill_ctl.spec.loader import load_files  # noqa: E402
from backfill_ctl.spec.model import Kubernetes  # noqa: E402
from backfill_ctl.spec.source import SourceFile  # noqa: E402
from backfill_ctl.state import StateStore, open_store  # noqa: E402
from backfill_ctl.usecases import reconcile  # noqa: E402
from backfill_ctl.usecases.plan import make_plan  # noqa: E402
from tests.backends.k8s_api import FakeKubeAPI  # noqa: E402

NOW = datetime(2024, 1, 1, tzinfo=UTC)
API = "apiVersion: backfillctl.dev/v1alpha1"
NODES = 100


def spec_text(jobs: int) -> str:
    dates = jobs // NODES
    docs = [
        f"{API}\nkind: Workspace\nmetadata: {{name: ws}}\nspec: {{timezone: UTC}}",
        f"{API}\nkind: ResourceGroup\nmetadata: {{name: rg}}\nspec: {{concurrency: {jobs}}}",
    ]
    for n in range(NODES):
        docs.append(
            f"{API}\nkind: Node\nmetadata: {{name: n{n:03d}, workspace: ws}}\n"
            "spec: {schedule: '0 1 * * *', resourceGroup: rg, "
            "run: {command: ['true'], image: busybox}}"
        )
    roots = ", ".join(f"n{n:03d}" for n in range(NODES))
    docs.append(
        f"{API}\nkind: Backfill\nmetadata: {{name: jobs}}\nspec:\n"
        f"  select: {{method: manual, roots: [{roots}]}}\n"
        f"  dates: [{{from: 2023-01-01, to: 2023-{1 + (dates - 1) // 28:02d}-"
        f"{1 + (dates - 1) % 28:02d}}}]\n  groups: {dates}\n"
    )
    return "\n---\n".join(docs) + "\n"


def applied(directory: Path, jobs: int) -> StateStore:
    specs = load_files([SourceFile("bench.yaml", spec_text(jobs))])
    plan, diagnostics = make_plan(specs, NOW, None)
    assert not [d for d in diagnostics if d.is_error], diagnostics
    assert len(plan.backfills[0].instances) == jobs, len(plan.backfills[0].instances)
    store = open_store(directory / "state.db")
    at = time.time()
    changes = reconcile.diff(
        reconcile.desired(specs, plan, str(directory), None, at), store, prune=False
    )
    reconcile.apply(store, changes, specs, at=at, actor="bench", origin="apply")
    return store


def one_run(jobs: int, commands: bool) -> tuple[float, Counter[str]]:
    with tempfile.TemporaryDirectory() as tmp, FakeKubeAPI(run_commands=commands) as server:
        store = applied(Path(tmp), jobs)
        backend = KubernetesBackend(
            Kubernetes(namespace="bench", ttl_after_finished=3600),
            runs=Path(tmp) / "runs",
            store_id=store.store_id,
            configuration=server.configuration(),
        )
        c = Controller(store, backend)
        assert c.acquire(wait=False)
        c.load()
        gate = c.scheduler.gates["jobs"]
        t = time.perf_counter()
        c.run(interval=0.05, until=lambda tick: gate.record.finished_at is not None)
        took = time.perf_counter() - t
        c.release()
        backend.close()
        assert gate.record.outcome == "succeeded", gate.counts
        assert len(server.jobs("bench")) == jobs
        kinds = Counter(
            f"{r.method} {r.resource}{' (watch)' if r.watch else ''}"
            + (
                " by name"
                if r.method == "GET"
                and r.path.count("/") > 6
                and not r.watch
                and r.resource == "jobs"
                else ""
            )
            for r in server.requests
        )
        return took, kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--no-commands", action="store_true")
    args = parser.parse_args()
    times: list[float] = []
    kinds: Counter[str] = Counter()
    for n in range(args.runs):
        took, kinds = one_run(args.jobs, not args.no_commands)
        times.append(took)
        print(f"run {n + 1}: {took:.2f}s, {sum(kinds.values())} requests")
    median = statistics.median(times)
    what = "ended at once" if args.no_commands else "each running `true` as a process"
    print(f"\n{args.jobs} Jobs ({what}); median of {args.runs} runs:")
    print(f"  created and tracked to the end        {median:8.2f} s (< 30 s)")
    print(f"  requests of the last run               {sum(kinds.values()):8d}")
    for kind, count in sorted(kinds.items()):
        print(f"    {kind:36s} {count:6d} = {count / args.jobs:.2f} per Job")
    return 1 if median >= 30 else 0


if __name__ == "__main__":
    sys.exit(main())
