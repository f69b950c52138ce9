"""`backfillctl ui`: the dashboard of a state store, in a browser (read-only)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from backfill_ctl.cli.console import err
from backfill_ctl.cli.options import AllowHostOpt
from backfill_ctl.cli.state import StateOpt, state_file
from backfill_ctl.errors import UsageError
from backfill_ctl.serve.address import parse_address

ListenOpt = Annotated[
    str,
    typer.Option(
        "--listen",
        metavar="ADDR",
        help="Where to serve: PORT (on 127.0.0.1), HOST:PORT, [IPv6]:PORT, or :PORT "
        "(every interface).",
    ),
]


def ui_command(
    listen: ListenOpt = "8800", allow_host: AllowHostOpt = None, state: StateOpt = None
) -> None:
    """Serve a read-only web view of the state store until SIGTERM or Ctrl-C.

    The backfills with their progress; a backfill's grid of nodes x business dates,
    coloured by state and updated while it runs; an instance with why it waits, its
    attempts and its log. Also /healthz, /readyz and /metrics. Binds 127.0.0.1 unless
    told otherwise, and answers pages only for the names it is reached by (--allow-host
    adds one); nothing is loaded from elsewhere.

    \b
    Examples:
      backfillctl ui                         # http://127.0.0.1:8800
      backfillctl ui --listen 9000 --state-file /data/state.db
      backfillctl ui --listen '[::1]:8800'
      backfillctl ui --listen 10.0.0.5:8800 --allow-host backfills.example.com
    """
    from backfill_ctl.serve import Server
    from backfill_ctl.state import open_store

    location = state_file(state)
    if isinstance(location, Path) and not location.exists():
        raise UsageError(
            f"no state store at {location}",
            hint="apply a backfill first (backfillctl apply specs/), or give --state-file",
        )
    first = open_store(location, create=False)  # refuse a broken or newer store at once
    shown = first.path
    first.close()
    address = parse_address(listen, "--listen")
    server = Server(
        address,
        lambda: open_store(location, create=False),
        allow_hosts=allow_host or (),
        option="--listen",
    )
    err(f"serving the dashboard of {shown} on {server.url}/ (Ctrl-C stops it)")
    stopped: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda n, f: stopped.append(n))
    try:
        while not stopped:
            signal.pause()
    finally:
        server.stop()
