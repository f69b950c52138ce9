"""A real PostgreSQL server for the tests: Debian's binaries, on 127.0.0.1 and a Unix
socket, in a directory of its own, and its teardown.

    with PostgresServer() as server:     # initdb, then postgres
        url = server.database()          # a new, empty database: postgresql://...
        server.restart()                 # the same data, the same port
    # stopped (fast shutdown) and its directory removed

python -m tests.tools.postgres install   apt-get install Debian's postgresql when missing
python -m tests.tools.postgres up DIR    a server in DIR (its parents must be traversable
                                         by the user postgres); prints its URL, stops on
                                         Ctrl-C

PostgreSQL refuses to run as root: the server runs as the user `postgres` (Debian's
package makes it), in a directory given to that user. It is started in its own session
and dies with the thread that started it (PR_SET_PDEATHSIG: SIGINT, PostgreSQL's fast
shutdown), so a killed test run leaves no server behind. fsync is off: a crashed test
server's data does not matter (`durable=True`, for the benchmarks: PostgreSQL's default
durability, every commit on disk).

Clients connect over TCP as the role `backfillctl` with a password (scram-sha-256), as
a team's store would; the superuser `postgres` is reached over the socket only (trust),
for the tools: new databases (CREATE DATABASE ... TEMPLATE template0, owned by the role).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.tools import serve_until_stopped

USER = "postgres"  # the OS user the server runs as
ROLE = "backfillctl"  # the role clients log in as, with PASSWORD
PASSWORD = "pw-" + secrets.token_hex(6)


def bin_dir() -> Path | None:
    """/usr/lib/postgresql/<newest version>/bin, or None when not installed."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def install() -> Path:
    """apt-get install Debian's postgresql when it is missing (CI runs as root)."""
    found = bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("the PostgreSQL tests need Debian's postgresql (apt-get, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
        check=True,
        env=env,
        capture_output=True,
    )
    found = bin_dir()
    if found is None:
        raise SystemExit("apt-get installed postgresql, but no /usr/lib/postgresql/*/bin")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(*, die_with_parent: bool) -> None:
    """In the child: become `postgres` (first: a change of credentials clears the parent
    death signal), then die with the parent thread."""
    user = pwd.getpwnam(USER)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    if die_with_parent:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


class PostgresServer:
    """One server in `root` (a new temporary directory when None), removed by stop()
    when it made that directory."""

    def __init__(self, root: Path | None = None, *, durable: bool = False) -> None:
        binaries = bin_dir()
        if binaries is None:
            raise RuntimeError("no PostgreSQL: python -m tests.tools.postgres install")
        self.bin = binaries
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="backfillctl-pg.")) if root is None else root
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.process: subprocess.Popen[bytes] | None = None
        self.durable = durable
        self._names = itertools.count()

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(remove=True)

    # -- the server -----------------------------------------------------------------

    def _run(self, *argv: str, die_with_parent: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            preexec_fn=lambda: _as_server_user(die_with_parent=die_with_parent),
        )

    def _initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        user = pwd.getpwnam(USER)
        for path in (self.root, self.sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
            path.chmod(0o700)
        done = self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")

    def start(self) -> None:
        """initdb (the first time), then the server; returns when it takes connections."""
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._initdb()
        self._start()
        verb = "CREATE" if fresh else "ALTER"  # this process's password
        self.sql(f"{verb} ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'")

    def _start(self) -> None:
        fast = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        settings = [f"-c{s}" for s in ([] if self.durable else fast)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                    "-c", f"listen_addresses={self.host}",
                    "-c", f"unix_socket_directories={self.sockets}",
                    *settings, "-c", "max_connections=200",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: _as_server_user(die_with_parent=True),
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", str(self.sockets), "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{tail}")
            time.sleep(0.05)

    def stop(self, *, remove: bool = False) -> None:
        """Fast shutdown (what `pg_ctl stop -m fast` sends: SIGINT); with `remove`, the
        directory goes too (when this server made it)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if remove and self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same data and port (clients lose their sessions)."""
        self.stop()
        self._start()

    # -- what tests use -------------------------------------------------------------

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement as the superuser (over the socket); psql's unaligned output."""
        done = self._run(
            str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.sockets), "-p", str(self.port), "-U", USER, "-d", database,
            "-c", statement,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql: {statement}: {done.stderr.strip()}")
        return done.stdout.strip()

    def url(self, database: str, *, password: str = PASSWORD) -> str:
        return f"postgresql://{ROLE}:{password}@{self.host}:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database owned by the clients' role; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.sql(f"CREATE DATABASE {name} OWNER {ROLE} TEMPLATE template0")
        return self.url(name)


def main(argv: list[str]) -> None:
    if argv[:1] == ["install"]:
        print(install())
    elif argv[:1] == ["up"] and len(argv) == 2:
        server = PostgresServer(Path(argv[1]).resolve())
        server.start()
        print(server.database(), flush=True)
        serve_until_stopped(server.stop)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
