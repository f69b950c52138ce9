"""The HTTP endpoints: /healthz, /readyz, /metrics, and the dashboard (read-only).

The standard library's threading HTTP server: a handful of small read-only endpoints
need no framework, and the controller's image and start stay small (prometheus-client
is the only addition, and only where this is used). It binds 127.0.0.1 unless told
otherwise (`--serve 0.0.0.0:8080` in a pod, `[::1]:8800` on IPv6), in a daemon thread
beside the loop; each request opens the store on its own (a SQLite connection belongs
to its thread).

Beside a controller, the dashboard takes its turns (`Turns`): one page or API answer at
a time, and at most a quarter of the wall, so that browsers left open on a big backfill
slow its loop by a little, not many times (a render holds the interpreter the loop
needs). The probes are answered at once.

Every request gets an answer, and nothing of it goes to stderr but a bug's one line:
a Host the server does not answer for is a 403 (hosts.py: DNS rebinding), a query it
does not understand a 400, what is not there a 404, a store that cannot be read a 503
with the reason (as /readyz and /metrics say it), a bug a 500; the dashboard's API
(/api/...) says them in JSON (`{"error": ...}`), its pages in HTML.
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import os
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING

from backfill_ctl.errors import UsageError
from backfill_ctl.serve.address import family, parse_address, url
from backfill_ctl.serve.health import Health
from backfill_ctl.serve.hosts import AllowedHosts, allowed_names
from backfill_ctl.state import StateError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from backfill_ctl.runtime.controller import Controller, Tick
    from backfill_ctl.serve.metrics import Metrics
    from backfill_ctl.state import StateStore

__all__ = ["PROBES", "Health", "Server", "parse_address"]

# Answered whatever the Host (hosts.py): what probes and scrapers ask, which shows no
# log, environment or parameter.
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
TEXT = "text/plain; charset=utf-8"


# Beside a controller: the share of the wall the dashboard's answers may take.
SHARE = 0.25


class Turns:
    """One answer at a time; with a `share`, after an answer that took t s the next
    begins t * (1 / share - 1) s after it ended (the others wait their turn meanwhile,
    in no busy loop: a lock and a sleep)."""

    def __init__(
        self,
        share: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rest = 0.0 if share is None else 1 / share - 1
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._free_at = 0.0

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self._lock:
            wait = self._free_at - self._clock()
            if wait > 0:
                self._sleep(wait)
            began = self._clock()
            try:
                yield
            finally:
                ended = self._clock()
                self._free_at = ended + (ended - began) * self._rest


class Server:
    """Serves the endpoints until stop(); `url` is where (the real port when 0 was given).
    `allow_hosts`: names answered beyond those of where it listens (hosts.py); `option`:
    the flag the address came with, named in errors; `share`: of the wall, what the
    dashboard's answers may take (`Turns`; SHARE beside a controller)."""

    def __init__(
        self,
        address: tuple[str, int],
        open_store: Callable[[], StateStore],
        *,
        controller: Controller | None = None,
        health: Health | None = None,
        allow_hosts: Iterable[str] = (),
        option: str = "--serve",
        share: float | None = None,
    ) -> None:
        from backfill_ctl.serve.metrics import Metrics

        self.open_store = open_store
        self.health = health
        self.turns = Turns(share)
        self.metrics: Metrics = Metrics(open_store, controller)
        names = allowed_names(allow_hosts)  # (refused before anything is bound)
        handler = type("Handler", (_Handler,), {"server_app": self})
        http_server = type("HTTPServer", (_HTTPServer,), {"address_family": family(address[0])})
        try:
            self.httpd = http_server(address, handler)
        except OSError as exc:
            where = url(*address).removeprefix("http://")
            free = exc.errno in (errno.EADDRINUSE, errno.EACCES)
            raise UsageError(
                f"cannot serve on {where}: {exc.strerror or exc}",
                hint=f"choose a free port with {option} HOST:PORT"
                if free
                else f"give an address of this machine with {option} HOST:PORT, or "
                f"{option} :PORT for every interface",
            ) from None
        host, port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        self.hosts = AllowedHosts.listening_on(address[0], names, bound=host)
        self.url = url(host, port)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="backfillctl-serve", daemon=True
        )
        self._thread.start()

    def observe(self, tick: Tick) -> None:
        self.metrics.observe(tick)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # -- the endpoints ---------------------------------------------------------------

    def answer(self, target: str, host: list[str]) -> tuple[int, bytes, str]:
        """(status, body, content type) of a GET of `target` with these Host headers."""
        path = target.split("?", 1)[0]
        if path in PROBES:
            return self.probe(path)
        if len(host) > 1:
            return 400, b"more than one Host header\n", TEXT
        refused = self.hosts.refused(host[0] if host else None)
        if refused is not None:
            return 403, self.hosts.refusal(refused).encode(), TEXT
        return self.dashboard(target)

    def probe(self, path: str) -> tuple[int, bytes, str]:
        if path == "/metrics":
            from backfill_ctl.serve.metrics import CONTENT_TYPE

            try:
                return 200, self.metrics.render(), CONTENT_TYPE
            except Exception as exc:  # a store that cannot be read: say so, do not die
                return 503, f"the state store cannot be read: {exc}\n".encode(), TEXT
        code, text = self.healthz() if path == "/healthz" else self.readyz()
        return code, (text + "\n").encode(), TEXT

    def dashboard(self, target: str) -> tuple[int, bytes, str]:
        """The pages (text/html), the grid's cells (JSON) and its script; 404 else; 503
        when the store cannot be read, 500 for a bug (one line on stderr)."""
        from backfill_ctl.serve.answers import failure
        from backfill_ctl.serve.views import route

        free = target.startswith("/static/")  # (the pages' scripts: nothing to render)
        try:
            with contextlib.nullcontext() if free else self.turns.turn():
                store = self.open_store()
                try:
                    return route(store, target)
                finally:
                    store.close()
        except StateError as exc:  # (its message shows no password: the stores see to it)
            why = f"the state store cannot be read: {exc.message}"
            return failure(503, why, target, hint=exc.hint)
        except Exception as exc:
            _said(exc, f"serving {target.split('?', 1)[0][:200]}")
            return failure(500, "internal error: a bug in backfillctl (its stderr says)", target)

    def healthz(self) -> tuple[int, str]:
        if self.health is None:
            return 200, "ok"
        alive, why = self.health.live()
        return (200 if alive else 503), why

    def readyz(self) -> tuple[int, str]:
        if self.health is not None:
            ready, why = self.health.ready()
            return (200 if ready else 503), why
        try:
            self.open_store().close()
        except Exception as exc:  # any store error: not ready, and say why
            return 503, f"the state store cannot be read: {exc}"
        return 200, "ok"


def _said(exc: BaseException, doing: str) -> None:
    """A bug, in one line on stderr (the controller's log); its traceback with
    BACKFILLCTL_DEBUG=1, as the CLI does."""
    sys.stderr.write(f"internal error {doing}: {type(exc).__name__}: {exc}\n")
    if os.environ.get("BACKFILLCTL_DEBUG"):
        traceback.print_exception(exc)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """What a request raised past `Server.answer` (which answers every error): a
        client that went away is nobody's error; anything else is a bug, one line."""
        exc = sys.exception()
        if exc is not None and not isinstance(exc, ConnectionError | TimeoutError):
            _said(exc, "answering a request")


class _Handler(http.server.BaseHTTPRequestHandler):
    server_app: Server
    server_version = "backfillctl"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        """Nothing: the controller's stderr is for what it does, not for each scrape."""

    def do_HEAD(self) -> None:
        self.do_GET(body=False)

    def do_GET(self, body: bool = True) -> None:
        code, data, content_type = self.server_app.answer(
            self.path, self.headers.get_all("Host") or []
        )
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        if body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)
