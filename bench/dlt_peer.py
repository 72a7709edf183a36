"""Benchmark: the Odoo invoice load against dlt 1.31 doing the same (``merge`` on ``id`` into Postgres).

    python bench/dlt_peer.py --invoices 100000       # needs .venv-dlt (make bench creates it)

Pass 1 loads every invoice into an empty database; pass 2 loads them all again after 1% of
them changed. Our side is the Odoo sync's full mode through the functions the asset calls;
dlt's side replays the very requests our run made (same pages, bare requests) and loads the
records with dlt, in a process of its own (dlt is not a product dependency), timed inside it
after its imports. Both destinations are checked against the sandbox's truth (ids, refs).
Target: ours at least 5x faster on both passes. Exits 1 when a destination is wrong.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import BENCH, BenchFailure, SandboxProcess, check, migrated_template, scratch_database  # noqa: E402
from sources import migrate, odoo_sync, odoo_verify  # noqa: E402

ROOT = BENCH.parent
DLT_PYTHON = ROOT / ".venv-dlt" / "bin" / "python"


def run_dlt(base_url: str, recorded: list[dict], url: str, pipelines_dir: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(recorded, f)
    # dlt insists on a password; the bench server trusts loopback, so any will do.
    parsed = sa.engine.make_url(url)
    pg_url = parsed.set(drivername="postgresql", password=parsed.password or "unused").render_as_string(hide_password=False)
    out = subprocess.run([str(DLT_PYTHON), str(BENCH / "dlt_load.py"), base_url, f.name, pg_url, pipelines_dir],
                         capture_output=True, text=True)
    Path(f.name).unlink()
    if out.returncode:
        raise BenchFailure(f"dlt failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def dlt_verify(url: str, truth: dict) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        got = {str(r.id): r.ref for r in conn.execute(sa.text("SELECT id, ref FROM dlt_odoo.odoo_invoices"))}
        rows = conn.execute(sa.text("SELECT count(*) FROM dlt_odoo.odoo_invoices")).scalar_one()
    engine.dispose()
    want = truth["odoo_invoices"]
    check(rows == len(got) == len(want), f"dlt: {rows} rows, {len(got)} ids, sandbox has {len(want)}")
    wrong = [k for k, v in want.items() if (got.get(k) or None) != v]
    check(not wrong, f"dlt: ref differs from the sandbox for ids {wrong[:5]}")
    return rows


def timed_pass(sandbox: SandboxProcess, ours_url: str, dlt_url: str, pipelines_dir: str, size: int) -> dict:
    mark = sandbox.log_count()
    started = time.perf_counter()
    odoo_sync(ours_url, "full")
    ours_s = time.perf_counter() - started
    recorded = sandbox.requests_since(mark)
    truth = sandbox.truth()
    rows = odoo_verify(ours_url, truth, size)
    dlt_s = run_dlt(sandbox.base_url, recorded, dlt_url, pipelines_dir)
    dlt_verify(dlt_url, truth)
    return {"rows": rows, "ours_s": ours_s, "dlt_s": dlt_s, "requests": len(recorded)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--change-every", type=int, default=100, help="pass 2 changes every n-th invoice (1%)")
    args = parser.parse_args()
    check(DLT_PYTHON.exists(), f"{DLT_PYTHON} missing: make bench installs dlt[postgres]==1.31.* there")
    passes = {}
    try:
        with (migrated_template(), SandboxProcess(odoo_invoices=args.invoices) as sandbox,
              tempfile.TemporaryDirectory() as pipelines):
            sandbox.apply_env()
            with scratch_database() as warm:
                odoo_sync(warm, "full")  # fills the sandbox's answer cache for pass 1; untimed
            with scratch_database() as ours, scratch_database() as peer:
                migrate(ours)
                passes["load"] = timed_pass(sandbox, ours, peer, pipelines, args.invoices)
                changed = sandbox.post("odoo-change", {"every": args.change_every})["changed"]
                with scratch_database() as warm:
                    odoo_sync(warm, "full")  # the changed answers, cached; untimed
                passes["1% changed"] = timed_pass(sandbox, ours, peer, pipelines, args.invoices)
                passes["1% changed"]["changed"] = changed
    except BenchFailure as exc:
        print(f"FAILED {exc}")
        return 1
    print("\n| pass | rows | ours s | dlt s | ours rows/s | dlt rows/s | dlt / ours |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    met = True
    for name, p in passes.items():
        speedup = p["dlt_s"] / p["ours_s"]
        met = met and speedup >= 5
        print(f"| {name} | {p['rows']:,} | {p['ours_s']:.2f} | {p['dlt_s']:.2f} | {p['rows'] / p['ours_s']:,.0f} | "
              f"{p['rows'] / p['dlt_s']:,.0f} | {speedup:.1f}x |")
    print(f"\n{passes['1% changed']['changed']:,} invoices changed before pass 2; "
          f"{passes['load']['requests']} requests per pass; target: ours >= 5x faster on both passes: "
          f"{'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
