"""`make ui` (``python -m sync_pipelines.ui``): the daemon's first ticks sync every source
against the live sandbox, the sandbox's webhook sender reaches the receiver, and SIGTERM
stops every process it started."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from sync_pipelines_tests.processes import ROOT

pytestmark = pytest.mark.timeout(420)
SOURCES = ("cars", "odoo", "golioth", "procore")
DAEMON_TAGS = ("dagster/schedule_name", "dagster/sensor_name")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict | None = None, timeout: float = 30) -> dict:
    data = json.dumps(payload or {}).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.load(answer)


def _asset_groups(port: int) -> set[str]:
    query = "{ assetNodes { groupName } }"
    return {n["groupName"] for n in _post(f"http://127.0.0.1:{port}/graphql", {"query": query})["data"]["assetNodes"]}


def _instigator_states(port: int) -> dict[str, str]:
    """Every schedule's and sensor's status as the UI shows it."""
    query = ("{ repositoriesOrError { ... on RepositoryConnection { nodes { "
             "schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } }")
    [repository] = _post(f"http://127.0.0.1:{port}/graphql", {"query": query})["data"]["repositoriesOrError"]["nodes"]
    return {**{s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]},
            **{s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}}


def _daemon_synced_sources(home: Path) -> set[str]:
    """Sources with a successful ``<source>_sync_job`` run launched by a schedule or sensor."""
    if not (home / "storage").is_dir():
        return set()
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
    return {
        run.job_name.removesuffix("_sync_job") for run in runs
        if run.job_name.endswith("_sync_job") and run.status == DagsterRunStatus.SUCCESS
        and any(tag in run.tags for tag in DAEMON_TAGS)
    }


def _sessions(*sids: int) -> dict[int, str]:
    """Processes (pid -> command) of these sessions."""
    listing = subprocess.run(["ps", "-e", "-o", "pid=,sid=,args="], capture_output=True, text=True, check=True).stdout
    rows = (line.split(None, 2) for line in listing.splitlines())
    return {int(r[0]): r[2] if len(r) > 2 else "" for r in rows if len(r) >= 2 and int(r[1]) in sids}


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.mark.slow
def test_make_ui_syncs_every_source_by_the_daemon_and_stops_on_sigterm(tmp_path):
    assert "\t$(PY) -m sync_pipelines.ui $(UI_ARGS)\n" in (ROOT / "Makefile").read_text()  # the command run here
    port, receiver_port, log = _free_port(), _free_port(), tmp_path / "ui.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAGSTER_", "SYNC_", "ODOO_", "ENCAR_", "KBCHACHACHA_", "PROCORE_", "GOLIOTH_"))}
    env["SYNC_DATA_DIR"] = str(tmp_path / "data")
    home = tmp_path / "data" / "dagster_home"
    with open(log, "w") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "sync_pipelines.ui", "--port", str(port), "--receiver-port", str(receiver_port),
             "--evolve-every", "5"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            # started the way a non-interactive shell starts background jobs: SIGINT ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        deadline, synced, groups = time.monotonic() + 300, set(), set()
        while time.monotonic() < deadline and ui.poll() is None and not (set(SOURCES) <= synced and groups):
            time.sleep(3)
            synced = _daemon_synced_sources(home)
            try:
                groups = groups or _asset_groups(port)
            except OSError:
                pass
        output = _read(log)
        assert ui.poll() is None, output[-4000:]
        assert set(SOURCES) <= synced, (synced, output[-4000:])
        assert {"cars", "odoo", "procore", "golioth"} <= groups
        states = _instigator_states(port)  # every schedule and sensor of the code location is on
        assert {f"{source}_sync_schedule" for source in SOURCES} <= set(states)
        assert set(states.values()) == {"RUNNING"}, states
        assert f"Dagster UI: http://127.0.0.1:{port}" in output

        # the sandbox's devices post to the receiver, with the session's token (202: stored)
        sandbox_url = re.search(r"sandbox APIs \(.*\) at (http://127\.0\.0\.1:\d+)", output)[1]
        _post(f"{sandbox_url}/_sandbox/golioth/emit", {"count": 1, "devices": 2, "project": "sandbox-project"})
        _post(f"{sandbox_url}/_sandbox/golioth/deliver")  # (or the sender's own delivery after an evolve)
        stats = _post(f"{sandbox_url}/_sandbox/golioth/stats")["result"]
        assert stats["statuses"].get("202", 0) >= 2, stats

        dev = int(subprocess.run(["pgrep", "-P", str(ui.pid), "-f", "dagster dev"], capture_output=True,
                                 text=True).stdout.split()[0])
        token = re.search(rb"GOLIOTH_WEBHOOK_TOKEN=([^\0]+)", Path(f"/proc/{dev}/environ").read_bytes())[1].decode()
        started = _sessions(ui.pid, dev)
        assert len(started) >= 5, started  # us, dagster dev, its code server, webserver, daemon

        ui.send_signal(signal.SIGTERM)  # what a supervisor sends; Ctrl-C takes the same path
        ui.wait(timeout=120)
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
    left = _sessions(ui.pid, dev)
    survivors = {pid: cmd for pid, cmd in started.items() if os.path.exists(f"/proc/{pid}")}
    assert left == {} and survivors == {}, (left, survivors)
    with pytest.raises(OSError):
        _asset_groups(port)  # the UI is gone
    assert token not in _read(log)  # the session's webhook token is never printed
