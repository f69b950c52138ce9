"""The controller's end of the local backend's shim (`shim.py`, which says the protocol):
the shim's process, the requests to start commands, and the replies it sends back."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from backfill_ctl.backends.environment import command_environment
from backfill_ctl.backends.local.pidfile import inherited_fds

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

SHIM = str(Path(__file__).resolve().with_name("shim.py"))
PYTHON = sys.executable or "python3"  # what runs it
REPLY_TIMEOUT = 30.0  # a shim that says nothing for this long to a start is given up


class ShimGone(Exception):
    """The shim ended, or stopped answering, before it said what became of a request;
    `delivered`: whether it may have had the request (else nothing of it was done)."""

    def __init__(self, message: str, *, delivered: bool) -> None:
        super().__init__(message)
        self.delivered = delivered


class Shim:
    """One shim process, started now, in a session of its own. Neither it nor the
    commands it starts get backfillctl's own variables, nor those named in `hidden`
    (backends/environment.py): a command could read the shim's (/proc/PID/environ)."""

    def __init__(self, hidden: Collection[str] = ()) -> None:
        self.hidden = hidden
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
            (os.POSIX_SPAWN_DUP2, requests_r, 0),
            (os.POSIX_SPAWN_DUP2, replies_w, 1),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited_fds()]
        try:
            self.pid = os.posix_spawn(
                PYTHON,
                [PYTHON, "-I", "-S", SHIM],
                command_environment(os.environ, hidden),
                file_actions=actions,
                setsid=True,
            )
        except OSError:
            os.close(requests_w)
            os.close(replies_r)
            raise
        finally:
            os.close(requests_r)
            os.close(replies_w)
        self._requests = requests_w
        self._replies = replies_r
        os.set_blocking(replies_r, False)
        self.ended: dict[int, int] = {}  # pid -> exit code, heard and not yet taken
        self.answers: dict[str, tuple[str, int]] = {}  # key -> (kind, pid or errno)
        self.asked: dict[int, str] = {}  # request -> key, not answered yet
        self._partial = b""
        self._seq = 0
        self._environment: dict[bytes, bytes] | None = None  # this process's, last sent
        self.gone = False

    def fileno(self) -> int:
        return self._replies

    def ask(
        self,
        key: str,
        base: str,
        log: str,
        cwd: str,
        umask: int,
        argv: Sequence[str],
        env: Mapping[str, str],
    ) -> None:
        """Ask for a command to be started, in this process's environment (but for
        backfillctl's own variables) and `env`, not waiting for the answer, which `read`
        takes into `answers` under `key`: ("S", pid), ("L", errno: the log could not be
        opened), ("N", errno: the pid file was not created: nothing runs) or ("X", code:
        nothing could run). ShimGone if the request could not be written."""
        if self.gone:
            raise ShimGone("the shim is gone", delivered=False)
        self._seq += 1
        head = [str(self._seq), base, log, cwd, f"{umask:o}", str(len(argv)), *argv]
        own = [f"{k}={v}" for k, v in env.items()]
        # The command's environment: this process's (bytes, as they are) without
        # backfillctl's own variables, then `env`, whose variables the shim takes over
        # those (the later of a name wins). This process's is sent only when it changed
        # since the last request ("-": the same).
        payload = b"\0".join([*map(os.fsencode, head), *self._inherited(), *map(os.fsencode, own)])
        message = memoryview(len(payload).to_bytes(4, "big") + payload)
        written = 0
        try:
            while written < len(message):
                written += os.write(self._requests, message[written:])
        except OSError as exc:  # (a broken pipe: it is gone)
            self.close()
            raise ShimGone(str(exc), delivered=written > 0) from exc
        self.asked[self._seq] = key

    def _inherited(self) -> list[bytes]:
        """This process's environment as the request's items after argv: their number
        and the `KEY=VALUE` items but backfillctl's own, or "-" when the shim has it
        already (read without a Python call per variable: the mapping behind
        os.environb, CPython's; filtered only when it changed)."""
        current = getattr(os.environb, "_data", None)
        if not isinstance(current, dict):
            current = dict(os.environb)
        if current == self._environment:
            return [b"-"]
        self._environment = dict(current)
        sent = command_environment(current, self.hidden)
        return [b"%d" % len(sent), *(b"%s=%s" % item for item in sent.items())]

    def settle(self) -> None:
        """Wait until every request is answered, or the shim is gone, or REPLY_TIMEOUT
        passed (it is then given up: closed, and `gone`); what is still `asked` then was
        not answered."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        self.read()
        while self.asked and not self.gone:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                break
            select.select([self._replies], [], [], left)
            self.read()

    def read(self) -> None:
        """Take what the shim said (without waiting)."""
        chunks = [self._partial]
        while not self.gone:
            try:
                chunk = os.read(self._replies, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self.close()
                break
            chunks.append(chunk)
        *lines, self._partial = b"".join(chunks).split(b"\n")
        for line in lines:
            kind, first, second = line.split()
            if kind == b"E":
                self.ended[int(first)] = int(second)
            else:
                self.answers[self.asked.pop(int(first))] = (kind.decode(), int(second))

    def close(self, *, idle: bool = False) -> None:
        """No more requests, no more replies: the shim ends once its commands have (their
        codes written to their pid files). `idle` (none of its commands runs): it ends
        now, and is waited for (up to a second), so that its CPU and its commands' are
        counted in this process's children's."""
        if not self.gone:
            self.gone = True
            os.close(self._requests)
            os.close(self._replies)
        if idle:
            with contextlib.suppress(OSError):
                fd = os.pidfd_open(self.pid)
                select.select([fd], [], [], 1.0)
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)
