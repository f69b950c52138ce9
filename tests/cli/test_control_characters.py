"""Terminal control characters in stored values never reach an operator's terminal raw.

Label values, owners, descriptions, parameter values, commands and the actor are free
text: a colleague's spec (or `--as`) can hold an escape sequence that clears the screen,
retitles the window, writes the clipboard (OSC 52) or hides text, and a bidi override
that reorders what is shown. Human output (`get` tables, `describe`, `events`, `diff`,
refusals and diagnostics) shows them escaped (`\\x1b`, `\\u202e`); JSON and YAML carry
the exact value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backfill_ctl.state import open_store
from tests.builders import backfill, config, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, run, write_files

ESC = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J"  # OSC 52 (clipboard), then clear the screen
RLO = "\u202e"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    bf = backfill("bf", parameters={"p": f"v{ESC}"})
    bf["metadata"]["labels"] = {"ticket": f"T{ESC}"}
    write_files(
        tmp_path / "specs",
        {
            "backfillctl.yaml": dump(config(backend="local")),
            "catalog.yaml": dump(
                workspace(operators=(f"ops{RLO}",)),
                resource_group("rg", 4),
                node(
                    "a",
                    resourceGroup="rg",
                    owners=(f"al{ESC}ice",),
                    command=["echo", "${p}"],
                    parameters={"p": "x"},
                ),
            ),
            "bf.yaml": dump(bf),
        },
    )
    applied = run("apply", "specs", "--now", NOW, "--as", f"ops{RLO}")
    assert applied.exit_code == 0, applied.stderr
    return tmp_path


def raw(text: str) -> bool:
    return any(c in text for c in ("\x1b", "\x07", RLO))


def test_tables_and_describe_show_control_characters_escaped(repo: Path) -> None:
    [iid] = [i.id for i in open_store(repo / ".backfillctl" / "state.db").instances()]
    for args in (
        ["get", "backfills", "-o", "wide"],
        ["get", "instances", "-o", "wide"],
        ["get", "backfills", "-o", "custom-columns=L:.metadata.labels.ticket"],
        ["describe", "backfill/bf"],
        ["describe", f"instance/{iid}"],
        ["events"],
    ):
        result = run(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert not raw(result.stdout), args
    assert "ticket=T\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J" in run("describe", "backfill/bf").stdout
    assert "ops\\u202e" in run("events").stdout


def test_refusals_and_diffs_show_them_escaped(repo: Path) -> None:
    [iid] = [i.id for i in open_store(repo / ".backfillctl" / "state.db").instances()]
    refused = run("freeze", iid, "--as", "mallory")
    bf = backfill("bf", parameters={"p": f"w{RLO}{ESC}"})
    write_files(repo / "specs", {"bf.yaml": dump(bf)})
    diff = run("diff", "specs", "--now", NOW)

    assert refused.exit_code == 1
    assert not raw(refused.stderr)
    assert "who may: al\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2Jice, ops\\u202e" in refused.stderr
    assert diff.exit_code == 1
    assert not raw(diff.stdout)
    assert "w\\u202e\\u001b]52" in diff.stdout  # (the value as JSON, the bidi escaped)


def test_data_outputs_keep_the_exact_value(repo: Path) -> None:
    data = json.loads(run("get", "backfills", "-o", "json").stdout)

    assert data["items"][0]["metadata"]["labels"]["ticket"] == f"T{ESC}"
