"""Where the files a store names are now (`RunFiles`): read beside the store, else where
they were written; removed only inside its runs directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backfill_ctl.backends import BackendError
from backfill_ctl.backends.files import RunFiles, make_private

SID = "5e1f0c0ffee0"


@pytest.mark.parametrize(
    ("stored", "tail"),
    [
        (f"/old/repo/.backfillctl/runs/{SID}/bf/i1.1.log", f"{SID}/bf/i1.1.log"),  # local
        (f"/old/repo/.backfillctl/runs/{SID}/runs/i1.1.pid", f"{SID}/runs/i1.1.pid"),
        ("/old/repo/.backfillctl/runs/bf/i1.1.log", "bf/i1.1.log"),  # kubernetes, older local
        (f"/old/runs/{SID}/bf/i1.1.log", f"{SID}/bf/i1.1.log"),
    ],
)
def test_a_stored_path_is_its_tail_under_the_runs_directory_now(stored: str, tail: str) -> None:
    assert RunFiles(Path("/new/.backfillctl/runs"), SID).here(stored) == Path(
        "/new/.backfillctl/runs", tail
    )


@pytest.mark.parametrize(
    "stored",
    [
        "/etc/passwd",
        "/home/ann/logs/i1.1.log",
        "/old/.backfillctl/runs/other-store/bf/i1.1.log",  # another store's: 4 deep, no id
        "/old/.backfillctl/runs/../x",
        f"/old/.backfillctl/runs/{SID}/../i1.1.log",
    ],
)
def test_a_path_that_is_no_file_of_a_runs_directory_has_no_place_here(stored: str) -> None:
    runs = RunFiles(Path("/new/.backfillctl/runs"), SID)
    assert runs.here(stored) is None
    assert runs.removable(stored) is None
    assert runs.readable(stored) == stored


def test_a_log_is_read_beside_the_store_else_where_it_was_written(tmp_path: Path) -> None:
    old = tmp_path / "old" / "runs" / SID / "bf"
    new = tmp_path / "new" / "runs" / SID / "bf"
    old.mkdir(parents=True)
    (old / "a.1.log").write_text("old")
    runs = RunFiles(tmp_path / "new" / "runs", SID)
    # Not beside the store (a shared store read from another directory): where written.
    assert runs.readable(str(old / "a.1.log")) == str(old / "a.1.log")
    new.mkdir(parents=True)
    (new / "a.1.log").write_text("new")
    assert runs.readable(str(old / "a.1.log")) == str(new / "a.1.log")
    # Neither is there: where it would be beside the store (what a note names).
    assert runs.readable(str(old / "b.1.log")) == str(new / "b.1.log")


def test_only_what_resolves_inside_the_runs_directory_is_removable(tmp_path: Path) -> None:
    top = tmp_path / "repo" / "runs"
    (top / SID / "bf").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (top / SID / "linked").symlink_to(tmp_path / "outside")
    runs = RunFiles(top, SID)
    elsewhere = f"/gone/runs/{SID}"
    assert runs.removable(f"{elsewhere}/bf/a.1.log") == top / SID / "bf" / "a.1.log"
    assert runs.removable(f"{elsewhere}/linked/a.1.log") is None  # a link leads out
    assert runs.refused() is None


def test_a_runs_directory_in_a_link_s_place_or_another_user_s_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real" / SID / "bf").mkdir(parents=True)
    top = tmp_path / "runs"
    top.symlink_to(tmp_path / "real")
    runs = RunFiles(top, SID)
    assert runs.refused() == (
        f"{top} is a symlink, not a directory: refusing to use it; remove it "
        "(backfillctl makes it again, private to this user)"
    )
    assert runs.removable(f"{top}/{SID}/bf/a.1.log") is None
    top.unlink()
    top.mkdir()
    os.chown(top, 65534, 65534)
    assert (runs.refused() or "").startswith(f"{top} belongs to uid 65534, not to this user")
    assert runs.removable(f"{top}/{SID}/bf/a.1.log") is None


def test_a_runs_directory_not_made_yet_is_no_refusal(tmp_path: Path) -> None:
    runs = RunFiles(tmp_path / "runs", SID)
    assert runs.refused() is None
    assert runs.removable(f"/x/runs/{SID}/bf/a.1.log") == tmp_path / "runs" / SID / "bf" / "a.1.log"


# -- make_private: every directory from the runs directory down is 0700, or refused -----


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
