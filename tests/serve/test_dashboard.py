"""The dashboard over a store filled by a real run (local backend): the backfills, the
grid with a failed date and the dates blocked behind it, an instance with its log, the
cells the page polls, and hostile values shown as text. Real HTTP, real processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from backfill_ctl.serve import Server
from backfill_ctl.serve.scripts import FOLLOW
from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.cli.helpers import ran_checkout, run
from tests.test_reliability import specs, wait_until

HOSTILE = "<img src=x onerror=alert(1)>"


def get(url: str) -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`load` over four dates, strictly day by day: 2024-03-02 fails, so 03 and 04 stay
    waiting behind it; its parameter and its output carry markup."""
    root = tmp_path_factory.mktemp("dashboard")
    command = 'echo "pt=$BACKFILL_PARAM_NOTE"; [ "$BACKFILL_BIZDATE" != 20240302 ]'
    spec_dir = specs(
        root,
        node("load", resourceGroup="rg", command=command, parameters={"note": HOSTILE}),
        backfill(
            select={"method": "descendants", "roots": ["load"]},
            dates=[{"from": "2024-03-01", "to": "2024-03-04"}],
        ),
    )
    db = root / "state.db"
    applied = run("apply", str(spec_dir), "--state", str(db), "--wait", "--timeout", "60s")
    assert applied.exit_code == 1, applied.stderr  # the backfill failed
    return db


@pytest.fixture(scope="module")
def url(store_path: Path) -> Iterator[str]:
    server = Server(("127.0.0.1", 0), lambda: open_store(store_path, create=False))
    yield server.url
    server.stop()


def cell_classes(html: str) -> dict[str, str]:
    return {
        m.group(2): m.group(1) for m in re.finditer(r'<a class="([^"]+)" data-cell="([^"]+)"', html)
    }


def test_the_backfills_page_lists_them_with_progress(url: str) -> None:
    code, html, headers = get(url + "/")
    assert code == 200
    assert '<a href="/backfills/bf">bf</a>' in html
    assert "failed 1" in html and "succeeded 1" in html
    assert "1/4" in html  # the progress bar's figure
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "http" not in re.sub(r'href="/[^"]*"', "", html).replace("http-equiv", "")


def test_the_grid_shows_the_failed_date_and_those_blocked_behind_it(url: str) -> None:
    code, html, _ = get(url + "/backfills/bf")
    assert code == 200
    assert cell_classes(html) == {
        "load|2024-03-01": "cell s-succeeded",
        "load|2024-03-02": "cell s-failed",
        "load|2024-03-03": "cell s-blocked",
        "load|2024-03-04": "cell s-blocked",
    }
    assert '<script src="/static/backfill.js" defer></script>' in html
    assert '<div id=grid data-backfill="bf" data-live="0">' in html  # it ended: no polling
    code, script, headers = get(url + "/static/backfill.js")
    assert code == 200 and "/api/backfills/" in script and FOLLOW in script
    assert headers["Content-Type"].startswith("text/javascript")


def test_the_cells_the_page_polls(url: str) -> None:
    code, text, headers = get(url + "/api/backfills/bf/cells")
    assert code == 200 and headers["Content-Type"] == "application/json"
    cells = json.loads(text)
    assert cells["load|2024-03-02"]["state"] == "failed"
    assert cells["load|2024-03-02"]["title"] == "load 2024-03-02: failed 1"


def test_an_instance_shows_its_attempts_and_log_with_markup_as_text(
    url: str, store_path: Path
) -> None:
    store = open_store(store_path)
    (failed,) = store.instances(states=["failed"])
    code, html, _ = get(url + f"/instances/{failed.id}")
    assert code == 200
    assert HOSTILE not in html  # neither the parameter nor the log is markup
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert f"<td>BACKFILL_PARAM_NOTE</td><td>{escaped}</td>" in html
    full = f"pt={HOSTILE}\n"  # the log, and where a follower goes on from
    assert f'data-offset="{len(full)}" data-live="0">pt={escaped}\n</pre>' in html
    code, text, _ = get(url + f"/api/instances/{failed.id}/log?offset=3")
    assert json.loads(text) == {"offset": len(full), "text": full[3:], "live": False}
    assert '?attempt=1">1</a></td><td>failed</td><td>1</td>' in html  # attempt 1, failed, exit 1
    waiting = store.instances(states=["pending"])[0]
    code, html, _ = get(url + f"/instances/{waiting.id}")
    assert "2024-03-02" in html.split("why it waits", 1)[1].split("</tr>", 1)[0]


@pytest.mark.parametrize(
    "path", ["/backfills/nope", "/instances/nope", "/nothing", "/backfills/%3Cb%3E"]
)
def test_what_is_not_there_is_a_404_that_says_so(url: str, path: str) -> None:
    code, html, _ = get(url + path)
    assert code == 404
    assert "<b>" not in html


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/api/backfills/NOPE/cells", "no backfill NOPE in the state store"),
        ("/api/instances/NOPE/log?offset=0", "no instance NOPE in the state store"),
        ("/api/backfills/%3Cb%3E/cells", "no backfill <b> in the state store"),
    ],
)
def test_an_api_endpoint_of_what_is_not_there_is_a_404_in_json(
    url: str, path: str, error: str
) -> None:
    code, text, headers = get(url + path)
    assert (code, headers["Content-Type"]) == (404, "application/json")
    assert json.loads(text) == {"error": error}


