"""What every backend that runs real commands must do: the contract of DESIGN §8.

A backend's test module subclasses `BackendContract` as `Test...` and provides the
`make` fixture: `make()` gives a backend; calling it again gives a new backend on the
same ground (the same directory, the same cluster), which is what a restarted
controller gets. The commands are real: `sh`, `sleep`, `echo`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from backfill_ctl.backends import AttemptSpec, Backend, Handle, Key, Outcome
from backfill_ctl.core.records import Run

Make = Callable[[], Backend]


def spec(
    command: tuple[str, ...] | str, *, instance: str = "i1", number: int = 1, **run: object
) -> AttemptSpec:
    return AttemptSpec(
        instance,
        number,
        "bf",
        "load",
        "2024-03-01",
        "2024-03-02T02:00:00+08:00",
        Run(command, **run),  # type: ignore[arg-type]
        timezone="Asia/Shanghai",
    )


def settle(
    backend: Backend, running: Mapping[Key, Handle], timeout: float = 20
) -> dict[Key, Outcome]:
    """Poll (waiting in between) until every attempt in `running` has ended."""
    ended: dict[Key, Outcome] = {}
    deadline = time.monotonic() + timeout
    while len(ended) < len(running):
        assert time.monotonic() < deadline, f"still running: {set(running) - set(ended)}"
        ended.update(backend.poll({k: h for k, h in running.items() if k not in ended}))
        if len(ended) < len(running):
            backend.wait(0.05)
    return ended


def run_one(backend: Backend, s: AttemptSpec) -> tuple[Outcome, str]:
    handle, log = backend.start(s)
    outcome = settle(backend, {s.key: handle})[s.key]
    return outcome, backend.log_text(handle, log)


class BackendContract:
    def test_exit_zero_succeeds_and_the_output_is_the_log(self, make: Make) -> None:
        outcome, log = run_one(make(), spec(("echo", "loaded 20240301")))
        assert outcome == Outcome("succeeded", 0)
        assert log == "loaded 20240301\n"

    def test_a_non_zero_exit_fails_with_its_code(self, make: Make) -> None:
        outcome, log = run_one(make(), spec(("sh", "-c", "echo oops >&2; exit 3")))
        assert outcome == Outcome("failed", 3, "exit code 3")
        assert log == "oops\n"  # stderr is in the log too

    def test_argv_is_not_given_to_a_shell(self, make: Make) -> None:
        _, log = run_one(make(), spec(("echo", "$HOME;", "a  b", "*")))
        assert log == "$HOME; a  b *\n"

    def test_a_string_command_runs_in_a_shell_with_the_environment(self, make: Make) -> None:
        command = 'echo "$BACKFILL_BIZDATE-$BACKFILL_PARAM_PT" | tr 0-9 a-j'
        s = spec(command, env={"BACKFILL_BIZDATE": "20240301", "BACKFILL_PARAM_PT": "7"})
        outcome, log = run_one(make(), s)
        assert outcome == Outcome("succeeded", 0)
        assert log == "caceadab-h\n"

    def test_each_attempt_has_its_own_log(self, make: Make) -> None:
        backend = make()
        first = backend.start(spec(("echo", "one"), number=1))
        second = backend.start(spec(("echo", "two"), number=2))
        settle(backend, {("i1", 1): first[0], ("i1", 2): second[0]})
        assert backend.log_text(*first) == "one\n"
        assert backend.log_text(*second) == "two\n"

    def test_cancel_ends_a_running_attempt_as_failed_with_the_reason(self, make: Make) -> None:
        backend = make()
        s = spec(("sleep", "60"))
        handle, _ = backend.start(s)
        assert backend.poll({s.key: handle}) == {}  # still running
        started = time.monotonic()
        backend.cancel(s.key, handle, "stopped by ann")
        outcome = settle(backend, {s.key: handle})[s.key]
        assert (outcome.state, outcome.message) == ("failed", "stopped by ann")
        assert time.monotonic() - started < 10

    def test_a_new_backend_adopts_an_attempt_still_running(self, make: Make) -> None:
        s = spec(("sh", "-c", "sleep 1; echo done"))
        handle, log = make().start(s)
        restarted = make()  # the controller died and came back
        assert (first := restarted.poll({s.key: handle})) == {}, first
        assert settle(restarted, {s.key: handle})[s.key] == Outcome("succeeded", 0)
        assert restarted.log_text(handle, log) == "done\n"

    def test_a_new_backend_knows_how_an_attempt_ended_meanwhile(self, make: Make) -> None:
        first = make()
        s = spec(("sh", "-c", "exit 4"))
        handle, _ = first.start(s)
        settle(first, {s.key: handle})
        assert make().poll({s.key: handle}) == {s.key: Outcome("failed", 4, "exit code 4")}

    def test_recover_finds_a_started_attempt_whose_handle_was_not_recorded(
        self, make: Make
    ) -> None:
        s = spec(("sh", "-c", "echo started; sleep 0.3"))
        first = make()
        handle, log = first.start(s)  # the controller dies before it stores the handle
        deadline = time.monotonic() + 10
        while first.log_text(handle, log) != "started\n":
            assert time.monotonic() < deadline, "the command did not start"
            time.sleep(0.02)
        restarted = make()
        found = restarted.recover(s, first.unstarted_handle())
        assert found is not None
        assert settle(restarted, {s.key: found})[s.key] == Outcome("succeeded", 0)

    def test_recover_of_an_attempt_that_never_started_is_none(self, make: Make) -> None:
        backend = make()
        assert (
            backend.recover(spec(("true",), instance="never"), backend.unstarted_handle()) is None
        )

    def test_an_attempt_recover_declared_unstarted_does_not_start_later(self, make: Make) -> None:
        """A controller paused between an attempt's begin and its start resumes after a
        newer one found no trace of it and declared it unstarted (its retry runs in its
        place): the late start runs nothing, whichever way the backend says so."""
        s = spec(("sh", "-c", "echo ran"), instance="late")
        late = make()
        assert make().recover(s, late.unstarted_handle()) is None
        handle, log = late.start(s)
        outcome = settle(late, {s.key: handle})[s.key]
        assert (outcome.state, outcome.started) == ("lost", False)
        assert "declared the attempt unstarted" in (outcome.message or "")
        assert late.log_text(handle, log) == ""

    def test_wait_returns_within_its_timeout(self, make: Make) -> None:
        backend = make()
        started = time.monotonic()
        backend.wait(0.2)
        assert time.monotonic() - started < 2
