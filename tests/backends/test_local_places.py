"""Where the local backend's attempts run (`place.py`, `elsewhere.py`): the place in each
handle and what it decides, and an attempt whose processes run where this process can
neither see nor signal them (another pid namespace, another host), followed by its pid
file alone. Such a place is made here by changing the pid namespace (or the boot) of
this process's own; tests/test_pid_namespaces.py has the real thing."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from backfill_ctl.backends import BackendError, Outcome
from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.backends.local.place import Place, here
from tests.backends.contract import settle, spec

HERE = here()
NAMESPACE = replace(HERE, pids="4:4026532999")  # another pid namespace of this kernel
RESTARTED = replace(HERE, boot="00000000-0000-0000-0000-000000000000", pids="4:1")
HOST = Place("web-2", "f" * 32, "11111111-2222-3333-4444-555555555555", "4:4026531836")


# -- the place -------------------------------------------------------------------------


def test_this_place_is_read_once_and_names_host_boot_and_pid_namespace() -> None:
    info = Path("/proc/self/ns/pid").stat()
    assert here() is HERE
    assert HERE.host == os.uname().nodename
    assert HERE.boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert HERE.pids == f"{info.st_dev}:{info.st_ino}"
    assert Place.parse(str(HERE)) == HERE


@pytest.mark.parametrize(
    ("other", "follows"),
    [
        (HERE, True),
        (replace(HERE, host="renamed"), True),  # one pid namespace (a UTS namespace's name)
        (NAMESPACE, False),  # a container on this machine: its pids are not ours
        (replace(NAMESPACE, host="box"), False),
        (RESTARTED, True),  # this machine before a restart: none of its processes is left
        (replace(RESTARTED, machine=""), False),  # (no machine id: nothing assumed)
        (replace(RESTARTED, host="twin"), False),  # another host, its machine id copied
        (HOST, False),
        (Place.parse("not a place"), False),
    ],
)
def test_which_places_are_followed_by_pids(other: Place, follows: bool) -> None:
    assert HERE.follows(other) is follows
    assert HERE.follows(Place.parse(str(other))) is follows


def test_no_machine_id_assumes_no_restart() -> None:
    anonymous = replace(HERE, machine="")
    assert not anonymous.follows(replace(anonymous, boot="another"))


def test_a_place_is_described_for_an_operator() -> None:
    ino = NAMESPACE.pids.split(":")[1]
    assert HERE.describe(NAMESPACE) == (
        f"in another pid namespace of this machine (pid:[{ino}], host name {HERE.host})"
    )
    assert HERE.describe(HOST) == f"on host web-2, boot {HOST.boot}"


# -- attempts of another place ---------------------------------------------------------


def started_at(tmp_path: Path, place: Place, pid: int, *lines: int) -> dict[str, object]:
    """The handle of an attempt started at `place` as group `pid` (its pid file: the pid,
    then `lines`)."""
    base = tmp_path / "runs" / "bf" / "i1.1"
    pid_file = Path(f"{base}.pid")
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text("".join(f"{n}\n" for n in (pid, *lines)))
    pid_file.chmod(0o600)
    return {"base": str(base), "pid": pid, "place": str(place)}


def dead_pid() -> int:
    done = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_handle_records_where_its_attempt_runs(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    s = spec(("true",))
    handle, _ = backend.start(s)
    assert handle["place"] == str(HERE)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("succeeded", 0)
    assert backend.adopt(handle) is None


def test_an_attempt_elsewhere_is_not_lost_for_its_pid_missing_here(tmp_path: Path) -> None:
    """Its pid names no process here (as in another pid namespace): it runs on as far as
    anyone here knows; here the same handle would be lost. Its shim's code ends it."""
    pid = dead_pid()
    s = spec(("true",))
    handle = started_at(tmp_path, NAMESPACE, pid)
    backend = LocalBackend(tmp_path / "runs")
    for _ in range(3):
        assert backend.poll({s.key: handle}) == {}
    ours = {**handle, "place": str(HERE)}
    assert LocalBackend(tmp_path / "runs").poll({s.key: ours})[s.key].state == "lost"
    started_at(tmp_path, NAMESPACE, pid, 3)  # its shim wrote the code
    assert backend.poll({s.key: handle}) == {s.key: Outcome("failed", 3, "exit code 3")}


def test_an_attempt_elsewhere_is_never_signalled_and_the_stop_says_how(tmp_path: Path) -> None:
    """Its pid here is another process (of this test): nothing is sent to it."""
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        s = spec(("true",))
        handle = started_at(tmp_path, NAMESPACE, bystander.pid)
        backend = LocalBackend(tmp_path / "runs")
        with pytest.raises(BackendError) as refused:
            backend.cancel(s.key, handle, "stopped by ops")
        said = str(refused.value)
        assert said.startswith("it runs in another pid namespace of this machine (pid:[")
        assert "can neither see nor signal its processes" in said
        assert f"kill -TERM -- -{bystander.pid} in that pid namespace" in said
        assert "declare it ended: backfillctl stop --force i1" in said
        assert backend.adopt(handle) == said
        assert backend.poll({s.key: handle}) == {}
        assert bystander.poll() is None
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


