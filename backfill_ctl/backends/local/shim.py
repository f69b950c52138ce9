# shape: over 400 lines: a script run alone (`python -I -S`, no package on its path), one file
"""The local backend's shim: one small process per controller that starts the attempts'
commands and records their exit codes, so that a code outlives the controller.

Run as `python -I -S shim.py` (the standard library only: it starts in ~15 ms), with
requests on stdin and replies on stdout; its own stderr is /dev/null. It is in a session
of its own (Ctrl-C at the controller's terminal does not reach it) and ends once its
stdin is closed (the controller ended, however) and no command of its is left.

Per request (`<4-byte big-endian length><fields joined by NUL>`: seq, base, log, cwd,
umask in octal, the number of argv items, the argv items, the number of the controller's
environment items and those `KEY=VALUE` items (or "-": the same as the last request's;
backfillctl's own variables left out by the controller: backends/environment.py), then
the attempt's own `KEY=VALUE` items, which win; all bytes, never decoded):

1. the log is opened (created private, truncated, never through a link): if it cannot
   be, the reply is `L <seq> <errno>` and nothing else happens;
2. the pid file `<base>.pid` is created exclusively, as a claim (`recover` races for it
   too: whichever comes first decides whether the attempt runs): if it exists or cannot
   be created, the reply is `N <seq> <errno>` and nothing runs;
3. the command is started (posix_spawn) as the leader of a new session (its pid is its
   process group's id), with stdin /dev/null and stdout and stderr the log, the signals
   Python ignores back to their defaults, the command's umask, its working directory
   and the request's environment (whose PATH finds the program); its pid is written to
   the pid file and the reply is `S <seq> <pid>`. (The pid is written just after the
   command started: `recover` waits for it, and finds a command whose shim died in
   between by its marker.) A working directory that cannot be entered (126), a program
   that is not found (127) or cannot be executed (126) runs nothing: the reason goes to
   the log, the code to the pid file (after a pid of 0), and the reply is `X <seq>
   <code>`.

Creating a file is the slow part of a start: ext4 allocates an inode in its journal, 5
µs on a quiet disk and 150-250 µs while another process keeps the journal busy, where
renaming or linking one takes ~20 µs. So when no request and no end waits (a command
runs, the controller is busy), the shim creates `SPARES` empty private files, one at a
time, in a `.spares` directory in the latest request's (`<shim pid>.<n>`; kept for the
last `DIRECTORIES` directories started in; removed once the controller is gone, or by
the next shim's first start there if this one was killed: it lists `.spares`, never the
runs directory, which may hold millions). A later start there renames one to the log
(where none is: else the open above) and links one to the pid file, which fails if that
exists, as the exclusive creation does: the claim is the same. Whatever a spare cannot do
(a file system without links, a full disk) the start does by creating.

When a command ends, its exit code (128 + the signal if a signal ended it, as a shell
says it) is written after the pid into the file the shim created, if it still is that
file (its device and inode; never through a link: nothing planted in its place later is
written to), and only then is the process reaped, so
that whoever finds the pid gone finds its code written; the reply is `E <pid> <code>`.
Replies are written without blocking (a buffer holds what the pipe does not take), so
the shim never stops reading requests or reaping because the controller is busy.
"""

from __future__ import annotations

import errno
import os
import select

# This process starts in ~12 ms: not typing's TYPE_CHECKING (its import would be half
# again as much), and the C module of `signal` (which wraps its constants in enums, a
# third again), same functions and numbers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
else:
    import _signal as signal

NO_CWD = 126  # the working directory could not be entered: the command did not run
_LOG = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
_CLAIM = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def _program(name: bytes, env: dict[bytes, bytes]) -> bytes:
    """The file `name` runs (a name without a slash: found on the environment's PATH)."""
    if b"/" in name:
        return name
    for directory in os.get_exec_path(env):  # type: ignore[arg-type]  # (bytes work)
        candidate = os.path.join(os.fsencode(directory), name)  # noqa: PTH118
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):  # noqa: PTH112
            return candidate
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))


_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT)  # ignored here, not for commands


class _CannotRun(Exception):
    """Nothing was started: the exit code a shell would give, and what it would say."""

    def __init__(self, code: int, what: bytes, exc: OSError) -> None:
        super().__init__(b"cannot %s: %s\n" % (what, os.fsencode(exc.strerror or "")))
        self.code = code


def _spawn(log_fd: int, cwd: bytes, umask: int, argv: list[bytes], env: dict[bytes, bytes]) -> int:
    """The command's pid, started in a session of its own (posix_spawn: a vfork-like
    clone, several times cheaper than a fork of this process), in `cwd` and with `umask`
    (this process's own, lent for the start). _CannotRun: nothing was started."""
    home = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    previous = os.umask(umask)
    try:
        if cwd:
            try:
                os.chdir(cwd)
            except OSError as exc:
                raise _CannotRun(NO_CWD, b"enter %s" % cwd, exc) from exc
        try:
            program = _program(argv[0], env)
            return os.posix_spawn(
                program,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
                ],
                setsid=True,
                setsigdef=_SIGNALS,
            )
        except OSError as exc:
            code = 127 if exc.errno == errno.ENOENT else 126
            raise _CannotRun(code, b"run %s" % argv[0], exc) from exc
    finally:
        os.umask(previous)
        os.fchdir(home)
        os.close(home)


