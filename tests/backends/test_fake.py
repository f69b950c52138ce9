"""The in-memory backend used by tests: outcomes from the argv, cancel, logs."""

from __future__ import annotations

from backfill_ctl.backends import AttemptSpec, Outcome
from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.core.records import Run


def spec(*argv: str, n: int = 1) -> AttemptSpec:
    return AttemptSpec("i", n, "bf", "a", "2024-03-01", "x", Run(tuple(argv)))


def test_true_succeeds_false_fails_hang_runs_until_cancelled() -> None:
    fake = FakeBackend()
    handles = {
        s.key: fake.start(s)[0] for s in (spec("true"), spec("false", n=2), spec("hang", n=3))
    }
    assert fake.poll(handles) == {
        ("i", 1): Outcome("succeeded", 0),
        ("i", 2): Outcome("failed", 1, "exit code 1"),
    }
    fake.cancel(("i", 3), handles["i", 3], "stopped by ann")
    assert fake.poll({("i", 3): handles["i", 3]}) == {
        ("i", 3): Outcome("failed", None, "stopped by ann")
    }


def test_an_attempt_it_did_not_start_is_lost_and_has_no_log() -> None:
    fake = FakeBackend()
    assert fake.poll({("x", 1): {"fake": "x.1"}}) == {
        ("x", 1): Outcome("lost", None, "the fake backend lost it")
    }
    assert fake.log_text({}, None) == ""
    assert fake.log_text(fake.start(spec("true"))[0], None) == "fake run of ('true',)\n"


def test_the_configs_backends_are_the_registrys_and_fake_is_for_tests_only() -> None:
    """A backend is added to the registry and to the schema's `spec.backend` enum."""
    from backfill_ctl.backends import BACKENDS, TEST_ONLY
    from backfill_ctl.spec.schema import kind_schema

    backend = kind_schema("Config")["properties"]["spec"]["properties"]["backend"]
    assert backend["enum"] == [name for name in BACKENDS if name not in TEST_ONLY]
