"""Options shared by several verbs, and turning their text into values."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

PathsArg = Annotated[
    list[str],
    typer.Argument(
        metavar="PATHS",
        help="Spec files or directories (searched recursively); - reads stdin.",
        show_default=False,
    ),
]
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Act as this user (default: $BACKFILLCTL_ACTOR, else "
        "$GITHUB_ACTOR); decides permissions.",
        show_default=False,
    ),
]
NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Plan as if it were this time, ISO 8601 (default: "
        "$BACKFILLCTL_NOW, else the clock). Without an offset it is UTC.",
        show_default=False,
    ),
]

AllowHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        metavar="NAME",
        help="Answer the dashboard's pages for this host name too (a proxy's; repeat it "
        "for several). Otherwise only localhost, loopback addresses, the host it listens "
        "on and, when that is not loopback, any IP address are: a page with another name "
        "gets 403 (DNS rebinding). /healthz, /readyz and /metrics answer any.",
        show_default=False,
    ),
]


def resolve_actor(flag: str | None) -> str | None:
    for value in (flag, os.environ.get("BACKFILLCTL_ACTOR"), os.environ.get("GITHUB_ACTOR")):
        if value:
            return value
    return None


def check_bizdate(bizdate: str | None) -> None:
    """A `--bizdate` filter is a date (else UsageError): a typo must not read as "no match"."""
    if bizdate is None:
        return
    try:
        date.fromisoformat(bizdate)
    except ValueError as exc:
        raise UsageError(
            f"--bizdate {bizdate!r} is not a date", hint="write it like 2024-03-01"
        ) from exc


def resolve_now(flag: str | None) -> datetime:
    """`--now`, else $BACKFILLCTL_NOW, else the clock: the only clock read of planning."""
    text = flag or os.environ.get("BACKFILLCTL_NOW")
    if not text:
        return datetime.now(UTC)
    source = "--now" if flag else "BACKFILLCTL_NOW"
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(
            f"{source}: {text!r} is not an ISO 8601 time",
            hint="write it like 2024-03-20T09:00:00+08:00 or 2024-03-20",
        ) from exc
    from backfill_ctl.spec.model import BUSINESS_DATES, is_business_date

    if not is_business_date(value.date()):  # (before a time zone's arithmetic can overflow)
        raise UsageError(
            f"{source}: {text!r} is out of range",
            hint=f"use a time from {BUSINESS_DATES}, the range of business dates",
        )
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_clock(start: datetime) -> Callable[[], float]:
    """The clock execution uses: `start` now, advancing in real time. With `--now T` the
    instances the plan says wait for their time do wait, until the clock reaches it."""
    import time

    offset = start.timestamp() - time.time()
    if abs(offset) < 1.0:  # the real clock (no --now)
        return time.time
    return lambda: time.time() + offset
