"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (explicit paths: nothing is downloaded). A store filled by a real
run; a live one with a real controller. Screenshots go to $BACKFILLCTL_ARTIFACTS (else
the test's directory).

Chromium comes from the project's own setup (tests/tools/install-chromium, run by
.ci/run); without it the tests fail under CI=true and are skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from backfill_ctl.serve import Server
from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.cli.helpers import run
from tests.serve.test_dashboard import HOSTILE
from tests.test_reliability import controller, specs, wait_until

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from backfill_ctl.core.records import InstanceRecord

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
RED = "rgba(198, 40, 40, 1)"  # .s-failed
GREEN = "rgba(46, 125, 50, 1)"  # .s-succeeded
BLUE = "rgba(21, 101, 192, 1)"  # .s-running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and DRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("no Chromium: tests/tools/install-chromium installs it (root, apt)")
        pytest.skip("no Chromium here: tests/tools/install-chromium installs it")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-quic", "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("BACKFILLCTL_ARTIFACTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("browser")
    command = 'echo "note: $BACKFILL_PARAM_NOTE"; [ "$BACKFILL_BIZDATE" != 20240302 ]'
    spec_dir = specs(
        root,
        node("load", resourceGroup="rg", command=command, parameters={"note": HOSTILE}),
        node("report", upstream=["load"], resourceGroup="rg", command="echo report"),
        backfill(
            select={"method": "descendants", "roots": ["load"]},
            dates=[{"from": "2024-03-01", "to": "2024-03-05"}],
        ),
    )
    db = root / "state.db"
    assert run("apply", str(spec_dir), "--state", str(db), "--wait", "--timeout", "60s").exit_code
    server = Server(("127.0.0.1", 0), lambda: open_store(db, create=False))
    yield server.url
    server.stop()


def background(driver: WebDriver, css: str) -> str:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, css)
    return str(element.value_of_css_property("background-color"))


def test_from_the_backfills_to_a_failed_instance_s_log(
    browser: WebDriver, failed_run: str, tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.alert import Alert
    from selenium.webdriver.common.by import By

    d = browser
    d.get(failed_run + "/")
    assert d.title == "Backfills · backfillctl"
    d.save_screenshot(str(artifacts(tmp_path) / "backfills.png"))
    d.find_element(By.LINK_TEXT, "bf").click()
    assert d.title == "Backfill bf · backfillctl"
    d.save_screenshot(str(artifacts(tmp_path) / "grid.png"))
    assert background(d, 'a[data-cell="load|2024-03-01"]') == GREEN
    assert background(d, 'a[data-cell="load|2024-03-02"]') == RED
    for later in ("2024-03-03", "2024-03-04", "2024-03-05"):
        cell = d.find_element(By.CSS_SELECTOR, f'a[data-cell="load|{later}"]')
        assert "s-blocked" in cell.get_attribute("class")
        assert "repeating-linear-gradient" in cell.value_of_css_property("background-image")
    report = d.find_element(By.CSS_SELECTOR, 'a[data-cell="report|2024-03-02"]')
    assert "s-blocked" in report.get_attribute("class")  # behind its failed upstream

    d.find_element(By.CSS_SELECTOR, 'a[data-cell="load|2024-03-02"]').click()
    assert d.title.startswith("Instance ")
    log = d.find_element(By.ID, "log").text
    assert log == f"note: {HOSTILE}"  # the markup is text on the page
    page = d.find_element(By.TAG_NAME, "body").text
    assert f"BACKFILL_PARAM_NOTE {HOSTILE}" in page
    assert not d.find_elements(By.CSS_SELECTOR, "img")
    with pytest.raises(NoAlertPresentException):
        Alert(d).text  # noqa: B018 - no script ran
    d.save_screenshot(str(artifacts(tmp_path) / "instance.png"))


def fill(driver: WebDriver, css: str) -> str:
    """The computed fill of a visible SVG shape."""
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, css)
    assert element.is_displayed() and element.size["width"] > 0 and element.size["height"] > 0
    return str(element.value_of_css_property("fill"))


