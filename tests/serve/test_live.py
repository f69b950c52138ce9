"""What a page's script polls while its backfill runs: /api/backfills/NAME/live,
/api/instances/ID/live and the list's /api/live, step by step over an in-memory store
(the browser tier, test_browser.py, watches the same on a real run). Each answer holds
every part of its page that changes, as the page writes it, values escaped; it says
when to stop."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from backfill_ctl.serve import pages
from backfill_ctl.serve.scripts import FOLLOW
from backfill_ctl.serve.views import route
from backfill_ctl.state import StateStore, open_store
from tests.serve.test_dashboard import HOSTILE
from tests.state.contract import AT, WHO, backfill, end, instance, start

ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def answer(store: StateStore, target: str) -> dict[str, Any]:
    code, body, kind = route(store, target)
    assert code == 200 and kind == "application/json", body
    found: dict[str, Any] = json.loads(body)
    return found


def shape(store: StateStore, target: str) -> str:
    """The grid's shape on the page at `target`, and the page polls."""
    html = route(store, target)[1].decode()
    assert '<div id=grid data-backfill="bf" data-live="1">' in html
    found = re.search(r'<table class=grid data-backfill="bf" data-shape="(\w+)">', html)
    assert found, html
    return found.group(1)


def lane(below: str) -> str:
    return below.split("<td>group 0</td>", 1)[1].split("</tr>", 1)[0]


def test_a_running_backfill_s_page_gets_all_that_changed_until_it_ended() -> None:
    store = open_store("memory:")
    store.save_apply(
        [backfill()],
        [instance("a1"), instance("b1", "b", deps=("a1",)), instance("a2", day=2)],
        [],
        [],
        at=AT,
        **WHO,
    )
    was = shape(store, "/backfills/bf")
    number = start(store, "a1")

    got = answer(store, f"/api/backfills/bf/live?shape={was}")
    assert got["live"] is True and got["phase"] == "Running"
    assert got["status"].startswith('Running · <span class=bar title="0 of 3">')
    assert "pending 2, running 1" in got["status"]
    assert "grid" not in got  # same rows and dates: the cells only
    assert got["cells"]["a|2024-03-01"]["state"] == "running"
    assert "<td>2024-03-01</td><td>date 1 of 2</td><td>pending 1, running 1</td>" in lane(
        got["below"]
    )
    assert '<rect class="g-running" data-date="2024-03-01"' in got["below"]  # the Gantt
    assert re.search(
        r'data-node="a"><title>a: running</title><rect class="s-running"', got["below"]
    )

    # a re-apply adds a date and a node: the grid comes whole, in the page's own words
    store.save_apply([backfill()], [instance("h3", HOSTILE, day=3)], [], [], at=AT, **WHO)
    got = answer(store, f"/api/backfills/bf/live?shape={was}")
    assert "cells" not in got
    assert 'data-cell="a|2024-03-01"' in got["grid"]
    assert f'data-cell="{ESCAPED}|2024-03-03"' in got["grid"]
    assert HOSTILE not in got["grid"] + got["below"] + got["status"]
    now = re.search(r'data-shape="(\w+)"', got["grid"])
    assert now and now.group(1) != was
    assert "date 1 of 3" in lane(got["below"])
    again = answer(store, f"/api/backfills/bf/live?shape={now.group(1)}")
    assert "grid" not in again and set(again["cells"]) == {
        "a|2024-03-01", "b|2024-03-01", "a|2024-03-02", f"{HOSTILE}|2024-03-03",
    }  # fmt: skip

    # the page's filters hold: the rows with a running cell, whose shape the page had
    got = answer(store, "/api/backfills/bf/live?state=running&shape=")
    filtered = route(store, "/backfills/bf?state=running")[1].decode()
    assert got["grid"] in filtered and 'data-cell="b|' not in got["grid"]

    end(store, "a1", number)
    for ident in ("b1", "a2", "h3"):
        end(store, ident, start(store, ident))
    got = answer(store, f"/api/backfills/bf/live?shape={now.group(1)}")
    assert got["phase"] == "Succeeded" and "all done" in lane(got["below"])
    assert got["live"] is True  # until the controller recorded its end
    store.update_backfill("bf", at=AT + 20, finished_at=AT + 20, outcome="succeeded", **WHO)
    got = answer(store, f"/api/backfills/bf/live?shape={now.group(1)}")
    assert got["live"] is False  # the page's last poll
    assert (
        "succeeded 4 · applied 2024-03-20T01:00:00Z by ann · finished 2024-03-20T01:00:20Z"
        in (got["status"])
    )
    assert (
        '<div id=grid data-backfill="bf" data-live="0">'
        in route(store, "/backfills/bf")[1].decode()
    )  # a page loaded now does not poll at all


def test_a_stopped_backfill_is_followed_while_an_attempt_of_it_runs() -> None:
    store = open_store("memory:")
    store.save_apply([backfill()], [instance("a1"), instance("a2", day=2)], [], [], at=AT, **WHO)
    number = start(store, "a1")
    store.update_backfill("bf", at=AT, status="stopped", **WHO)
    got = answer(store, "/api/backfills/bf/live")
    assert got["phase"] == "Stopped" and got["live"] is True
    end(store, "a1", number, "failed")
    assert answer(store, "/api/backfills/bf/live")["live"] is False


