"""Every command's output formats, by command and name (check-jsonschema's
`REPORTER_BY_NAME`): a new format is a reporter and a line here.

`reporter("check", "markdown")` is the reporter `check -o markdown` runs; an unknown
command or name is a `UsageError` that lists the known ones. The CLI offers exactly
these names as the choices of each command's `--output`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import UsageError
from backfill_ctl.reports.formats import CHECK, PLAN, VALIDATE
from backfill_ctl.reports.listing import GET

if TYPE_CHECKING:
    from backfill_ctl.reports.base import Registry

REPORTER_BY_NAME: dict[str, Registry[Any]] = {
    registry.command: registry for registry in (PLAN, CHECK, VALIDATE, GET)
}


def reporter(command: str, name: str) -> Any:
    """The reporter of `command -o name`."""
    registry = REPORTER_BY_NAME.get(command)
    if registry is None:
        raise UsageError(
            f"{command!r} has no output formats",
            hint=f"these commands have: {', '.join(REPORTER_BY_NAME)}",
        )
    return registry[name]
