"""The command-line interface: one module per verb, wired together in `main`.

Importing it (the console script's first step) lets the cyclic garbage collector start
late: see `collect_late`.
"""

from __future__ import annotations

import gc as _gc  # (the package's `gc` is the verb's module, cli/gc.py)

FIRST_COLLECTION = 100_000  # allocations before the cyclic collector's first pass


def collect_late(first: int = FIRST_COLLECTION) -> None:
    """The CLI's start allocates some 50,000 objects that live as long as the process
    (Typer, the verb's modules, a small repo's specs and plan): the collector has
    nothing to free among them, yet with Python's thresholds (a pass every 700
    allocations) it scans them about 60 times before `apply --wait` starts its first
    instance, ~7 ms of ~150 (issue 15). Its first pass waits for `first` allocations
    instead; that pass puts the thresholds back as they were, for whatever the process
    does next (a long-running controller collects as any Python program does).
    Reference counting frees everything else as usual. Nothing changes when automatic
    collection is off (threshold 0) or starts this late already."""
    before = _gc.get_threshold()
    if before[0] == 0 or before[0] >= first:
        return
    done = False

    def restore(phase: str, info: dict[str, int]) -> None:
        nonlocal done  # (then a no-op: removing a callback while gc runs them skips one)
        if phase == "stop" and not done:
            done = True
            if _gc.get_threshold()[0] == first:  # not changed since
                _gc.set_threshold(*before)

    _gc.set_threshold(first, *before[1:])
    _gc.callbacks.append(restore)


collect_late()
