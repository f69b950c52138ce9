"""The application shell: help, version, exit codes of bugs and interrupts, colour.

`main()` is what the console script runs; it is driven in-process (with a command
monkeypatched to misbehave) and, for the real entry points, in a subprocess.
"""

from __future__ import annotations

import gc
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_ctl import __version__
from backfill_ctl.cli import FIRST_COLLECTION, collect_late, console
from backfill_ctl.cli.main import main
from backfill_ctl.errors import Diagnostic, SpecError
from tests.builders import backfill, dump
from tests.cli.helpers import CATALOG, CLEAN_ENV, EXAMPLE_SPECS, NOW, REPO, run, write_files

COMMANDS = ("validate", "plan", "schema", "explain")


def test_version_prints_the_version() -> None:
    result = run("--version")

    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        f"backfillctl {__version__}\n",
        "",
    )


def test_no_arguments_show_the_help_on_stderr_as_a_usage_error() -> None:
    result = run()

    assert result.exit_code == 2  # click's NoArgsIsHelpError
    assert result.stdout == ""
    assert result.stderr.startswith("Usage: backfillctl [OPTIONS] COMMAND [ARGS]...\n")
    assert all(f"  {command} " in result.stderr for command in COMMANDS)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_every_command(flag: str) -> None:
    result = run(flag)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith("Usage: backfillctl [OPTIONS] COMMAND [ARGS]...\n")
    assert all(f"  {command} " in result.stdout for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = run(command, "-h")

    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: backfillctl {command} [OPTIONS]")


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run("aply", "specs/")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: No such command 'aply'. Did you mean 'apply'?"


def test_a_spec_error_prints_its_diagnostics_then_a_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    diagnostic = Diagnostic("unknown field 'grups'", "b.yaml", path=("spec", "grups"), line=3)

    def load_specs(paths: object) -> object:
        raise SpecError([diagnostic])

    monkeypatch.setattr("backfill_ctl.cli.validate.load_specs", load_specs)

    result = run("validate", "b.yaml")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "b.yaml:3: error: $.spec.grups: unknown field 'grups'",
        "error: 1 error(s) in the specs",
    ]


# -- main(): bugs and interrupts ---------------------------------------------------------


