"""`make_private`: every directory from the runs directory down to an attempt's is made
0700, or refused (a symlink, not a directory, another user's), the runs directory
itself included."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backfill_ctl.backends import BackendError
from backfill_ctl.backends.local.pidfile import make_private


def test_every_directory_from_the_runs_directory_down_is_made_private(tmp_path: Path) -> None:
    top = tmp_path / "state" / "runs"
    top.mkdir(parents=True, mode=0o755)
    make_private(top / "st0re" / "bf", top)
    for d in (top, top / "st0re", top / "st0re" / "bf"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) != 0o700  # above: left alone


@pytest.mark.parametrize(
    ("plant", "why"),
    [
        ("symlink", "is a symlink, not a directory: refusing to use it; remove it"),
        ("file", "is not a directory: refusing to use it; remove it"),
        ("foreign", "belongs to uid 65534, not to this user: refusing to use it; move it away"),
    ],
)
def test_the_runs_directory_itself_is_refused(tmp_path: Path, plant: str, why: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    top = tmp_path / "runs"
    if plant == "symlink":
        top.symlink_to(elsewhere)
    elif plant == "file":
        top.write_text("")
    else:
        top.mkdir()
        os.chown(top, 65534, 65534)
    with pytest.raises(BackendError) as caught:
        make_private(top / "st0re" / "bf", top)
    assert str(caught.value) == (f"{top} {why} (backfillctl makes it again, private to this user)")
    assert list(elsewhere.iterdir()) == []
    assert plant == "file" or list(top.iterdir()) == []
