"""Run the Dagster CLI as a separate process, and kill it midway: what a crashed worker,
an OOM kill or a pulled plug does to a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dagster_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``dagster <args>`` from the repository root in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the kill reaches the run's step subprocesses too
        # Ctrl-C works as in a terminal even when the tests run from a shell that ignores SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> None:
    """SIGKILL the process group as soon as ``ready()`` holds; fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the run ended (exit {process.returncode}) before it could be killed:\n{output[-3000:]}")
        if ready():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("the run never reached the point where it should be killed")
