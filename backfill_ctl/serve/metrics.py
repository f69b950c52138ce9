"""/metrics in the Prometheus text format (prometheus-client), read at each scrape.

From the store (whoever serves it): instances by backfill and state, the lease holder
and its epoch. From the controller, when the server runs inside one: attempts started
and ended by outcome (counters of this process), the duration of its ticks (a
histogram), the queue depth per resource group (ready instances left waiting for a
slot at the last tick) and its running attempts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from backfill_ctl.runtime.controller import Controller, Tick
    from backfill_ctl.state import StateStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TICK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StoreCollector(Collector):
    def __init__(self, open_store: Callable[[], StateStore]) -> None:
        self.open_store = open_store

    def collect(self) -> Iterator[Metric]:
        began = time.monotonic()
        store = self.open_store()
        try:
            counts = store.counts()
            lease = store.lease()
        finally:
            store.close()
        instances = GaugeMetricFamily(
            "backfillctl_instances",
            "Instances by backfill and state.",
            labels=["backfill", "state"],
        )
        for (backfill, state), n in sorted(counts.items()):
            instances.add_metric([backfill, state], n)
        yield instances
        holder = GaugeMetricFamily(
            "backfillctl_lease_holder",
            "1 for the controller that holds the store's lease (none while no lease is held).",
            labels=["holder", "host", "pid"],
        )
        epoch = GaugeMetricFamily("backfillctl_lease_epoch", "The lease's fencing epoch.")
        if lease is not None and lease.expires_at > time.time():
            holder.add_metric([lease.holder, lease.host, str(lease.pid)], 1)
            epoch.add_metric([], lease.epoch)
        yield holder
        yield epoch
        yield GaugeMetricFamily(
            "backfillctl_store_read_seconds",
            "How long this scrape took to read the store.",
            value=time.monotonic() - began,
        )


class ControllerCollector(Collector):
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        c = self.controller
        started = CounterMetricFamily(
            "backfillctl_attempts_started", "Attempts this controller started."
        )
        started.add_metric([], c.started_total)
        yield started
        ended = CounterMetricFamily(
            "backfillctl_attempts_ended",
            "Attempts whose end this controller recorded, by outcome.",
            labels=["outcome"],
        )
        for outcome, n in sorted(c.ended_by.items()):
            ended.add_metric([outcome], n)
        yield ended
        queue = GaugeMetricFamily(
            "backfillctl_queue_depth",
            "Ready instances left waiting for a slot of their resource group, last tick.",
            labels=["resource_group"],
        )
        for group, n in sorted(dict(c.queued).items()):
            queue.add_metric([group], n)
        yield queue
        yield GaugeMetricFamily(
            "backfillctl_running_attempts",
            "Attempts this controller follows.",
            value=len(c.running),
        )


class Metrics:
    """A registry of our own (not the process-wide default): the store's figures, and
    the controller's when there is one."""

    def __init__(
        self, open_store: Callable[[], StateStore], controller: Controller | None = None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(open_store))
        self.ticks: Histogram | None = None
        if controller is not None:
            self.registry.register(ControllerCollector(controller))
            self.ticks = Histogram(
                "backfillctl_tick_seconds",
                "How long the controller's ticks take.",
                buckets=TICK_BUCKETS,
                registry=self.registry,
            )

    def observe(self, tick: Tick) -> None:
        if self.ticks is not None:
            self.ticks.observe(tick.seconds)

    def render(self) -> bytes:
        data: Any = generate_latest(self.registry)
        return bytes(data)
