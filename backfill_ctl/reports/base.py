"""What a reporter writes to, and a command's reporters by name.

A reporter turns what a use case returned into output, for one `-o NAME`. It writes
through a `Sink` (the CLI's terminal; a list in tests): data on one side, notes for
people on the other, diagnostics on either. Reporters know nothing of Typer or of
colour: the sink decides how a diagnostic looks on its stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from backfill_ctl.errors import Diagnostic

R = TypeVar("R")


class Sink(Protocol):
    """Where a reporter writes."""

    def write(self, text: str) -> None:
        """Data, as is (stdout)."""

    def note(self, text: str) -> None:
        """A line for people, beside the data (stderr)."""

    def diagnostics(self, diagnostics: Iterable[Diagnostic], *, code: bool, data: bool) -> None:
        """One diagnostic per line, as data (stdout) or beside it (stderr)."""

    def step_summary(self, text: Callable[[], str]) -> None:
        """Append `text()` to the CI run's summary page, when the run has one (only then
        is the text made)."""


class Registry(Generic[R]):
    """A command's reporters by output format name, in the order `--help` lists them."""

    def __init__(self, command: str, reporters: Mapping[str, R]) -> None:
        self.command = command
        self._reporters = dict(reporters)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._reporters)

    def __contains__(self, name: object) -> bool:
        return name in self._reporters

    def __iter__(self) -> Iterator[str]:
        return iter(self._reporters)

    def __getitem__(self, name: str) -> R:
        try:
            return self._reporters[name]
        except KeyError:
            raise UsageError(
                f"{self.command} --output: unknown format {name!r}",
                hint=f"use one of {', '.join(self._reporters)}",
            ) from None
