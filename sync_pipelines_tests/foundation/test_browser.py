"""The Dagster UI in a real browser: headless Chromium (Debian's ``chromium``, which ``make
test`` installs when missing) driven by Playwright against ``make ui``'s webserver and daemon
(sandbox on loopback, SQLite in a tmp home, free ports). Schedules and sensors are stopped
first, so every run here is one the browser launched. Screenshots: ``test-artifacts/screenshots``
(``SYNC_TEST_ARTIFACTS`` moves it)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync_pipelines_tests.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CHROMIUM = "/usr/bin/chromium"
GROUPS = ("cars", "odoo", "procore", "golioth")
SHOTS = Path(os.environ.get("SYNC_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "screenshots"
RUN_WAIT_MS = 300_000  # a run on a busy 2-core CI machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["data"]


def _stop_every_schedule_and_sensor(home: Path) -> None:
    """Stored as stopped before the daemon starts: it then only serves the browser's launches."""
    from dagster import DagsterInstance
    from dagster._core.scheduler.instigation import (
        InstigatorStatus,
        InstigatorType,
        ScheduleInstigatorData,
        SensorInstigatorData,
    )

    from sync_pipelines.definitions import defs
    from sync_pipelines.instance import prepare_dagster_home
    from sync_pipelines.ui import store_instigator_state

    prepare_dagster_home(home)
    with DagsterInstance.from_config(str(home)) as instance:
        for s in defs.schedules:
            store_instigator_state(instance, s.name, InstigatorType.SCHEDULE, InstigatorStatus.STOPPED,
                                   ScheduleInstigatorData(s.cron_schedule))
        for s in defs.sensors:
            store_instigator_state(instance, s.name, InstigatorType.SENSOR, InstigatorStatus.STOPPED,
                                   SensorInstigatorData(min_interval=s.minimum_interval_seconds, sensor_type=s.sensor_type))


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[tuple[int, Path]]:
    """``python -m sync_pipelines.ui`` (what ``make ui`` runs) on free ports; (UI port, Dagster home)."""
    data = tmp_path_factory.mktemp("browser") / "data"
    home = data / "dagster_home"
    _stop_every_schedule_and_sensor(home)
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAGSTER_", "SYNC_", "ODOO_", "ENCAR_", "KBCHACHACHA_", "PROCORE_", "GOLIOTH_"))}
    env["SYNC_DATA_DIR"] = str(data)
    log = data / "ui.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sync_pipelines.ui", "--port", str(port), "--receiver-port", str(_free_port())],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if _graphql(port, "{ assetNodes { id } }")["assetNodes"]:
                    break
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(2)
        assert process.poll() is None, log.read_text()[-4000:]
        yield port, home
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, ui, request):
    from playwright.sync_api import expect

    port = ui[0]
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, base_url=f"http://127.0.0.1:{port}")
    page.set_default_timeout(60_000)
    # expect()'s own default is 5 s: too short for the graph of a busy 2-core CI machine
    expect.set_options(timeout=60_000)
    # On a first visit the UI asks to join its community, whenever it is ready to: Skip.
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    yield page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{request.node.name}-last.png"))
    page.close()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_asset_graph_shows_the_four_groups(page):
    from playwright.sync_api import expect

    page.goto("/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in GROUPS:  # the sidebar's tree of groups ...
        expect(page.get_by_role("button", name=f"asset_group {group} {group}")).to_be_visible()
    # ... and the graph's group nodes: the name above the count of its assets by status
    nodes = re.compile("".join(rf"(?=.*\n{group}\n+\d)" for group in GROUPS), re.S)
    deadline = time.monotonic() + 60
    while not nodes.match(page.inner_text("body")) and time.monotonic() < deadline:
        page.wait_for_timeout(1000)
    assert nodes.match(page.inner_text("body")), page.inner_text("body")[-2000:]
    _shot(page, "asset-graph")


def test_launchpad_runs_cars_sync_job_full_and_the_run_page_shows_its_metadata(page, ui):
    from playwright.sync_api import expect

    from sync_pipelines.cars.assets import run_config_for

    page.goto("/locations/sync_pipelines.definitions/jobs/cars_sync_job/playground")
    editor = page.locator(".CodeMirror")
    editor.wait_for()
    # The Launchpad's editor is CodeMirror: set the text through it (typing would auto-indent).
    config = json.dumps(run_config_for("full"))
    assert '"mode": "full"' in config
    page.evaluate("(text) => document.querySelector('.CodeMirror').CodeMirror.setValue(text)", config)
    _shot(page, "launchpad-cars-full")
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}"))
    run_id = page.url.rsplit("/", 1)[-1].split("?")[0]
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_WAIT_MS)

    # the event log filtered to the materializations, each with its metadata entries
    log_filter = page.get_by_placeholder("Filter…")
    log_filter.fill("type:ASSET_MATERIALIZATION")
    log_filter.press("Enter")
    expect(page.get_by_text("Materialized value encar_listings.")).to_be_visible()
    for label in ("inserted", "pages_fetched", "status_checked"):
        expect(page.get_by_text(label, exact=True).first).to_be_visible()
    _shot(page, "run-cars-full-materializations")

    run = _graphql(ui[0], f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status runConfigYaml }} }} }}')["runOrError"]
    assert run["status"] == "SUCCESS" and "full" in run["runConfigYaml"], run


def test_golioth_partition_range_backfill_from_the_ui_completes(page, ui):
    from dagster import DagsterInstance
    from dagster._core.execution.backfill import BulkActionStatus
    from playwright.sync_api import expect

    today = dt.datetime.now(dt.timezone.utc).date()
    first, last = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    page.goto("/assets/golioth_telemetry")
    page.locator("button", has_text="Materialize").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize golioth_telemetry")).to_be_visible()
    # partitions: day x integration; two days of the seeded integration `sandbox`
    days = dialog.get_by_placeholder(re.compile(r"^ex: "))
    days.fill(f"[{first:%Y-%m-%d}...{last:%Y-%m-%d}]")
    days.press("Enter")
    dialog.get_by_role("button", name="All", exact=True).nth(1).click()  # every integration
    expect(dialog.get_by_text("2 partitions", exact=True)).to_be_visible()
    _shot(page, "golioth-backfill-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()

    home = ui[1]
    deadline, backfill = time.monotonic() + RUN_WAIT_MS / 1000, None
    while time.monotonic() < deadline:
        with DagsterInstance.from_config(str(home)) as instance:
            backfills = instance.get_backfills()
        backfill = backfills[0] if backfills else None
        if backfill and backfill.status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
            break
        time.sleep(3)
    assert backfill is not None and backfill.status in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED), backfill
    assert backfill.asset_selection and [k.to_user_string() for k in backfill.asset_selection] == ["golioth_telemetry"]
    # the only telemetry writer here (schedules and sensors, the webhook drain too, are stopped)
    with sqlite3.connect(home.parent / "warehouse.sqlite") as db:
        assert db.execute("SELECT count(*) FROM device_telemetry_history").fetchone()[0] > 0

    page.goto(f"/runs/b/{backfill.backfill_id}")
    expect(page.get_by_text("golioth_telemetry").first).to_be_visible()
    for day in (first, last):  # the partitions targeted, day|integration
        expect(page.get_by_text(f"{day:%Y-%m-%d}|sandbox", exact=True)).to_be_visible()
    expect(page.get_by_text("100% completed")).to_be_visible()
    _shot(page, "golioth-backfill-completed")