SPARES = 4  # files made ahead in a directory: a log and a pid file for two starts
DIRECTORIES = 8  # directories that keep their spares, those of the latest starts


class Spares:
    """Empty private files made ahead in the directories of the latest starts (see
    above): several backfills that start in turn each find theirs."""

    def __init__(self) -> None:
        self.pools: dict[bytes, list[tuple[bytes, int]]] = {}  # by directory, latest last
        self.due = b""  # the directory `make_one` fills: the latest start's, till full
        self._checked = False  # `due` was found private (once per start there)
        self._made = 0
        self._swept: set[bytes] = set()

    def _take(self, path: bytes) -> tuple[list[tuple[bytes, int]], tuple[bytes, int] | None]:
        """The pool of `path`'s directory (now the latest started in), and a spare of it."""
        directory = path.rpartition(b"/")[0] + b"/.spares"
        pool = self.pools.pop(directory, None)
        if pool is None:
            pool = []
            if directory not in self._swept:
                self._swept.add(directory)
                _sweep(directory)
        self.pools[directory] = pool
        self.due, self._checked = directory, False
        if len(self.pools) > DIRECTORIES:
            self._drop(next(iter(self.pools)))
        return pool, pool.pop() if pool else None

    def log(self, path: bytes) -> int:
        """`path` opened for writing, empty: a spare renamed to it if nothing is there,
        else created or truncated (never through a link: one there fails the open)."""
        pool, spare = self._take(path)
        if spare is not None and os.path.lexists(path):
            pool.append(spare)  # (still spare)
        elif spare is not None:
            try:
                os.rename(spare[0], path)  # noqa: PTH104 (bytes, no Path: see the top)
            except OSError:
                _remove(*spare)
            else:
                return spare[1]
        return os.open(path, _LOG, 0o600)

    def claim(self, path: bytes) -> int:
        """`path` made, open for writing; FileExistsError (or another OSError) if it
        exists or cannot be made: a spare linked to it, else created exclusively."""
        pool, spare = self._take(path)
        if spare is not None:
            try:
                os.link(spare[0], path, follow_symlinks=False)
            except FileExistsError:
                pool.append(spare)  # (still spare)
                raise
            except OSError:
                _remove(*spare)
            else:
                _quietly(os.unlink, spare[0])
                return spare[1]
        return os.open(path, _CLAIM, 0o600)

    def make_one(self) -> None:
        """One spare in the latest start's directory (`due`); none is due any more once
        it has SPARES, or cannot have them (not a private directory, a full disk: the
        starts there create their files, and the next one there tries again)."""
        pool = self.pools.get(self.due) if self.due else None
        if (
            pool is None
            or len(pool) >= SPARES
            or not (self._checked or _private_directory(self.due))
        ):
            self.due = b""
            return
        self._checked = True
        self._made += 1
        path = b"%s/%d.%d" % (self.due, os.getpid(), self._made)
        try:
            pool.append((path, os.open(path, _CLAIM, 0o600)))
        except OSError:
            self.due = b""

    def discard(self) -> None:
        while self.pools:
            self._drop(next(iter(self.pools)))

    def _drop(self, directory: bytes) -> None:
        for name, fd in self.pools.pop(directory):
            _remove(name, fd)
        _quietly(os.rmdir, directory)  # (if no other shim's spares are in it)


def _private_directory(path: bytes) -> bool:
    """`path` is a directory of this user's (made now if missing, 0700), not a link."""
    _quietly(os.mkdir, path, 0o700)  # (there already, or cannot be: lstat says which)
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return info.st_mode & 0o170000 == 0o040000 and info.st_uid == os.getuid()


