"""What the controller's loop last said of itself: for /healthz and /readyz.

The loop beats at every tick and while it waits (for the lease, or for a store that
cannot be written). Alive: it beat within `stale` seconds. Ready: alive, and it drives
the store (holds the lease, and its last tick could write): a standby is alive and not
ready, so a Service sends nothing to it and a probe does not restart it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

READY_STATES = frozenset({"active"})


@dataclass
class Health:
    """The controller loop's last beat, for the dashboard's health check."""

    stale: float = 60.0  # seconds without a beat before the loop counts as stuck
    state: str = "starting"
    detail: str = "the controller has not ticked yet"
    at: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def beat(self, state: str, detail: str) -> None:
        with self._lock:
            self.state, self.detail, self.at = state, detail, time.monotonic()

    def live(self) -> tuple[bool, str]:
        with self._lock:
            age = time.monotonic() - self.at
            if age > self.stale:
                return False, f"no tick for {age:.0f} s (stuck in {self.state}: {self.detail})"
            return True, f"{self.state}: last tick {age:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        alive, why = self.live()
        if not alive:
            return False, why
        with self._lock:
            if self.state not in READY_STATES:
                return False, f"{self.state}: {self.detail}"
            return True, why
