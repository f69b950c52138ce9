"""Reading a log file by bytes (usecases/log_reading.py): the last lines found from its
end across blocks agree with the whole text's, and whole characters only."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from backfill_ctl.usecases import log_reading
from backfill_ctl.usecases.log_lines import tail
from backfill_ctl.usecases.log_reading import Follower, start_of_last_lines, whole


@pytest.mark.parametrize("seed", range(40))
def test_the_last_lines_are_those_of_the_whole_text(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_reading, "BLOCK", 7)  # lines across many blocks
    rng = random.Random(seed)
    text = "".join(
        rng.choice(["a", "bc", "\n", "\n\n", "\r", "日"]) for _ in range(rng.randint(0, 60))
    )
    log = tmp_path / "x.log"
    log.write_text(text)
    end = log.stat().st_size
    for lines in (None, -1, 0, 1, 2, 3, 10, 100):
        start = start_of_last_lines(str(log), lines, end)
        assert log.read_bytes()[start:].decode() == tail(text, lines), (text, lines)


@pytest.mark.parametrize(
    ("data", "kept"),
    [
        (b"", 0),
        (b"ab", 2),
        ("日".encode(), 3),
        ("日".encode()[:2], 0),
        (b"a" + "日".encode()[:1], 1),
        (b"a" + "😀".encode()[:3], 1),
        (b"a\xff", 2),  # invalid: whole as it is
        (b"a\x80\x80\x80\x80", 5),
    ],
)
def test_whole_leaves_out_a_character_s_first_bytes(data: bytes, kept: int) -> None:
    assert whole(data) == kept


def test_a_follower_reads_what_was_appended_and_a_cut_log_again(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_bytes("one 日".encode()[:-1])
    follower = Follower(str(log))
    assert follower.read() == "one "
    log.write_bytes("one 日\ntwo\n".encode())
    assert (follower.read(), follower.restarted) == ("日\ntwo\n", False)
    log.write_bytes(b"cut\n\xe6")
    assert (follower.read(), follower.restarted) == ("cut\n", True)
    assert follower.flush() == "\ufffd"