def _sweep(directory: bytes) -> None:
    """Remove the spares a shim that is gone (killed) left in `directory` (a `.spares`):
    the first start beside it looks, once."""
    try:
        names = os.listdir(directory)  # noqa: PTH208 (bytes, no Path: see the top)
    except OSError:
        return
    for name in names:
        pid, _, n = name.partition(b".")
        if pid.isdigit() and n.isdigit() and not _alive(int(pid)):
            _quietly(os.unlink, b"%s/%s" % (directory, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (another user's: alive)
        pass
    return True


def _remove(path: bytes, fd: int) -> None:
    os.close(fd)
    _quietly(os.unlink, path)


def _start(
    record: bytes, running: dict[int, _File], inherited: dict[bytes, bytes], spares: Spares
) -> bytes:
    """Carry out one request; `inherited`: the controller's environment, as the last
    request that carried it said (updated when this one does)."""
    fields = record.split(b"\0")
    seq, base, log, cwd, umask, count = fields[:6]
    at = 6 + int(count)
    argv = fields[6:at]
    if fields[at] != b"-":
        inherited.clear()
        end = at + 1 + int(fields[at])
        inherited.update(_pairs(fields[at + 1 : end]))
        at = end - 1
    env = {**inherited, **_pairs(fields[at + 1 :])}
    try:
        log_fd = spares.log(log)
    except OSError as exc:
        return b"L %s %d\n" % (seq, exc.errno or 0)
    try:
        try:
            pid_fd = spares.claim(base + b".pid")
        except OSError as exc:
            return b"N %s %d\n" % (seq, exc.errno or 0)
        try:
            pid = _spawn(log_fd, cwd, int(umask, 8), argv, env)
        except _CannotRun as exc:  # the attempt failed, as a shell would say it
            _quietly(os.write, log_fd, exc.args[0])
            _write(pid_fd, 0, exc.code)
            return b"X %s %d\n" % (seq, exc.code)
        # (a full disk: the controller has the pid; `recover` finds the command by its marker)
        _quietly(os.write, pid_fd, b"%d\n" % pid)
        info = os.fstat(pid_fd)
        os.close(pid_fd)
        running[pid] = (base + b".pid", info.st_dev, info.st_ino)
        return b"S %s %d\n" % (seq, pid)
    finally:
        os.close(log_fd)


_File = tuple[bytes, int, int]  # a pid file: its path, device and inode


def _pairs(items: list[bytes]) -> dict[bytes, bytes]:
    return dict(item.split(b"=", 1) for item in items if b"=" in item)


def _write_code(file: _File, pid: int, code: int) -> None:
    """The code into the pid file this process created, if it is still that file (not
    one planted in its place since, nor through a link); closed again at once, so that
    the commands get this process's limit of descriptors, not one raised for them."""
    try:
        fd = os.open(file[0], os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return  # (gone: the controller hears the code)
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) == file[1:]:
        _write(fd, pid, code)
    else:
        os.close(fd)


def _write(fd: int, pid: int, code: int) -> None:
    """The pid and the code, from the file's start (whether the pid got there or not)."""
    _quietly(os.pwrite, fd, b"%d\n%d\n" % (pid, code), 0)  # (a full disk: the controller
    os.close(fd)  # hears the code)


def _quietly(call: Callable[..., object], *args: object) -> None:
    """`call(*args)`; an OSError (a full disk) is not this process's to report. (No
    contextlib here: its import would be a third of this process's start.)"""
    try:  # noqa: SIM105 (see above)
        call(*args)
    except OSError:
        pass


def _reap(running: dict[int, _File]) -> bytes:
    """Record and reap every child that ended: its code first, then the process."""
    out = b""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return out
        if info is None or info.si_pid == 0:
            return out
        pid, status = info.si_pid, info.si_status
        code = status if info.si_code == os.CLD_EXITED else 128 + status
        file = running.pop(pid, None)
        if file is not None:
            _write_code(file, pid, code)
        os.waitpid(pid, 0)
        out += b"E %d %d\n" % (pid, code)


def _setup() -> int:
    """This process's settings; the descriptor that becomes readable when a child ends."""
    os.umask(0o077)
    for fd in (0, 1):
        os.set_inheritable(fd, False)
    os.set_blocking(1, False)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return wake_r


def _drain(fd: int) -> None:
    """Read what a non-blocking `fd` holds, to the end."""
    try:
        while os.read(fd, 4096):
            continue
    except BlockingIOError:
        return


def _requests(
    pending: bytearray, running: dict[int, _File], inherited: dict[bytes, bytes], spares: Spares
) -> bytes:
    """Carry out every whole request in `pending` (taken out of it); the replies."""
    out = b""
    while len(pending) >= 4:
        size = int.from_bytes(pending[:4], "big")
        if len(pending) < 4 + size:
            break
        out += _start(bytes(pending[4 : 4 + size]), running, inherited, spares)
        del pending[: 4 + size]
    return out


def main() -> None:
    wake = _setup()
    running: dict[int, _File] = {}  # pid -> its pid file
    inherited: dict[bytes, bytes] = {}  # the controller's environment, as last sent
    pending = bytearray()  # requests read, not yet whole
    out = bytearray()  # replies the pipe did not take yet
    spares = Spares()
    reading = True
    while reading or running:
        # A spare is made only when no request and no end waits (a select that does not
        # wait says so): one at a time, so that a start or an end coming meanwhile waits
        # for one file at most.
        spare = reading and bool(spares.due)
        readable, _, _ = select.select(
            [wake, 0] if reading else [wake], [1] if out else [], [], 0.0 if spare else None
        )
        if wake in readable:
            _drain(wake)
        if 0 in readable:
            chunk = os.read(0, 1 << 16)
            reading = bool(chunk)
            pending += chunk
            out += _requests(pending, running, inherited, spares)
        out += _reap(running)
        if out:
            try:
                del out[: os.write(1, out)]
            except BlockingIOError:
                pass
            except OSError:  # the controller is gone: the codes are on disk
                out.clear()
        if not reading:
            spares.discard()
        elif spare and not readable:
            spares.make_one()


if __name__ == "__main__":
    main()