def test_the_grid_shape_is_its_rows_and_columns() -> None:
    cells = {"a|2024-03-01": {"state": "failed"}}
    first = pages.grid_shape((["a"], ["2024-03-01"], cells))
    assert first == pages.grid_shape((["a"], ["2024-03-01"], {}))  # not its colours
    assert first != pages.grid_shape((["a"], ["2024-03-01", "2024-03-02"], cells))
    assert first != pages.grid_shape((["a", "b"], ["2024-03-01"], cells))


def test_an_instance_s_page_gets_its_state_attempts_and_log_until_it_ended(
    tmp_path: Path,
) -> None:
    store = open_store("memory:")
    store.save_apply([backfill()], [instance("a1")], [], [], at=AT, **WHO)
    html = route(store, "/instances/a1")[1].decode()
    assert '<pre id=log data-instance="a1" data-attempt="" data-offset="0" data-live="1">' in html
    got = answer(store, "/api/instances/a1/live?attempt=&offset=0")
    assert got["live"] is True and got["running"] is False and got["attempt"] == ""
    assert "<tr><th>state</th><td>pending</td></tr>" in got["fields"]
    assert (got["from"], got["offset"], got["text"]) == (0, 0, "")

    first = tmp_path / "1.log"
    first.write_text("one\n")
    number = start(store, "a1")
    store.set_attempt_handle("a1", number, {}, str(first))
    got = answer(store, "/api/instances/a1/live?attempt=&offset=0")
    assert got["running"] is True and got["attempt"] == "1"
    assert "<tr><th>state</th><td>running</td></tr>" in got["fields"]
    assert '?attempt=1">1</a></td><td>running</td>' in got["attempts"]
    assert (got["from"], got["offset"], got["text"]) == (0, 4, "one\n")
    first.write_text("one\ntwo\n")
    got = answer(store, "/api/instances/a1/live?attempt=1&offset=4")
    assert (got["from"], got["offset"], got["text"]) == (4, 8, "two\n")

    store.end_attempt(  # a retry: the instance waits again
        "a1", number, attempt_state="failed", exit_code=1, message=HOSTILE,
        instance_state="pending", at=AT + 10, **WHO,
    )  # fmt: skip
    got = answer(store, "/api/instances/a1/live?attempt=1&offset=8")
    assert got["live"] is True and got["running"] is False
    assert '?attempt=1">1</a></td><td>failed</td><td>1</td>' in got["attempts"]
    assert ESCAPED in got["attempts"] and HOSTILE not in got["attempts"] + got["fields"]

    second = tmp_path / "2.log"
    second.write_text("again\n")
    number = start(store, "a1")
    store.set_attempt_handle("a1", number, {}, str(second))
    got = answer(store, "/api/instances/a1/live?attempt=1&offset=8")
    assert got["attempt"] == "2"  # another attempt's log: from its start
    assert (got["from"], got["offset"], got["text"]) == (0, 6, "again\n")
    end(store, "a1", number)
    got = answer(store, "/api/instances/a1/live?attempt=2&offset=6")
    assert got["live"] is False  # the page's last poll
    assert "<tr><th>state</th><td>succeeded</td></tr>" in got["fields"]
    assert '?attempt=2">2</a></td><td>succeeded</td><td>0</td>' in got["attempts"]
    html = route(store, "/instances/a1")[1].decode()
    assert 'data-attempt="2" data-offset="6" data-live="0">again\n</pre>' in html


def test_an_instance_left_waiting_behind_a_failure_is_followed_until_its_backfill_ended() -> None:
    store = open_store("memory:")
    store.save_apply([backfill()], [instance("a1"), instance("a2", day=2)], [], [], at=AT, **WHO)
    end(store, "a1", start(store, "a1"), "failed")
    assert answer(store, "/api/instances/a2/live?attempt=&offset=0")["live"] is True
    store.update_backfill("bf", at=AT + 20, finished_at=AT + 20, outcome="failed", **WHO)
    got = answer(store, "/api/instances/a2/live?attempt=&offset=0")
    assert got["live"] is False and "<tr><th>state</th><td>pending</td></tr>" in got["fields"]
    assert 'data-live="0"></pre>' in route(store, "/instances/a2")[1].decode()


def row(listing: str, name: str) -> str:
    """The row of backfill `name` in the list's table."""
    return listing.split(f">{name}</a></td>", 1)[1].split("</tr>", 1)[0]


