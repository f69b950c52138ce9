"""The local backend: one process group per attempt on this machine.

Each attempt runs under a tiny /bin/sh wrapper in a new session (its own process group),
with its output in one log file per attempt:

    <runs>/<backfill>/<instance>.<attempt>.log     stdout and stderr
    <runs>/<backfill>/<instance>.<attempt>.pid     the wrapper's pid (= the group id)
    <runs>/<backfill>/<instance>.<attempt>.status  the exit code, written when it ends

The pid and status files are written by the wrapper itself (the status atomically, by
rename), so they survive the controller: after a restart, an attempt with a status file
has finished (its code is recorded), one whose process group is alive is adopted, and
one with neither died unrecorded. An attempt the controller began but never recorded
as started is settled by `recover`, which races the wrapper for the pid file (created
exclusively): either the command had started and is adopted, or it never runs.
Cancelling signals the whole group
(TERM, then KILL after a grace period), so children of the command go too. An argv
command runs without a shell; a string command runs with `/bin/sh -c`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from backfill_ctl.backends import (
    AttemptSpec,
    BackendError,
    Handle,
    Key,
    Outcome,
    resolved_command,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

GRACE = 5.0  # seconds between TERM and KILL when an attempt is cancelled
# The pid file is created exclusively (noclobber: O_EXCL) by whichever comes first: the
# wrapper, which then runs the command, or `recover`, which so declares that the attempt
# never started; a wrapper that comes later exits without running anything.
_NOT_RUN = 125
_WRAPPER = (
    f'set -C; {{ echo $$ > "$0.pid"; }} 2>/dev/null || exit {_NOT_RUN}; set +C\n'
    '"$@"\n'
    "rc=$?\n"
    'echo $rc > "$0.status.tmp" && mv "$0.status.tmp" "$0.status"\n'
    "exit $rc\n"
)


class LocalBackend:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._cancels: dict[int, tuple[str, float, bool]] = {}  # pid -> (reason, deadline, killed)

    def _base(self, backfill: str, key: Key) -> Path:
        return self.root / backfill / f"{key[0]}.{key[1]}"

    def start(self, spec: AttemptSpec) -> tuple[Handle, str | None]:
        base = self._base(spec.backfill, spec.key)
        base.parent.mkdir(parents=True, exist_ok=True)
        run = spec.run
        argv, own_env = resolved_command(run, spec.timezone)
        env = {**os.environ, **own_env}
        log = base.with_suffix(base.suffix + ".log")
        if run.cwd and not Path(run.cwd).is_dir():
            raise BackendError(f"working directory {run.cwd} does not exist")
        # A new attempt: files by its name are left from a store that was thrown away.
        for stale in ("pid", "status"):
            base.with_suffix(f"{base.suffix}.{stale}").unlink(missing_ok=True)
        try:
            with log.open("wb") as out:
                child = subprocess.Popen(
                    ["/bin/sh", "-c", _WRAPPER, str(base), *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=run.cwd,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            raise BackendError(f"cannot start: {exc.strerror}") from exc
        self._children[child.pid] = child
        return {"pid": child.pid, "base": str(base)}, str(log)

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        ended: dict[Key, Outcome] = {}
        now = time.monotonic()
        for key, handle in running.items():
            pid = int(handle["pid"])
            code = self._exit_code(pid, Path(handle["base"]))
            cancel = self._cancels.get(pid)
            if code is None:
                if cancel and not cancel[2] and now >= cancel[1]:
                    _signal(pid, signal.SIGKILL)  # it ignored TERM
                    self._cancels[pid] = (cancel[0], cancel[1], True)
                continue
            self._children.pop(pid, None)
            self._cancels.pop(pid, None)
            if cancel is not None:  # killed on purpose: the reason is what matters
                ended[key] = Outcome("failed", code if isinstance(code, int) else None, cancel[0])
            elif not isinstance(code, int):
                ended[key] = Outcome("lost", None, "the process ended without an exit status")
            elif code == 0:
                ended[key] = Outcome("succeeded", 0)
            else:
                ended[key] = Outcome("failed", code, f"exit code {code}")
        return ended

    def _exit_code(self, pid: int, base: Path) -> int | str | None:
        """The exit code, "lost", or None while it runs."""
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return None
            return 128 - code if code < 0 else code  # killed by a signal: 128 + signal
        status = base.with_suffix(base.suffix + ".status")
        if status.exists():
            try:
                return int(status.read_text().strip() or 1)
            except ValueError:
                return 1
        return None if _alive(pid, base) else "lost"

    def wait(self, timeout: float) -> None:
        """Sleep until one of our children exits (pidfds), or `timeout` passes."""
        fds = []
        try:
            for pid in list(self._children):
                with contextlib.suppress(ProcessLookupError, OSError):
                    fds.append(os.pidfd_open(pid))
            if fds:
                select.select(fds, [], [], timeout)
            else:
                time.sleep(timeout)
        finally:
            for fd in fds:
                os.close(fd)

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        pid = int(handle["pid"])
        if pid not in self._cancels:
            self._cancels[pid] = (reason, time.monotonic() + GRACE, False)
            _signal(pid, signal.SIGTERM)

    def recover(self, spec: AttemptSpec) -> Handle | None:
        base = self._base(spec.backfill, spec.key)
        pid_file = base.with_suffix(base.suffix + ".pid")
        base.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            pass  # the wrapper was first: the attempt started
        else:
            return None  # claimed before any wrapper: it never runs
        deadline = time.monotonic() + 2.0  # the wrapper writes its pid right after
        while True:
            with contextlib.suppress(OSError, ValueError):
                return {"pid": int(pid_file.read_text()), "base": str(base)}
            if time.monotonic() > deadline:
                return {"pid": 0, "base": str(base)}  # its status file decides
            time.sleep(0.01)

    def check(self) -> list[tuple[str, bool, str]]:
        shell = Path("/bin/sh")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            writable = os.access(self.root, os.W_OK)
        except OSError as exc:
            return [("run /bin/sh", shell.exists(), str(shell)), ("write logs", False, str(exc))]
        return [
            ("run /bin/sh", shell.exists(), str(shell)),
            ("write logs", writable, str(self.root)),
        ]

    def close(self) -> None:
        pass

    def log_text(self, handle: Handle, log: str | None) -> str:
        if not log:
            return ""
        try:
            return Path(log).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def _signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, sig)


def _alive(pid: int, base: Path) -> bool:
    """Is `pid` still our wrapper? (A pid can be reused after a reboot or a long time.)"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if not cmdline:  # a kernel thread, or a process in the middle of its exec
            ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            return ppid not in ("0", "2")  # kthreadd's children are the kernel's
    except (OSError, IndexError):
        return True  # no /proc: trust the signal check
    return str(base).encode() in cmdline
