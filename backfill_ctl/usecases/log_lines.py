"""What `backfillctl logs --tail/--since/--timestamps` keep of an attempt's log, and how.

A log's lines carry no times of their own (the local backend's wrapper writes the
command's output as it is). What is known is when the log was written: not before the
attempt started, and by its last change (the file's modification time, else the
attempt's end, else now). So:

- `--since D` keeps the whole log when it was last written within D, and nothing when
  it was not; a log written both before and after the cut is kept whole (a line is
  never hidden that may be in the window). Lines `-f` sees arrive are new: all kept.
- `--timestamps` prefixes each line with the time it is known to have been written by
  (RFC 3339, UTC): the log's last change for what was there, the time of the read
  that saw it for lines `-f` sees arrive (to within its poll).
- `--tail N` keeps the last N lines of what was there (`-f` then prints all that comes).

Pure: the times are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from backfill_ctl.usecases.progress import utc


@dataclass(frozen=True, slots=True)
class Written:
    """When a log was written: from the attempt's start to its last change."""

    start: float
    last: float


def within(written: Written, cutoff: float | None) -> bool:
    """Was the log (maybe) written at or after `cutoff`? (None: no cut.)"""
    return cutoff is None or max(written.start, written.last) >= cutoff


def tail(text: str, lines: int | None) -> str:
    """The last `lines` lines of `text` (a last line without its newline counts; lines
    end at "\n" only, as kubectl counts them: a progress bar's "\r" ends none);
    None or a negative number: all of it."""
    if lines is None or lines < 0:
        return text
    if lines == 0:
        return ""
    kept = text.split("\n")
    if kept[-1] == "":  # the newline that ends the last line
        kept = kept[:-1]
        return "".join(line + "\n" for line in kept[-lines:])
    return "\n".join(kept[-lines:])


class Stamper:
    """Prefixes the lines of text printed piece by piece with a time: a piece may end
    in the middle of a line, which the next one goes on with, unprefixed."""

    def __init__(self) -> None:
        self.at_line_start = True

    def __call__(self, text: str, at: float) -> str:
        if not text:
            return text
        prefix = f"{utc(at)} "
        out = []
        for line in text.splitlines(keepends=True):
            out.append((prefix if self.at_line_start else "") + line)
            self.at_line_start = line.endswith(("\n", "\r"))
        return "".join(out)