def test_the_backfills_list_gets_every_row_as_it_changes() -> None:
    """The list at / follows the backfills as their pages do: their phase, progress and
    counts, and those applied since the page was loaded, in the page's own words. It
    never ends (a backfill may be applied any time), unlike one backfill's page."""
    store = open_store("memory:")
    store.save_apply([backfill()], [instance("a1"), instance("a2", day=2)], [], [], at=AT, **WHO)
    html = route(store, "/")[1].decode()
    assert '<script src="/static/backfills.js" defer></script>' in html
    code, script, kind = route(store, "/static/backfills.js")
    assert code == 200 and kind.startswith("text/javascript")
    assert "/api/live" in script.decode() and FOLLOW in script.decode()  # the pages' own
    assert "<div id=backfills data-live=1>" in html
    got = answer(store, "/api/live")
    assert got["live"] is True
    assert got["list"] in html  # as the page writes it
    assert "<td>Pending</td>" in row(got["list"], "bf")

    number = start(store, "a1")
    got = answer(store, "/api/live")
    assert "<td>Running</td>" in row(got["list"], "bf")
    assert "pending 1, running 1" in row(got["list"], "bf")

    end(store, "a1", number)
    end(store, "a2", start(store, "a2"))
    store.update_backfill("bf", at=AT + 20, finished_at=AT + 20, outcome="succeeded", **WHO)
    store.save_apply([backfill(HOSTILE)], [instance("h1", backfill=HOSTILE)], [], [], at=AT, **WHO)
    got = answer(store, "/api/live")
    assert got["live"] is True  # (a backfill applied later shows up)
    assert "<td>Succeeded</td>" in row(got["list"], "bf")
    assert "2/2" in row(got["list"], "bf")
    assert "<td>2024-03-20T01:00:20Z</td>" in row(got["list"], "bf")  # finished
    assert "<td>Pending</td>" in row(got["list"], ESCAPED)
    assert HOSTILE not in got["list"]
    assert got["list"] in route(store, "/")[1].decode()


def test_what_is_not_there_is_not_polled() -> None:
    store = open_store("memory:")
    assert route(store, "/api/backfills/nope/live")[0] == 404
    assert route(store, "/api/instances/nope/live")[0] == 404


def test_a_log_is_sent_in_whole_characters(tmp_path: Path) -> None:
    """A poll that sees a character half-written (a writer's buffer ends inside 本), or a
    read of at most LOG_TAIL bytes that ends inside one (é is two bytes): the bytes of
    that character wait for the next poll; no U+FFFD is made of a log that has none."""
    store = open_store("memory:")
    store.save_apply([backfill()], [instance("a1")], [], [], at=AT, **WHO)
    log = tmp_path / "1.log"
    log.write_bytes("日本".encode()[:4])
    number = start(store, "a1")
    store.set_attempt_handle("a1", number, {}, str(log))
    got = answer(store, "/api/instances/a1/live?attempt=&offset=0")
    assert (got["from"], got["offset"], got["text"]) == (0, 3, "日")
    assert 'data-offset="3" data-live="1">日</pre>' in route(store, "/instances/a1")[1].decode()
    long = "日本\n" + "é" * 40_000 + "\n"
    log.write_text(long)
    texts, offset = [], 3
    while True:
        got = answer(store, f"/api/instances/a1/live?attempt=1&offset={offset}")
        texts.append(got["text"])
        if got["offset"] == offset:
            break
        offset = got["offset"]
    assert offset == len(long.encode()) and "".join(["日", *texts]) == long

    end(store, "a1", number)
    log.write_bytes(b"x" + long.encode() + b"\xe6")  # ended inside a character: sent too
    html = route(store, "/instances/a1")[1].decode()
    shown = re.search(
        r"data-live=\"0\">\[the first (\d+) bytes are not shown\]\n([^<]*)</pre>", html
    )
    assert shown and "\ufffd" not in shown.group(2)[:-1] and shown.group(2).endswith("é\n\ufffd")
    got = answer(store, f"/api/instances/a1/live?attempt=1&offset={offset + 1}")
    assert (got["text"], got["offset"], got["live"]) == ("\ufffd", offset + 2, False)


def test_an_earlier_attempt_s_log_is_a_link_away(tmp_path: Path) -> None:
    """A retried instance: the page shows the latest attempt's log, and each attempt's
    number links to its own (?attempt=N), where the first failure's cause is."""
    store = open_store("memory:")
    store.save_apply([backfill()], [instance("a1")], [], [], at=AT, **WHO)
    for n, text in ((1, "first: table locked\n"), (2, "second: ok\n")):
        log = tmp_path / f"{n}.log"
        log.write_text(text)
        number = start(store, "a1")
        store.set_attempt_handle("a1", number, {}, str(log))
        if n == 1:  # a retry: the instance waits again
            end(store, "a1", number, "failed", instance_state="pending")
        else:
            end(store, "a1", number)
    html = route(store, "/instances/a1")[1].decode()
    assert '<td><a href="/instances/a1?attempt=1">1</a></td>' in html
    assert 'data-attempt="2" data-offset="11" data-live="0">second: ok\n</pre>' in html
    code, body, _ = route(store, "/instances/a1?attempt=1")
    first = body.decode()
    assert code == 200 and ">first: table locked\n</pre>" in first
    assert '<h2>Log of attempt 1 of 2 (<a href="/instances/a1">the latest</a>)</h2>' in first
    for bad, status in (("x", 400), ("3", 404), ("-1", 400)):
        code, body, _ = route(store, f"/instances/a1?attempt={bad}")
        assert code == status, body
