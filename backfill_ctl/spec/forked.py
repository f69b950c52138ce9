"""Work shared with a fork of this process: `shared_map` of a function over items, the
last items done by a child meanwhile, on the machine's second CPU.

The child is a copy of this process (nothing to import or to pickle but its results),
made before much is built (while specs load, a few MB), so copy-on-write costs little.
It sends its results pickled through a pipe, once done, then ends with os._exit: no
cleanup, no buffered output of ours written twice. What the child could not do (it
failed, was killed, sent something unreadable, or is still at it well after this
process did its own share) is done here after all: the results are the same either
way, only later. A process with threads (a controller's endpoints) does not fork: a
lock another thread held at the fork would stay held in the child.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from typing import TYPE_CHECKING, NoReturn, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

T = TypeVar("T")
R = TypeVar("R")


def shared_map(
    func: Callable[[T], R], items: Sequence[T], weights: Sequence[int], *, least: int
) -> list[R]:
    """[func(item) for item in items], the last items (about half of the `weights`) done
    by a fork when the weights add up to `least` or more and the machine has a second
    CPU for it; `func` must do no more than compute (a child's side effects are lost)."""
    cut = _cut(weights, least)
    if cut >= len(items):
        return [func(item) for item in items]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (its results are checked in the parent)
        os.close(read)
        _child(func, items[cut:], write)
    os.close(write)
    try:
        began = time.monotonic()
        mine = [func(item) for item in items[:cut]]
        # The child's share is about as long as ours: one that takes far longer is stuck.
        sent = _read_all(read, time.monotonic() + max(PATIENCE, 2 * (time.monotonic() - began)))
    except BaseException:  # (an interrupt): the child is stopped, not left behind
        _stop(pid)
        raise
    finally:
        os.close(read)
    theirs: list[R] | None = None
    if sent is None:
        _stop(pid)
    else:
        theirs = _results(pid, sent, len(items) - cut)
    return mine + (theirs if theirs is not None else [func(item) for item in items[cut:]])


def _child(func: Callable[[T], R], items: Sequence[T], write: int) -> NoReturn:
    """The fork's work: the results of its items, pickled to `write`; then the end."""
    import pickle  # (when used, not at every command's start: 2.5 ms)

    code = 1
    try:
        data = pickle.dumps([func(item) for item in items], pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write, "wb") as out:
            out.write(data)
        code = 0
    finally:
        os._exit(code)


PATIENCE = 5.0  # seconds the child may take beyond twice this process's share


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything written to the pipe `fd` until its end; None if that takes past
    `deadline` (time.monotonic())."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _cut(weights: Sequence[int], least: int) -> int:
    """Where this process's share ends: after the items that make half of the weight,
    or after all of them (too little work, no second CPU, no fork)."""
    total = sum(weights)
    if total < least or not hasattr(os, "fork") or threading.active_count() > 1:
        return len(weights)
    if len(os.sched_getaffinity(0)) < 2:
        return len(weights)
    done = 0
    for index, weight in enumerate(weights):
        if done >= total / 2:
            return index
        done += weight
    return len(weights)


def _results(pid: int, data: bytes, count: int) -> list[R] | None:
    """The child's results, once it ended; None if it failed or they are not whole."""
    import pickle

    _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    try:
        results = pickle.loads(data)  # (our own fork's, through our own pipe)
    except Exception:  # (cut short: done here instead)
        return None
    return results if isinstance(results, list) and len(results) == count else None
