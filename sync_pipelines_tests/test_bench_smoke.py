"""Every benchmark script still runs, at a tiny size, with its correctness assertions on.

Timings are never asserted: the ratio targets are the scripts' business (``--no-targets``);
an exit code other than 0 here is a broken benchmark or a destination that is wrong.
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


def _run(pg_server: str, *args: str) -> str:
    env = {**os.environ, "SYNC_BENCH_PG_URL": pg_server}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_upsert_bench_runs(pg_server):
    out = _run(pg_server, str(BENCH / "upsert_vs_copy.py"), "--rows", "500", "--repeat", "1", "--no-targets")
    assert "no-change pass 1: unchanged=500 updated=0 n_tup_upd delta=0" in out


def test_sources_bench_runs(pg_server):
    out = _run(pg_server, str(BENCH / "sources.py"), "--cars", "60", "--odoo-invoices", "150",
               "--golioth-points", "1000", "--no-rss", "--no-dagster", "--status-checks", "0")
    for source in ("cars", "odoo", "golioth"):
        assert f"| {source} |" in out


def test_dlt_bench_runs(pg_server):
    if not DLT_PYTHON.exists():
        # dlt is installed by `make bench` only (never a product dependency): check the scripts parse
        for script in ("dlt_peer.py", "dlt_load.py"):
            py_compile.compile(str(BENCH / script), doraise=True)
        pytest.skip(f"{DLT_PYTHON} absent (make bench installs it); scripts compile")
    out = _run(pg_server, str(BENCH / "dlt_peer.py"), "--invoices", "150")
    assert "| 1% changed |" in out