def test_an_attempt_on_another_host_whose_pid_file_is_not_here(tmp_path: Path) -> None:
    s = spec(("true",))
    handle = {"base": str(tmp_path / "runs" / "bf" / "i1.1"), "pid": 7, "place": str(HOST)}
    backend = LocalBackend(tmp_path / "runs")
    assert backend.poll({s.key: handle}) == {}
    said = backend.adopt(handle) or ""
    assert said.startswith(f"it runs on host web-2, boot {HOST.boot}")
    assert "is not to be seen from here: its end is recorded when a controller there" in said
    assert said.endswith("declare it ended: backfillctl stop --force i1")


def test_an_attempt_elsewhere_declared_ended_is_lost_once(tmp_path: Path) -> None:
    """`stop --force`: no code came, so the operator's word ends it (lost, with their
    reason), reported once; a code its shim writes after that is read by nobody."""
    s = spec(("true",))
    handle = started_at(tmp_path, NAMESPACE, dead_pid())
    backend = LocalBackend(tmp_path / "runs")
    assert backend.poll({s.key: handle}) == {}
    backend.declare_ended(s.key, handle, "stop --force by ops")
    assert backend.poll({s.key: handle}) == {s.key: Outcome("lost", None, "stop --force by ops")}
    assert backend.poll({s.key: handle}) == {}  # (what the controller would not ask again)


def test_a_code_written_before_the_declaration_is_carried_out_wins(tmp_path: Path) -> None:
    s = spec(("true",))
    pid = dead_pid()
    handle = started_at(tmp_path, NAMESPACE, pid)
    backend = LocalBackend(tmp_path / "runs")
    backend.declare_ended(s.key, handle, "stop --force by ops")
    started_at(tmp_path, NAMESPACE, pid, 0)  # its shim wrote the code meanwhile
    assert backend.poll({s.key: handle}) == {s.key: Outcome("succeeded", 0)}


def test_an_attempt_this_process_follows_is_not_declared_ended(tmp_path: Path) -> None:
    """Where the processes can be seen, a stop ends them: the declaration is refused."""
    s = spec(("true",))
    for place in (HERE, RESTARTED):
        handle = started_at(tmp_path, place, dead_pid())
        with pytest.raises(BackendError, match="sees its processes: a stop ends them"):
            LocalBackend(tmp_path / "runs").declare_ended(s.key, handle, "stop --force by ops")


def test_an_attempt_of_this_machine_before_a_restart_is_followed_by_pids(
    tmp_path: Path,
) -> None:
    s = spec(("true",))
    handle = started_at(tmp_path, RESTARTED, dead_pid())
    backend = LocalBackend(tmp_path / "runs")
    assert backend.adopt(handle) is None
    assert backend.poll({s.key: handle})[s.key].state == "lost"  # the restart ended it


# -- an attempt begun elsewhere, not recorded as started ---------------------------------


def begun_at(place: Place, backend: LocalBackend) -> dict[str, object]:
    """What a controller at `place` sharing `backend`'s runs directory recorded."""
    return {**backend.unstarted_handle(), "place": str(place)}


def test_what_an_attempt_is_begun_with(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    begun = backend.unstarted_handle()  # (the runs directory is made for it)
    info = (tmp_path / "runs").stat()
    assert begun == {
        "place": str(HERE),
        "runs": f"{info.st_dev}:{info.st_ino}",
    }


def test_one_begun_in_a_namespace_sharing_the_runs_directory_is_claimed(tmp_path: Path) -> None:
    """Its shim had not created the pid file: this claim wins, it never runs there."""
    backend = LocalBackend(tmp_path / "runs")
    s = spec(("true",))
    assert backend.recover(s, begun_at(NAMESPACE, backend)) is None
    pid_file = tmp_path / "runs" / "bf" / "i1.1.pid"
    assert pid_file.exists()  # the claim, which its shim finds
    assert pid_file.read_text() == ""


def test_one_whose_shim_was_first_is_followed_where_it_runs(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    s = spec(("true",))
    handle = started_at(tmp_path, NAMESPACE, 4242)
    found = backend.recover(s, begun_at(NAMESPACE, backend))
    assert found == handle  # (followed by its pid file: it runs over there)


def test_one_whose_shim_has_not_written_its_pid_yet_is_asked_of_again(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    s = spec(("true",))
    pid_file = tmp_path / "runs" / "bf" / "i1.1.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.touch(mode=0o600)  # the shim's claim, its pid not written yet
    with pytest.raises(BackendError, match=r"i1\.1\.pid is being written"):
        backend.recover(s, begun_at(NAMESPACE, backend))


@pytest.mark.parametrize(
    "where", ["another runs directory", "another host", "an earlier version's begin"]
)
def test_one_begun_where_this_runs_directory_is_not_known_shared_is_never_claimed(
    tmp_path: Path, where: str
) -> None:
    """A claim here would be made beside, not against, its shim's: it would win and the
    attempt would run twice. Nobody here can tell: asked again (BackendError)."""
    backend = LocalBackend(tmp_path / "runs")
    s = spec(("true",))
    begun = {
        "another runs directory": {"place": str(NAMESPACE), "runs": "1:2"},
        "another host": begun_at(HOST, backend),
        "an earlier version's begin": {"place": str(NAMESPACE)},
    }[where]
    with pytest.raises(BackendError, match=r"i1\.1\.pid is not to be seen here"):
        backend.recover(s, begun)
    assert not (tmp_path / "runs" / "bf" / "i1.1.pid").exists()


def test_one_begun_here_is_claimed_and_followed_here(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runs")
    s = spec(("true",))
    assert backend.recover(s, backend.unstarted_handle()) is None
    earlier = spec(("true",), number=2)
    assert backend.recover(earlier, {}) is None  # (an earlier version's begin: as before)
