"""`make ui` (``python -m sync_pipelines.demo --ui``): the Dagster UI serves the demo's runs,
and Ctrl-C or SIGTERM stops the UI, its daemon and the sandbox, leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from sync_pipelines_tests.processes import ROOT

pytestmark = pytest.mark.timeout(240)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runs(port: int) -> list[dict]:
    query = json.dumps({"query": "{ runsOrError { ... on Runs { results { jobName status } } } }"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=query, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["data"]["runsOrError"]["results"]


def test_ui_serves_the_demo_runs_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ODOO_", "ENCAR_", "KBCHACHACHA_"))}
    env["SYNC_DATA_DIR"] = str(tmp_path)
    ui = subprocess.Popen(
        [sys.executable, "-m", "sync_pipelines.demo", "--ui", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
        # started the way a non-interactive shell starts background jobs: SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline, runs = time.monotonic() + 150, []
        while time.monotonic() < deadline and ui.poll() is None:
            try:
                runs = _runs(port)
            except OSError:
                time.sleep(1)
                continue
            if len(runs) >= 4:
                break
            time.sleep(1)
        assert ui.poll() is None, ui.communicate()[0][-3000:]
        demo_jobs = {r["jobName"] for r in runs if r["status"] == "SUCCESS"}
        assert {"cars_sync_job", "cars_archive_job", "odoo_sync_job", "odoo_archive_job"} <= demo_jobs, runs
        ui.send_signal(signal.SIGTERM)  # what a supervisor sends; Ctrl-C takes the same path
        output = ui.communicate(timeout=90)[0]
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
    assert f"Dagster UI: http://127.0.0.1:{port}" in output
    with pytest.raises(OSError):
        _runs(port)  # the UI is gone
    leftovers = subprocess.run(["pgrep", "-f", "--", f"dagster dev -m sync_pipelines.definitions -p {port}"], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "dagster dev outlived the demo"
