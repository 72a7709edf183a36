"""Every benchmark script still runs, at a tiny size, with its correctness assertions on.

The three scripts run at once (each is mostly waiting on Postgres and its sandbox). Timings
are never asserted: ``--no-targets`` turns the upsert bench's ratio targets off; an exit
code other than 0 here is a broken benchmark or a destination that differs from the sandbox.
"""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
DLT_PYTHON = BENCH.parent / ".venv-dlt" / "bin" / "python"

RUNS = {
    "upsert_vs_copy.py": (["--rows", "500", "--repeat", "1", "--no-targets"],
                          ("no-change pass 1: unchanged=500 updated=0 n_tup_upd delta=0",)),
    "sources.py": (["--cars", "60", "--odoo-invoices", "150", "--golioth-points", "1000", "--no-rss",
                    "--no-dagster", "--no-warmup", "--status-checks", "0", "--procore-connections", "2",
                    "--procore-rfis", "3", "--procore-projects", "2", "--repeat", "2"], ("| golioth | 1,", "| procore | 12 |")),
    "dlt_peer.py": (["--invoices", "150"], ("| 1% changed |",)),
}


@pytest.mark.slow
def test_every_bench_script_runs_at_a_tiny_size(pg_server):
    env = {**os.environ, "SYNC_BENCH_PG_URL": pg_server}
    runs = dict(RUNS)
    if not DLT_PYTHON.exists():
        # dlt is installed by `make bench` only (never a product dependency): the scripts must parse
        for script in ("dlt_peer.py", "dlt_load.py"):
            py_compile.compile(str(BENCH / script), doraise=True)
        runs.pop("dlt_peer.py")
    procs = {
        script: subprocess.Popen([sys.executable, str(BENCH / script), *args], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for script, (args, _) in runs.items()
    }
    outputs = {script: proc.communicate(timeout=180) for script, proc in procs.items()}
    for script, (out, err) in outputs.items():
        assert procs[script].returncode == 0, f"{script}:\n{out[-3000:]}\n{err[-3000:]}"
        for expected in runs[script][1]:
            assert expected in out, f"{script}:\n{out[-3000:]}"
