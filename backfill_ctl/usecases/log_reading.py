"""Reading an attempt's log file by bytes: its last lines without reading all of it, and
what it gained after an offset, cut at a whole UTF-8 character.

A log can be gigabytes (a job that prints every row it loads) until gc cuts it, and
`logs --tail 20` or `-f` must not read it all, nor read it again every half second: the
last lines are found by reading blocks back from its end, and following reads only what
was appended after the offset read so far (a log that got shorter, cut by gc, is read
again from its start).

A writer's buffer can end in the middle of a multi-byte character (any non-ASCII log
line: 日本語 is three bytes a character): a read that stops there must neither show the
half as U+FFFD nor count it as read, or the next read shows the other half as another
U+FFFD. `whole()` says where the last whole character ends; `Follower` keeps the bytes
after it for the next read (an incremental decoder). Invalid bytes (a binary log) are
shown as U+FFFD, as the whole log always was.
"""

from __future__ import annotations

import codecs
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

BLOCK = 64 * 1024  # bytes read at a time
_LONGEST = 4  # bytes of the longest UTF-8 sequence


def size_of(path: str) -> int | None:
    """The size of the regular file at `path`; None when there is none."""
    try:
        info = Path(path).stat()
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def whole(data: bytes) -> int:
    """The length of the longest start of `data` that does not end inside a UTF-8
    sequence: `data[whole(data):]` is a character's first bytes, its last still to come
    (at most 3 bytes; anything else, invalid bytes too, counts as whole)."""
    n = len(data)
    for back in range(1, min(_LONGEST, n) + 1):
        byte = data[n - back]
        if byte < 0x80:  # ASCII ends a sequence
            return n
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4 if byte < 0xF8 else 1
            return n if back >= need else n - back
    return n


def start_of_last_lines(path: str, lines: int | None, end: int) -> int:
    """Where the last `lines` lines of the file's first `end` bytes start (a last line
    without its newline counts; lines end at "\\n" only, as kubectl counts them). None or
    a negative number: 0, all of it. Reads blocks back from `end`, never the whole file
    for a few lines."""
    if lines is None or lines < 0:
        return 0
    if lines == 0:
        return end
    with Path(path).open("rb") as f:
        at = end
        wanted = lines  # newlines still to pass, the one ending the last line aside
        f.seek(max(0, end - 1))
        if end and f.read(1) == b"\n":
            at = end - 1  # the newline that ends the last line starts no line
        while at > 0:
            begin = max(0, at - BLOCK)
            f.seek(begin)
            block = f.read(at - begin)
            cut = len(block)
            while wanted and (cut := block.rfind(b"\n", 0, cut)) >= 0:
                wanted -= 1
                if not wanted:
                    return begin + cut + 1
            at = begin
    return 0


def read_range(path: str, start: int, end: int) -> bytes:
    """The file's bytes from `start` to `end` (fewer when it got shorter)."""
    with Path(path).open("rb") as f:
        f.seek(start)
        return f.read(max(0, end - start))


@dataclass
class Follower:
    """Reads a log file piece by piece: `read()` is the text appended since the last read
    (whole characters only; `flush()` the bytes held back once nothing more comes);
    `offset` is how far the file was read. A file shorter than `offset` was cut (gc): it
    is read again from its start, and `restarted` says so."""

    path: str
    offset: int = 0
    restarted: bool = False
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    def read(self, end: int | None = None) -> str:
        """What the file holds after `offset`, up to `end` (default: its size now)."""
        return "".join(self.pieces(end))

    def pieces(self, end: int | None = None) -> Iterator[str]:
        """`read()` a block at a time: a log printed whole is never held whole."""
        size = size_of(self.path)
        if size is None:
            return
        self.restarted = size < self.offset
        if self.restarted:
            self.offset = 0
            self._decoder.reset()
        end = size if end is None else min(end, size)
        while self.offset < end:
            chunk = read_range(self.path, self.offset, min(end, self.offset + BLOCK * 16))
            if not chunk:
                return
            self.offset += len(chunk)
            yield self._decoder.decode(chunk)

    def flush(self) -> str:
        """The bytes held back as the start of a character whose end never came."""
        return self._decoder.decode(b"", final=True)
