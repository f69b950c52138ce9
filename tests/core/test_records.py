"""What the store holds of a run: its JSON, and how a run stored before reads."""

from __future__ import annotations

from backfill_ctl.core.records import Run


def test_a_run_s_working_directory_is_kept_relative_to_the_spec_root() -> None:
    run = Run(("etl", "--pt", "20240301"), env={"A": "1"}, working_dir="jobs", retries=2)
    assert run.to_json()["workingDir"] == "jobs"
    assert Run.from_json(run.to_json()) == run
    assert Run(("etl",)).working_dir == "."  # the spec root: what every spec asks


def test_a_run_stored_with_the_applying_checkout_s_directory_runs_in_the_spec_root() -> None:
    """Stored before: `cwd`, the absolute spec root of whoever applied last (a pipeline's
    clone, since removed). It meant the spec root, and is read so: no change to apply."""
    stored = {"command": ["etl"], "env": {}, "cwd": "/builds/ci/specs", "retries": 0}
    assert Run.from_json(stored) == Run(("etl",))
    assert Run.from_json(stored).working_dir == "."
    assert "cwd" not in Run.from_json(stored).to_json()
