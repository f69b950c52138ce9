"""Durations on the command line (`--timeout 30m`, `--since 1h30m`): the schema's format."""

from __future__ import annotations

from backfill_ctl.errors import UsageError


def seconds_of(flag: str, text: str | None) -> float | None:
    """`90s`, `30m`, `1h30m`, `2d` -> seconds; None stays None; else a UsageError naming
    `flag`."""
    if text is None:
        return None
    from backfill_ctl.spec.build import parse_duration  # heavy: only when given

    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}", hint="like 90s, 30m, 2h or 1h30m") from None
