"""Benchmark: the Odoo invoice load against dlt 1.31 doing the same (``merge`` on ``id`` into
Postgres), and both against the floor of any loader.

    python bench/dlt_peer.py --invoices 100000       # needs .venv-dlt (make bench creates it)

Pass 1 loads every invoice into an empty database; pass 2 loads them all again after 1% of
them changed. Our side is the Odoo sync's full mode through the functions the asset calls;
dlt's side replays the very requests our run made (same pages, bare requests) and loads the
records with dlt, in a process of its own (dlt is not a product dependency), timed inside it
after its imports. dlt loads the rows our sync stores (the same columns, typed alike, and
``raw``, the record as Odoo sent it, as json): equal work. The floor, in the same pass, is
those requests with a bare requests.Session plus one plain COPY of our rows into an empty
table (harness.floor_run, as in sources.py): no loader of these rows can beat it, so
``dlt / floor`` bounds how much faster than dlt any loader can be here.
After each pass both destinations are checked against the sandbox's truth (ids, refs) and
dlt's rows against ours (amounts, write_date, raw). Target: ours at least 5x faster on both
passes. Exits 1 when a destination is wrong.
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
from harness import (  # noqa: E402
    BENCH,
    BenchFailure,
    SandboxProcess,
    check,
    floor_run,
    migrated_template,
    read_rows,
    scratch_database,
)
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


COMPARED = "SELECT id, ref, amount_total, invoice_date, write_date, partner_name, currency, raw FROM {}"


def dlt_verify(url: str, truth: dict, ours_url: str) -> int:
    """dlt's table holds the sandbox's invoices, each row equal to ours in the compared columns."""
    got = _rows(url, COMPARED.format("dlt_odoo.odoo_invoices"))
    want = truth["odoo_invoices"]
    check(len(got) == len(want), f"dlt: {len(got)} rows, sandbox has {len(want)}")
    wrong = [k for k, v in want.items() if (got.get(int(k), {}).get("ref") or None) != v]
    check(not wrong, f"dlt: ref differs from the sandbox for ids {wrong[:5]}")
    ours = _rows(ours_url, COMPARED.format("odoo_invoices"))
    differ = sorted(rid for rid in ours if got.get(rid) != ours[rid])
    check(not differ, f"dlt: rows differ from ours for ids {differ[:5]}: {[got.get(r) for r in differ[:1]]} "
                      f"vs {[ours[r] for r in differ[:1]]}")
    return len(got)


def _rows(url: str, query: str) -> dict[int, dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = {r.id: dict(r._mapping) for r in conn.execute(sa.text(query))}
    engine.dispose()
    return rows


def timed_pass(sandbox: SandboxProcess, ours_url: str, dlt_url: str, pipelines_dir: str, size: int) -> dict:
    mark = sandbox.log_count()
    started = time.perf_counter()
    odoo_sync(ours_url, "full")
    ours_s = time.perf_counter() - started
    recorded = sandbox.requests_since(mark)
    truth = sandbox.truth()
    rows = odoo_verify(ours_url, truth, size)
    with scratch_database() as floor_url:
        floor = floor_run(floor_url, sandbox.base_url, recorded, read_rows(ours_url, ["odoo_invoices"]))
    dlt_s = run_dlt(sandbox.base_url, recorded, dlt_url, pipelines_dir)
    dlt_verify(dlt_url, truth, ours_url)
    return {"rows": rows, "ours_s": ours_s, "dlt_s": dlt_s, "floor": floor, "requests": len(recorded)}


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
    print("\n| pass | rows | ours s | dlt s | floor s (fetch + COPY) | dlt / ours | dlt / floor | ours / floor |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    met = True
    for name, p in passes.items():
        floor = p["floor"]
        speedup = p["dlt_s"] / p["ours_s"]
        met = met and speedup >= 5
        print(f"| {name} | {p['rows']:,} | {p['ours_s']:.2f} | {p['dlt_s']:.2f} | {floor['seconds']:.2f} "
              f"({floor['fetch_s']:.2f} + {floor['copy_s']:.2f}) | {speedup:.2f}x | "
              f"{p['dlt_s'] / floor['seconds']:.2f}x | {p['ours_s'] / floor['seconds']:.2f}x |")
    bound = min(p["dlt_s"] / p["floor"]["seconds"] for p in passes.values())
    print(f"\n{passes['1% changed']['changed']:,} invoices changed before pass 2; "
          f"{passes['load']['requests']} requests per pass; target: ours >= 5x faster on both passes: "
          f"{'met' if met else 'NOT met'}; no loader of these rows can be more than {bound:.2f}x faster than "
          "dlt here (dlt / floor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