@pytest.fixture
def argv(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """sys.argv for main(), a clean environment, and Typer's excepthook undone after."""
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    args = ["backfillctl", "validate", "specs/"]
    monkeypatch.setattr(sys, "argv", args)
    return args


def _command_raises(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def load_specs(paths: object) -> object:
        raise exc

    monkeypatch.setattr("backfill_ctl.cli.validate.load_specs", load_specs)


def test_a_bug_exits_3_with_a_plain_message_and_no_traceback(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _command_raises(monkeypatch, RuntimeError("boom"))

    with pytest.raises(SystemExit) as exit_:
        main()

    assert exit_.value.code == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "internal error: RuntimeError: boom\n"
        "  this is a bug in backfillctl; rerun with BACKFILLCTL_DEBUG=1 and report the traceback\n"
    )


def test_with_backfillctl_debug_the_bug_propagates(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _command_raises(monkeypatch, RuntimeError("boom"))
    monkeypatch.setenv("BACKFILLCTL_DEBUG", "1")

    with pytest.raises(RuntimeError, match="boom"):
        main()


def test_an_interrupted_command_exits_130(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _command_raises(monkeypatch, KeyboardInterrupt())

    with pytest.raises(SystemExit) as exit_:
        main()

    assert exit_.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_an_interrupt_outside_a_command_exits_130(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("backfill_ctl.cli.main.app", interrupted)

    with pytest.raises(SystemExit) as exit_:
        main()

    assert exit_.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_user_error_through_main_keeps_its_exit_code(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # specs/ does not exist here

    with pytest.raises(SystemExit) as exit_:
        main()

    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: specs/: no such file or directory",
        "  hint: check the path; it is relative to the current directory",
    ]


# -- the real entry points ---------------------------------------------------------------


def _shell(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_python_dash_m_runs_the_app() -> None:
    done = _shell(sys.executable, "-m", "backfill_ctl", "--version")

    assert (done.returncode, done.stdout, done.stderr) == (0, f"backfillctl {__version__}\n", "")


def test_the_console_script_plans_the_example_repo() -> None:
    script = str(Path(sys.executable).parent / "backfillctl")

    done = _shell(script, "plan", str(EXAMPLE_SPECS), "--as", "oncall", "-o", "json", "--now", NOW)

    assert (done.returncode, done.stderr) == (0, "")
    assert [bp["name"] for bp in json.loads(done.stdout)["backfills"]] == [
        "clicks-late-data",
        "dw-rebuild-2024-01",
        "fix-orders-2024-03",
    ]


@pytest.mark.parametrize(
    ("text", "code", "first_line"),
    [
        (
            "kind: [\n",
            1,
            "bad.yaml:2:1: error: YAML syntax error: did not find expected node content",
        ),
        (None, 2, "error: bad.yaml: no such file or directory"),
    ],
)
def test_the_console_script_reports_user_errors_without_a_traceback(
    tmp_path: Path, text: str | None, code: int, first_line: str
) -> None:
    if text is not None:
        (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    script = str(Path(sys.executable).parent / "backfillctl")

    done = _shell(script, "validate", "bad.yaml", cwd=tmp_path)

    assert done.returncode == code
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0] == first_line


# -- colour ---------------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)

    assert console.use_color(FakeTTY())
    assert console.paint("error:", "red", FakeTTY()) == "\x1b[31merror:\x1b[0m"
    assert not console.use_color(io.StringIO())
    assert console.paint("error:", "red", io.StringIO()) == "error:"


@pytest.mark.parametrize("value", ["1", ""])
def test_no_color_turns_colour_off_even_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("NO_COLOR", value)

    assert not console.use_color(FakeTTY())
    assert console.paint("error:", "red", FakeTTY()) == "error:"


def test_paint_defaults_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", FakeTTY())

    assert console.paint("ok", "green") == "\x1b[32mok\x1b[0m"


def test_diagnostics_colour_only_the_severity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stderr = FakeTTY()
    monkeypatch.setattr(sys, "stderr", stderr)

    console.print_diagnostics(
        [
            Diagnostic("bad", "a.yaml", path=("spec",), hint="fix it", line=1, col=2),
            Diagnostic("odd", "a.yaml", severity="warning", line=3, col=4),
        ]
    )

    assert stderr.getvalue().splitlines() == [
        "a.yaml:1:2: \x1b[31merror\x1b[0m: $.spec: bad",
        "  hint: fix it",
        "a.yaml:3:4: \x1b[33mwarning\x1b[0m: odd",
    ]


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path) -> None:
    """`backfillctl plan ... | head`: exit 0, nothing on stderr, no traceback."""
    dates = [{"from": "2020-01-01", "to": "2024-12-31"}]  # ~1 MB of JSON: more than a pipe holds
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill(dates=dates))})
    proc = subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", "plan", str(tmp_path), "-o", "json", "--now", NOW],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10)
    proc.stdout.close()  # like head after its lines
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in stderr


def test_a_verb_imports_only_its_own_module() -> None:
    """Verbs are loaded when they run (or help lists them): --version and validate do
    not pay for the controller, the store or the backends."""
    probe = (
        "import sys\n"
        "from backfill_ctl.cli.main import main\n"
        "sys.argv = ['backfillctl', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('backfill_ctl.', 'networkx')))\n"
        "print(' '.join(loaded), file=sys.stderr)\n"
    )
    version = subprocess.run(
        [sys.executable, "-c", probe, "--version"], capture_output=True, text=True, check=True
    )
    assert "backfill_ctl.cli.apply" not in version.stderr.split()
    assert "backfill_ctl.cli.validate" not in version.stderr.split()
    validate = subprocess.run(
        [sys.executable, "-c", probe, "validate", str(EXAMPLE_SPECS)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(validate.stderr.split())
    assert "backfill_ctl.cli.validate" in loaded
    assert not loaded & {"backfill_ctl.cli.apply", "backfill_ctl.runtime.controller"}
    assert "networkx" not in loaded  # loops are found without a graph library


def test_the_collector_starts_late_then_as_python_does() -> None:
    """Issue 15: no garbage collection pass while the CLI starts (~60 before apply
    --wait's first instance with Python's thresholds); the first pass puts them back."""
    probe = (
        "import gc, sys\n"
        "python = gc.get_threshold()\n"
        "import backfill_ctl.cli\n"  # its first module: the rest of the start is counted
        "passes = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'stop' and passes.append(1))\n"
        "from backfill_ctl.cli.main import main\n"
        "sys.argv = ['backfillctl', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "started, during = gc.get_threshold(), len(passes)\n"
        "gc.collect()\n"
        "print(python, started, during, gc.get_threshold(), sep='|', file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "validate", str(EXAMPLE_SPECS)],
        capture_output=True,
        text=True,
        check=True,
    )
    python, started, during, after = done.stderr.splitlines()[-1].split("|")
    assert started == str((FIRST_COLLECTION, *eval(python)[1:]))
    assert (during, after) == ("0", python)


def test_a_collector_set_by_someone_else_is_left_alone() -> None:
    before = gc.get_threshold()
    try:
        for threshold in ((0, 10, 10), (FIRST_COLLECTION * 2, 5, 5)):
            gc.set_threshold(*threshold)
            collect_late()
            assert gc.get_threshold() == threshold
    finally:
        gc.set_threshold(*before)


def test_help_shows_words_not_python_types() -> None:
    from backfill_ctl.cli.main import VERBS

    for verb in [*VERBS, "get backfills", "get instances", "backend check"]:
        result = run(*verb.split(), "--help")
        assert result.exit_code == 0, verb
        for placeholder in ("<str>", "<list[", "<float", "<int>", "<path>", "<file>"):
            assert placeholder not in result.stdout, (verb, placeholder)
