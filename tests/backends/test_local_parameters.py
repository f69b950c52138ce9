"""Parameters never reach a shell as code (DESIGN §7, issue 9 item 4), end to end.

A string command runs with a real `/bin/sh -c` through the local backend, built the
way the controller builds it (specs -> plan -> reconcile.desired -> Run). Every hostile
value is tried in every quoting context a reference can stand in -- bare, inside single
quotes, inside double quotes, in a here-document, inside `$(...)` -- once as a
Backfill's override and once as a value built from a date expression. Each context
writes what the command saw to its own file: the bytes must be exactly the value, and
no marker file may exist (nothing in a value ran).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill_ctl.backends import AttemptSpec, Outcome
from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.plan import make_plan
from tests.backends.contract import run_one
from tests.builders import NOW, backfill, node, specs_of, workspace

HOSTILE = [
    "$(touch PWN); x'; touch PWN2; #",  # the report of issue 9
    "$(touch PWN)",
    "`touch PWN`",
    "x'; touch PWN; '",
    'x"; touch PWN; "',
    "a;touch PWN",
    "a && touch PWN || touch PWN",
    "line one\n$(touch PWN)\nline 'three'\n",
    "EOF\ntouch PWN\nEOF",  # ends a here-document if spliced into one
    "\\\\ \\' \\\" \\$HOME \\` \\",
    "$HOME $$ $1 $@ * ?",
    "  two  spaces\tand a tab  ",
    "}${x}",  # closes a ${...} of the shell if spliced into one; $$ makes it literal
    "",
]

# Each line writes what one context saw to its own file; `${p}` is the reference. (The
# log line uses printf: dash's echo reads backslashes in its arguments.)
COMMAND = """\
printf '%s' ${p} > bare
printf '%s' 'single:${p}:' > single
printf '%s' "double:${p}:" > double
printf '%s' "$(printf '%s' "sub:${p}:")" > substituted
printf '%s' $(printf '%s' 'x') ${p}> adjacent
cat > heredoc <<EOF
here:${p}:
EOF
cat > heredoc_tab <<-EOF
	tab:${p}:
	EOF
printf '%s\n' "p=${p}"
"""


def _literal(value: str) -> str:
    """`value` as a parameter template: `$$` for a `$`, so our own grammar leaves it be."""
    return value.replace("$", "$$")


def _expected(value: str) -> dict[str, bytes]:
    def b(text: str) -> bytes:
        return text.encode()

    # A bare reference is one word (no field splitting, no globbing), as before.
    # `$(...)` drops trailing newlines: that is the shell's rule, not ours.
    return {
        "bare": b(value),
        "single": b(f"single:{value}:"),
        "double": b(f"double:{value}:"),
        "substituted": b(f"sub:{value}:"),
        "adjacent": b(f"x{value}"),
        "heredoc": b(f"here:{value}:\n"),
        "heredoc_tab": b(f"tab:{value}:\n"),
    }


def _run(tmp_path: Path, parameters: dict[str, str], overrides: dict[str, str]) -> str:
    specs = specs_of(
        workspace(),
        node("a", command=COMMAND, parameters=parameters),
        backfill(dates=["2024-03-01"], parameters=overrides),
    )
    plan, diagnostics = make_plan(specs, NOW, None)
    assert not [d for d in diagnostics if d.is_error], [d.format() for d in diagnostics]
    work = tmp_path / "work"
    work.mkdir()
    ((wanted,),) = [d.instances for d in reconcile.desired(specs, plan, None, 0.0)]
    spec = AttemptSpec(wanted.id, 1, "bf", "a", wanted.bizdate, wanted.cyctime, wanted.run)
    outcome, log = run_one(LocalBackend(tmp_path / "runs", spec_root=str(work)), spec)
    assert outcome == Outcome("succeeded", 0), log
    assert not [p.name for p in work.iterdir() if p.name.startswith("PWN")], "a value ran"
    return log


def _check(tmp_path: Path, value: str, log: str) -> None:
    work = tmp_path / "work"
    seen = {name: (work / name).read_bytes() for name in _expected(value)}
    assert seen == _expected(value)
    assert log == f"p={value}\n"


@pytest.mark.parametrize("value", HOSTILE)
def test_a_backfill_s_override_reaches_the_command_exactly_and_never_runs(
    tmp_path: Path, value: str
) -> None:
    log = _run(tmp_path, {"p": "safe"}, {"p": _literal(value)})
    _check(tmp_path, value, log)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_built_from_dates_reaches_the_command_exactly_and_never_runs(
    tmp_path: Path, value: str
) -> None:
    # `p` renders per instance: a date expression, a hostile override, another parameter.
    parameters = {"p": "${yyyy-mm-dd}", "day": "$[hh24]"}
    log = _run(tmp_path, parameters, {"p": f"${{yyyymmdd}}{_literal(value)}${{day}}"})
    _check(tmp_path, f"20240301{value}02", log)


def test_the_reported_injection_runs_nothing(tmp_path: Path) -> None:
    """Issue 9 item 4 as reported: single-quote quoting broke inside double quotes."""
    value = "$(touch PWN); x'; touch PWN2; #"
    specs = specs_of(
        workspace(),
        node("a", command='echo "p=${p}"', parameters={"p": "safe"}),
        backfill(dates=["2024-03-01"], parameters={"p": _literal(value)}),
    )
    plan, _ = make_plan(specs, NOW, None)
    work = tmp_path / "work"
    work.mkdir()
    ((wanted,),) = [d.instances for d in reconcile.desired(specs, plan, None, 0.0)]
    spec = AttemptSpec(wanted.id, 1, "bf", "a", wanted.bizdate, wanted.cyctime, wanted.run)
    outcome, log = run_one(LocalBackend(tmp_path / "runs", spec_root=str(work)), spec)
    assert sorted(p.name for p in work.iterdir()) == []
    assert (outcome.state, log) == ("succeeded", f"p={value}\n")