def test_the_gantt_and_the_scope_show_the_failed_date_and_what_it_blocks(
    browser: WebDriver, failed_run: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    d.get(failed_run + "/backfills/bf")
    assert fill(d, 'svg.gantt rect[data-date="2024-03-01"]') == "rgb(46, 125, 50)"  # green
    assert fill(d, 'svg.gantt rect[data-date="2024-03-02"]') == "rgb(198, 40, 40)"  # red
    assert not d.find_elements(By.CSS_SELECTOR, 'svg.gantt rect[data-date="2024-03-03"]')
    bar = d.find_element(By.CSS_SELECTOR, 'svg.gantt rect[data-date="2024-03-02"] title')
    assert bar.get_attribute("textContent").startswith("2024-03-02 (group 0): failed, ")
    assert fill(d, 'svg.dag a[data-node="load"] rect') == "rgb(198, 40, 40)"  # its worst: failed
    assert fill(d, 'svg.dag a[data-node="report"] rect') == 'url("#hatch")'  # blocked
    d.find_element(By.CSS_SELECTOR, "svg.dag").screenshot(str(artifacts(tmp_path) / "dag.png"))
    d.find_element(By.CSS_SELECTOR, 'svg.dag a[data-node="report"]').click()
    wait_until(lambda: d.current_url.endswith("/backfills/bf?node=report"), 10, "the filter")
    rows = {c.get_attribute("data-cell").split("|")[0] for c in d.find_elements(
        By.CSS_SELECTOR, "a[data-cell]")}  # fmt: skip
    assert rows == {"report"}
    d.save_screenshot(str(artifacts(tmp_path) / "filtered.png"))


@contextlib.contextmanager
def running_one(
    tmp_path: Path, name: str, command: str, dates: tuple[str, ...] = ("2024-03-01",)
) -> Iterator[tuple[str, InstanceRecord]]:
    """`name` over `dates` (one date group), its `command` run by a real controller and
    held until tmp_path/release exists; the dashboard's URL and the first running
    instance. At the end the command is released (nothing lingers), the server and the
    controller stop."""
    spec_dir = specs(
        tmp_path,
        node(name, resourceGroup="rg", command=command),
        backfill(select={"method": "descendants", "roots": [name]}, dates=list(dates)),
    )
    db = tmp_path / "state.db"
    assert run("apply", str(spec_dir), "--state", str(db)).exit_code == 0
    process = controller(spec_dir, db, tmp_path / "controller.log")
    server = Server(("127.0.0.1", 0), lambda: open_store(db, create=False))
    try:
        store = open_store(db)
        (instance,) = wait_until(
            lambda: store.instances(states=["running"]), 30, "the instance to run"
        )
        yield server.url, instance
    finally:
        (tmp_path / "release").touch()
        server.stop()
        process.terminate()
        process.wait(20)


HELD = "while [ ! -e release ]; do sleep 0.05; done"  # the command's directory: tmp_path


def test_a_running_instance_turns_succeeded_without_a_reload(
    browser: WebDriver, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    with running_one(tmp_path, "wait", f"cd '{tmp_path}'; {HELD}; echo done") as (url, _):
        d.get(url + "/backfills/bf")
        d.execute_script("window.notReloaded = true")
        assert background(d, 'a[data-cell="wait|2024-03-01"]') == BLUE
        (tmp_path / "release").touch()
        wait_until(
            lambda: background(d, 'a[data-cell="wait|2024-03-01"]') == GREEN,
            20,
            "the cell to turn green",
        )
        assert d.execute_script("return window.notReloaded") is True
        d.save_screenshot(str(artifacts(tmp_path) / "live.png"))
        cell = d.find_element(By.CSS_SELECTOR, 'a[data-cell="wait|2024-03-01"]')
        assert cell.get_attribute("title") == "wait 2024-03-01: succeeded 1"


def test_a_running_attempt_s_log_is_followed_on_its_page(
    browser: WebDriver, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    command = f"cd '{tmp_path}'; echo one; {HELD}; echo '<b>two</b>'"
    with running_one(tmp_path, "talk", command) as (url, instance):
        store = open_store(tmp_path / "state.db")
        attempt = wait_until(  # started: its log's place recorded
            lambda: [a for a in store.attempts(instance.id) if a.log], 10, "its attempt"
        )[-1]
        wait_until(lambda: Path(attempt.log or "").exists(), 10, "its log")
        wait_until(lambda: Path(attempt.log or "").read_text() == "one\n", 10, "one")
        d.get(url + f"/instances/{instance.id}")
        d.execute_script("window.notReloaded = true")
        pre = d.find_element(By.ID, "log")
        assert pre.text == "one" and pre.get_attribute("data-live") == "1"
        (tmp_path / "release").touch()
        wait_until(lambda: pre.text == "one\n<b>two</b>", 20, "the second line")
        wait_until(lambda: pre.get_attribute("data-live") == "0", 20, "the end")
        assert d.execute_script("return window.notReloaded") is True
        assert not d.find_elements(By.CSS_SELECTOR, "pre b")  # text, not markup
        d.save_screenshot(str(artifacts(tmp_path) / "follow.png"))


def text(driver: WebDriver, xpath: str) -> str:
    """The text of the first element at `xpath`, or "": read again when the page's script
    replaced the element between finding and reading it (a live refresh)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(10):
        found = driver.find_elements(By.XPATH, xpath)
        try:
            return str(found[0].text) if found else ""
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{xpath} was replaced ten times in a row while it was read")


def polls(driver: WebDriver) -> int:
    """How many requests the page's script made to the dashboard's JSON endpoints."""
    return int(
        driver.execute_script(
            "return performance.getEntriesByType('resource')"
            ".filter(function (e) { return e.name.indexOf('/api/') >= 0; }).length"
        )
    )


# Each date held until tmp_path/release-YYYYMMDD (or release, for all) exists.
HELD_BY_DATE = 'while [ ! -e release ] && [ ! -e "release-$BACKFILL_BIZDATE" ]; do sleep 0.05; done'
STATUS = "//h1/following-sibling::p[1]"  # phase, progress, counts
LANE = "//h2[.='Date groups']/following-sibling::table[1]//tr[td][1]"  # group 0


def test_a_running_backfill_s_whole_page_follows_it_and_stops_when_it_ends(
    browser: WebDriver, tmp_path: Path
) -> None:
    """Not only the grid's cells: the phase, counts, lanes, Gantt and scope follow the
    run, a date added by a re-apply appears, and once the backfill has ended the page
    shows it and polls no more."""
    from selenium.webdriver.common.by import By

    d = browser
    command = f"cd '{tmp_path}'; {HELD_BY_DATE}; echo done"
    dates = ("2024-03-01", "2024-03-02")
    with running_one(tmp_path, "wait", command, dates) as (url, _):
        d.get(url + "/backfills/bf")
        d.execute_script("window.notReloaded = true")
        assert text(d, STATUS).startswith("Running")
        assert "2024-03-01 date 1 of 2 running 1" in text(d, LANE)

        spec_dir = specs(  # a re-apply adds a date
            tmp_path,
            node("wait", resourceGroup="rg", command=command),
            backfill(
                select={"method": "descendants", "roots": ["wait"]},
                dates=[*dates, "2024-03-03"],
            ),
        )
        assert run("apply", str(spec_dir), "--state", str(tmp_path / "state.db")).exit_code == 0
        new = 'a[data-cell="wait|2024-03-03"]'
        wait_until(lambda: d.find_elements(By.CSS_SELECTOR, new), 20, "the new date's column")
        wait_until(lambda: "date 1 of 3" in text(d, LANE), 20, "the lane's three dates")

        (tmp_path / "release-20240301").touch()
        wait_until(lambda: "2024-03-02 date 2 of 3 running 1" in text(d, LANE), 20, "the next date")
        assert "succeeded 1" in text(d, STATUS)
        wait_until(
            lambda: fill(d, 'svg.gantt rect[data-date="2024-03-01"]') == "rgb(46, 125, 50)",
            20,
            "the first date's bar",
        )

        (tmp_path / "release").touch()
        wait_until(lambda: text(d, STATUS).startswith("Succeeded"), 20, "the phase Succeeded")
        assert "all done" in text(d, LANE)
        assert fill(d, 'svg.dag a[data-node="wait"] rect') == "rgb(46, 125, 50)"
        assert background(d, 'a[data-cell="wait|2024-03-03"]') == GREEN
        assert d.execute_script("return window.notReloaded") is True
        d.save_screenshot(str(artifacts(tmp_path) / "finished.png"))
        ended = polls(d)
        time.sleep(5)  # twice the interval: no more polling
        assert polls(d) == ended


def test_a_running_instance_s_state_and_attempts_follow_it_until_it_ends(
    browser: WebDriver, tmp_path: Path
) -> None:
    d = browser
    with running_one(tmp_path, "wait", f"cd '{tmp_path}'; {HELD}; echo done") as (url, instance):
        d.get(url + f"/instances/{instance.id}")
        d.execute_script("window.notReloaded = true")
        state = "//th[.='state']/following-sibling::td[1]"
        attempt = "//h2[.='Attempts']/following-sibling::table[1]//tr[td][1]"
        assert text(d, state) == "running"
        assert re.match(r"1 (starting|running) ", text(d, attempt))  # the backend's answer
        (tmp_path / "release").touch()
        wait_until(lambda: text(d, state) == "succeeded", 20, "the state succeeded")
        wait_until(lambda: text(d, attempt).startswith("1 succeeded 0 "), 20, "the attempt's end")
        assert d.execute_script("return window.notReloaded") is True
        ended = polls(d)
        time.sleep(3)  # the log's follower polls every second: no more
        assert polls(d) == ended


def row(driver: WebDriver, name: str) -> str:
    """The text of backfill `name`'s row on the list at / ("" if none), on one line."""
    return " ".join(text(driver, f"//table[@class='list']//tr[td/a[.='{name}']]").split())


def test_the_backfills_list_follows_them_and_shows_one_applied_meanwhile(
    browser: WebDriver, tmp_path: Path
) -> None:
    """The list at / without a reload: a running backfill's phase, progress and counts
    as it ends, and a backfill applied after the page was loaded."""
    d = browser
    command = f"cd '{tmp_path}'; {HELD}; echo done"
    with running_one(tmp_path, "wait", command) as (url, _):
        d.get(url + "/")
        d.execute_script("window.notReloaded = true")
        assert re.search(r"^bf Running 0/1 running 1 ", row(d, "bf")), row(d, "bf")
        assert row(d, "later") == ""
        select = {"method": "descendants", "roots": ["wait"]}
        spec_dir = specs(  # a second Backfill, applied now
            tmp_path,
            node("wait", resourceGroup="rg", command=command),
            backfill(select=select, dates=["2024-03-01"]),
            backfill("later", select=select, dates=["2024-03-05"]),
        )
        assert run("apply", str(spec_dir), "--state", str(tmp_path / "state.db")).exit_code == 0
        wait_until(lambda: row(d, "later").startswith("later "), 20, "the new row")

        (tmp_path / "release").touch()
        for name in ("bf", "later"):
            wait_until(
                lambda name=name: re.search(rf"^{name} Succeeded 1/1 succeeded 1 ", row(d, name)),
                30,
                f"{name} to show Succeeded",
            )
        assert d.execute_script("return window.notReloaded") is True
        d.save_screenshot(str(artifacts(tmp_path) / "list.png"))
