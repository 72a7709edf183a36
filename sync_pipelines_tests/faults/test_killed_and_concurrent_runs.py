"""Runs as worker processes (``run_job.py``): one SIGKILLed midway then run again, and two of
one source started at once. Afterwards the destination equals the sandbox's truth, nothing
duplicated. (Cars' and Odoo's SIGKILL cases through the Dagster CLI are
``cars/test_killed_run.py`` and ``odoo/test_killed_run.py``; they run with every test run.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from sync_pipelines_tests.faults.sources import SOURCES
from sync_pipelines_tests.processes import ROOT, kill_when

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

SLOW_LISTING = {"delay": 0.3, "times": None}


def start_run(source, mode: str) -> subprocess.Popen:
    job, run_config, partition = source.job(mode)
    args = [sys.executable, "-m", "sync_pipelines_tests.faults.run_job", job, json.dumps(run_config)]
    return subprocess.Popen(
        args + ([partition] if partition else []), cwd=ROOT, env=dict(os.environ), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )


@pytest.mark.parametrize("name", ["procore", "golioth"])
def test_a_run_killed_midway_then_run_again_lands_everything_once(name, make_source, tally):
    source = make_source(name)
    source.setup()
    source.add_fault("slow", **SLOW_LISTING)
    run = start_run(source, source.first_mode)
    try:
        kill_when(run, lambda: len(source.snapshot()) > 0, timeout=180)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == -signal.SIGKILL
    killed = source.compare()
    assert killed.lost and not killed.duplicated and not killed.extra, killed  # killed midway, nothing stray

    source.sandbox.faults.clear()
    again = source.run(source.first_mode)
    final = source.compare()
    tally(final)
    assert again.success, again.failure
    assert final.equal, final


@pytest.mark.parametrize("name", list(SOURCES))
def test_two_runs_of_one_source_started_at_once_land_everything_once(name, make_source, tally):
    source = make_source(name)
    source.setup()
    source.add_fault("slow", delay=0.05, times=None)  # long enough for the two runs to overlap
    runs = [start_run(source, source.first_mode) for _ in range(2)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    codes = [run.returncode for run in runs]
    print(f"{name}: two runs at once exited {codes}")
    assert 0 in codes, outputs  # at least one run lands; the other may fail cleanly, never half-write
    both = source.compare()
    assert not both.duplicated and not both.extra, both

    source.sandbox.faults.clear()
    again = source.run("incremental")
    final = source.compare()
    tally(final)
    assert again.success, again.failure
    assert final.equal, final