def test_backfillctl_ui_serves_until_sigterm(store_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "ui.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", "ui", "--listen", "127.0.0.1:0",
         "--state-file", str(store_path)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )  # fmt: skip
    try:
        found = wait_until(
            lambda: re.findall(r"on (http://127\.0\.0\.1:\d+)/", log.read_text()), 30, "the url"
        )
        assert get(found[0] + "/")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_ui_without_a_store_says_what_to_do(tmp_path: Path) -> None:
    result = run("ui", "--state-file", str(tmp_path / "none.db"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: no state store at {tmp_path / 'none.db'}",
        "  hint: apply a backfill first (backfillctl apply specs/), or give --state-file",
    ]


def test_a_big_backfill_s_grid_is_aggregated_by_month_in_the_store(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backfill_ctl.serve import views

    monkeypatch.setattr(views, "MAX_GRID_INSTANCES", 3)  # 4 instances: by month
    code, html, _ = get(url + "/backfills/bf")
    assert code == 200
    assert cell_classes(html) == {"load|2024-03": "cell s-failed"}
    cells = json.loads(get(url + "/api/backfills/bf/cells")[1])
    assert cells["load|2024-03"]["title"] == "load 2024-03: blocked 2, failed 1, succeeded 1"


def test_the_backfill_page_shows_its_date_groups_and_what_is_stuck(url: str) -> None:
    code, html, _ = get(url + "/backfills/bf")
    assert code == 200
    lanes = html.split("<h2>Date groups</h2>", 1)[1]
    assert "<td>group 0</td>" in lanes
    assert "<td>2024-03-02</td><td>date 2 of 4</td><td>failed 1</td>" in lanes
    conditions = html.split("<h2>Conditions</h2>", 1)[1]
    assert (
        "<li>date group 0: 2 instances of 2 later dates wait behind 2024-03-02, "
        "which has 1 failed</li>" in conditions
    ), conditions


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ("", ["load"]),
        ("?state=failed", ["load"]),
        ("?state=running", []),
        ("?node=oa", ["load"]),
        ("?node=zz", []),
    ],
)
def test_filters_in_the_url_keep_the_rows_asked_for(url: str, query: str, rows: list[str]) -> None:
    code, html, _ = get(url + "/backfills/bf" + query)
    assert code == 200
    assert sorted({key.split("|")[0] for key in cell_classes(html)}) == rows
    assert '<a href="?state=failed">' in html


def test_what_waits_on_a_blocked_instance_is_shown_blocked_too() -> None:
    from backfill_ctl.core.records import InstanceRecord, Run
    from backfill_ctl.serve.pages import grid_cells

    def instance(ident: str, node: str, state: str, *deps: str) -> InstanceRecord:
        return InstanceRecord(
            ident, "bf", node, "2024-03-01", "2024-03-02T00:00:00+00:00", 0.0, "UTC",
            0, 0, 5, deps, Run(("true",)), "rg", state=state,  # type: ignore[arg-type]
        )  # fmt: skip

    chain = [
        instance("a", "a", "failed"),
        instance("b", "b", "pending", "a"),
        instance("c", "c", "waiting-for-upstream", "b"),
        instance("d", "d", "pending"),
    ]
    _, _, cells = grid_cells(chain)
    assert {k: v["state"] for k, v in cells.items()} == {
        "a|2024-03-01": "failed",
        "b|2024-03-01": "blocked",
        "c|2024-03-01": "blocked",
        "d|2024-03-01": "pending",
    }


def test_a_log_from_another_machine_is_the_store_s_copy(tmp_path: Path) -> None:
    """The attempt ran elsewhere (its log file is not here): the page shows the copy a
    shared store kept, markup as text, and says that its start was left out."""
    from backfill_ctl.serve import views
    from tests.state.contract import WHO, backfill, end, instance, start

    store = open_store("memory:")
    store.save_apply([backfill()], [instance("a1")], [], [], at=0, **WHO)
    number = start(store, "a1")
    store.set_attempt_handle("a1", number, {}, str(tmp_path / "elsewhere" / "a1.log"))
    end(store, "a1", number, "failed")
    store.save_log("a1", number, f"last line {HOSTILE}\n", size=5000, at=0)

    code, body, _ = views.route(store, "/instances/a1")

    html = body.decode()
    assert code == 200 and HOSTILE not in html
    assert "last line &lt;img src=x onerror=alert(1)&gt;" in html
    assert f"[the first {5000 - len(f'last line {HOSTILE}') - 1} bytes are not shown]" in html


def test_the_log_of_a_checkout_that_moved_is_shown_from_beside_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store names the log where it ran; the checkout moved since, store and runs
    directory with it: the page and the follower read the log where it is now."""
    from backfill_ctl.serve import views

    ident = ran_checkout(tmp_path / "a", monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").rename(tmp_path / "c")
    store = open_store(tmp_path / "c" / ".backfillctl" / "state.db", create=False)
    try:
        _, page, _ = views.route(store, f"/instances/{ident}")
        _, follow, _ = views.route(store, f"/api/instances/{ident}/log?offset=0")
    finally:
        store.close()

    assert 'data-offset="4" data-live="0">ran\n</pre>' in page.decode()
    assert json.loads(follow) == {"offset": 4, "text": "ran\n", "live": False}
