"""Benchmark: each source's full sync against its floor, the cost of a run with nothing to
do, flat memory, and the Dagster overhead (bench/README.md has the method and results).

    python bench/sources.py                              # the issue's sizes
    python bench/sources.py --cars 2500 --odoo-invoices 10000 --golioth-points 100000

Per source, in one process, against the sandbox in a process of its own (bench/sandbox_server.py,
answers cached after a warm-up sync): a full sync into an empty Postgres database through the
functions the assets call, then the floor (the same requests with a bare requests.Session and a
plain COPY of the same rows); an incremental run with no change (rows written, API calls); the
same incremental run through Dagster (execute_in_process, the project's dagster.yaml instance);
peak RSS of a full sync at a tenth and at the full size, each in a fresh subprocess.
Exits 1 when a destination differs from the sandbox's truth or a no-change run writes a row.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    BenchFailure,
    SandboxProcess,
    check,
    checkpoint,
    floor_run,
    migrated_template,
    peak_rss_mb,
    read_rows,
    scratch_database,
    tuple_counts,
    written_rows,
)

ROOT = Path(__file__).resolve().parent.parent
GOLIOTH_PROJECT = "sandbox-project"
GOLIOTH_KEY_ENV = "GOLIOTH_SANDBOX_API_KEY"
GOLIOTH_INTEGRATION = "bench"
ODOO_BATCH = 1000  # ODOO_INVOICE_BATCH_SIZE of the bench (the default 100 is 1,000 calls per 100,000)


@dataclass
class Source:
    name: str
    size_arg: str  # sandbox_server option and CLI option
    unit: str
    tables: list[str]  # what the floor COPYs
    full: Callable[[str], Any]  # a full sync into that database URL
    incremental: Callable[[str], Any]
    dagster_incremental: Callable[[str, Any], Any]  # (url, instance)
    verify: Callable[[str, dict, int], int]  # rows the destination holds, checked against the truth
    prepare: Callable[[str, SandboxProcess], None] | None = None  # untimed setup of a fresh database
    sandbox_args: dict[str, int] = field(default_factory=dict)  # further bench_sandbox options
    # Columns a run with no change still writes, by design (bench/README.md says why): the
    # no-change run may update these and nothing else, checked row by row.
    stamps: dict[str, tuple[str, ...]] = field(default_factory=dict)


# -- Odoo invoices ------------------------------------------------------------------------


def _warehouse(url: str):
    from sync_pipelines.warehouse import Warehouse

    return Warehouse.for_url(url)


def migrate(url: str) -> str:
    """Create the schema untimed: a timed run then pays only the check the asset pays too."""
    _warehouse(url).dispose()
    return url


def odoo_sync(url: str, mode: str = "full") -> Any:
    from sync_pipelines.odoo.resources import OdooResource
    from sync_pipelines.odoo.settings import INVOICES
    from sync_pipelines.odoo.sync import sync_entity

    wh = _warehouse(url)
    try:
        with OdooResource().get_client() as client:
            return sync_entity(INVOICES, client, wh, mode=mode, batch_size=ODOO_BATCH, delay_seconds=0)
    finally:
        wh.dispose()


def odoo_dagster(url: str, instance) -> bool:
    from dagster import AssetKey

    from sync_pipelines.definitions import defs
    from sync_pipelines.odoo.assets import run_config_for
    from sync_pipelines.odoo.settings import INVOICES

    job = defs.resolve_job_def("odoo_sync_job")
    return job.execute_in_process(
        run_config=run_config_for([INVOICES], "incremental", delay_ms=0, batch_size=ODOO_BATCH),
        instance=instance, asset_selection=[AssetKey(INVOICES.asset_name)],
    ).success


def odoo_verify(url: str, truth: dict, size: int) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        got = {str(r.id): r.ref for r in conn.execute(sa.text("SELECT id, ref FROM odoo_invoices"))}
    engine.dispose()
    want = truth["odoo_invoices"]
    check(set(got) == set(want), f"odoo_invoices: {len(got)} ids, sandbox has {len(want)} (differ: "
          f"{sorted(set(got) ^ set(want))[:5]})")
    wrong = [k for k, v in want.items() if (got[k] or None) != v]
    check(not wrong, f"odoo_invoices: ref differs from the sandbox for ids {wrong[:5]}")
    check(len(got) >= size, f"odoo_invoices: {len(got)} rows, fewer than the {size} seeded")
    return len(got)


# -- Golioth points (backfill) ----------------------------------------------------------------


def _golioth_integration(wh):
    from sync_pipelines.golioth import integrations as store
    from sync_pipelines.golioth.integrations import Integration

    found = store.load(wh, [GOLIOTH_INTEGRATION]) if _has_integration(wh) else []
    return found[0] if found else store.add(wh, Integration(GOLIOTH_INTEGRATION, GOLIOTH_PROJECT, GOLIOTH_KEY_ENV))


def _has_integration(wh) -> bool:
    with wh.engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT count(*) FROM golioth_integrations WHERE id = :i"),
                                 {"i": GOLIOTH_INTEGRATION}).scalar_one())


def golioth_backfill(url: str) -> Any:
    from sync_pipelines.golioth import sync

    wh = _warehouse(url)
    try:
        integration = _golioth_integration(wh)
        report = sync.GoliothReport("telemetry", "backfill")
        client = sync.client_for(integration)
        # Day bounds, as the asset's partitions give: the warm-up then asks the very requests
        # the timed run asks (a "now" in the end missed the answer cache: the sandbox's paging).
        today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        window = (dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), today + dt.timedelta(days=2))
        with client:
            sync.backfill(wh, integration, client, [window], report)
        return report
    finally:
        wh.dispose()


def golioth_live(url: str) -> Any:
    from sync_pipelines.golioth import sync

    wh = _warehouse(url)
    try:
        integration = _golioth_integration(wh)
        report = sync.GoliothReport("telemetry", "incremental")
        with sync.client_for(integration) as client:
            sync.live_pull(wh, integration, client, report)
        return report
    finally:
        wh.dispose()


def golioth_dagster(url: str, instance) -> bool:
    from sync_pipelines.definitions import defs

    return defs.resolve_job_def("golioth_sync_job").execute_in_process(instance=instance).success


def golioth_verify(url: str, truth: dict, size: int) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows, distinct = conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT (device_id, ts, path)) FROM device_telemetry_history"
        )).one()
    engine.dispose()
    check(rows == distinct, f"device_telemetry_history: {rows - distinct} duplicated points")
    check(rows == truth["golioth_points"], f"device_telemetry_history: {rows} points, sandbox has {truth['golioth_points']}")
    return rows


# -- Cars (Encar listings) -------------------------------------------------------------------


STATUS_CHECKS = {"per_run": None}  # None: the product's default (--status-checks)


def cars_sync(url: str, mode: str = "full", size: int = 0) -> Any:
    from sync_pipelines.cars.resources import EncarResource
    from sync_pipelines.cars.settings import (
        DEFAULT_INCREMENTAL_PAGES,
        DEFAULT_STATUS_CHECKS_PER_RUN,
        ENCAR_PAGE_SIZE,
    )
    from sync_pipelines.cars.sync import EncarAdapter, sync_entity

    wh = _warehouse(url)
    try:
        with EncarResource().get_client() as client:
            return sync_entity(
                EncarAdapter(client), wh, mode=mode, max_pages=max(500, size // ENCAR_PAGE_SIZE + 2),
                incremental_pages=DEFAULT_INCREMENTAL_PAGES,
                status_checks_per_run=DEFAULT_STATUS_CHECKS_PER_RUN if STATUS_CHECKS["per_run"] is None
                else STATUS_CHECKS["per_run"],
            )
    finally:
        wh.dispose()


def cars_dagster(url: str, instance) -> bool:
    from dagster import AssetKey

    from sync_pipelines.definitions import defs

    return defs.resolve_job_def("cars_sync_job").execute_in_process(
        instance=instance, asset_selection=[AssetKey("encar_listings")]
    ).success


def cars_verify(url: str, truth: dict, size: int) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        got = [r[0] for r in conn.execute(sa.text("SELECT source_id FROM cars WHERE source = 'encar'"))]
    engine.dispose()
    check(len(got) == len(set(got)), "cars: duplicated encar ids")
    check(set(got) == set(truth["encar"]), f"cars: {len(got)} encar cars, sandbox lists {len(truth['encar'])}")
    return len(got)

# -- Procore (per-user OAuth connections) ----------------------------------------------------


PROCORE_TABLES = ["procore_companies", "procore_projects", "procore_rfis", "procore_project_listings"]
PROCORE: dict[str, Any] = {"expired": False, "rows": None}  # --procore-expired; the connected rows


def procore_prepare(url: str, sandbox: SandboxProcess) -> None:
    """Every seeded user connected, untimed: the first database through `procore connect`'s own
    functions (authorize, code exchange, /me, companies); later ones get copies of those rows,
    so their syncs send the same tokens and the warm-up primes the answer cache for the timed run."""
    os.environ.setdefault("SYNC_SECRET_KEY", _fernet_key())
    wh = _warehouse(url)
    try:
        table = wh.table("procore_connections")
        if PROCORE["rows"] is None:
            _procore_connect_all(wh, sandbox.truth()["procore_users"])
            with wh.engine.connect() as conn:
                PROCORE["rows"] = [dict(r._mapping) for r in conn.execute(sa.select(table))]
        else:
            with wh.engine.begin() as conn:
                conn.execute(table.insert(), PROCORE["rows"])
        if PROCORE["expired"]:
            # Every access token past its expiry: the sync refreshes each connection once.
            with wh.engine.begin() as conn:
                conn.execute(table.update().values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))
    finally:
        wh.dispose()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def _procore_connect_all(wh, users: list[str]) -> None:
    import re

    import requests

    from sync_pipelines.procore.cli import complete_connect
    from sync_pipelines.procore.resources import ProcoreResource
    from sync_pipelines.procore.settings import OOB_REDIRECT_URI

    resource = ProcoreResource()
    oauth, store = resource.oauth(), resource.store(wh)
    with requests.Session() as session:
        for user in users:
            page = session.get(oauth.authorize_url(OOB_REDIRECT_URI), params={"login": user}, timeout=30)
            code = re.search(r"<code id='code'>([^<]+)</code>", page.text)[1]
            complete_connect(oauth, store, code, OOB_REDIRECT_URI)


def procore_sync(url: str, mode: str) -> Any:
    """Every active connection in turn, as `procore_sync` runs one: its steps, then the
    `last_sync_at` stamp; without the start gate (a politeness limit, off like the others')."""
    from sync_pipelines.procore.assets import STEPS
    from sync_pipelines.procore.connections import ACTIVE
    from sync_pipelines.procore.resources import ProcoreResource
    from sync_pipelines.procore.sync import SyncScope

    wh = _warehouse(url)
    try:
        resource = ProcoreResource()
        run_id = f"bench-{mode}-{time.monotonic_ns()}"
        refreshes = 0
        for user_id in resource.store(wh).user_ids(ACTIVE):
            client, tokens = resource.client(wh, user_id, run_id)
            with client:
                scope = SyncScope(user_id, tokens.connection.company_id, mode)
                for _, step in STEPS:
                    report = step(client, wh, scope)
                    check(not report.budget_spent, f"procore user {user_id}: {report.budget_spent}")
                tokens.store.note_sync(user_id, "last_sync_at")
            refreshes += tokens.refreshes
        return refreshes
    finally:
        wh.dispose()


def procore_dagster(url: str, instance) -> bool:
    """One `procore_sync_job` run per connection (its partition), as the schedule asks."""
    from sync_pipelines.definitions import defs
    from sync_pipelines.procore.assets import CONNECTIONS_PARTITIONS, run_config

    users = [row["user_id"] for row in PROCORE["rows"]]
    instance.add_dynamic_partitions(CONNECTIONS_PARTITIONS.name, users)
    job = defs.resolve_job_def("procore_sync_job")
    os.environ["PROCORE_STARTS_PER_MINUTE"] = str(10**6)  # the gate still runs; it never waits
    return all(job.execute_in_process(run_config=run_config("incremental"), instance=instance,
                                      partition_key=user).success for user in users)


def procore_verify(url: str, truth: dict, size: int) -> int:
    engine = sa.create_engine(url)
    total = 0
    with engine.connect() as conn:
        for table in ("procore_companies", "procore_projects", "procore_rfis"):
            got = [r.id for r in conn.execute(sa.text(f"SELECT id FROM {table} WHERE deleted_at IS NULL"))]
            check(sorted(got) == truth[table], f"{table}: {len(got)} live rows, the sandbox's users see "
                  f"{len(truth[table])} (differ: {sorted(set(got) ^ set(truth[table]))[:5]})")
            total += len(got)
        connections = conn.execute(sa.text("SELECT count(*) FROM procore_connections WHERE status = 'active'")).scalar()
    engine.dispose()
    check(connections == size, f"procore_connections: {connections} active, {size} seeded")
    return total


SOURCES = {
    "odoo": Source("odoo", "odoo_invoices", "invoices", ["odoo_invoices"], odoo_sync,
                   lambda url: odoo_sync(url, "incremental"), odoo_dagster, odoo_verify),
    "golioth": Source("golioth", "golioth_points", "points", ["device_telemetry_history", "golioth_devices"],
                      golioth_backfill, golioth_live, golioth_dagster, golioth_verify),
    "cars": Source("cars", "encar", "listings", ["cars"], cars_sync,
                   lambda url: cars_sync(url, "incremental"), cars_dagster, cars_verify,
                   stamps={"cars": ("status_checked_at",)}),
    "procore": Source("procore", "procore_connections", "connections", PROCORE_TABLES,
                      lambda url: procore_sync(url, "full"), lambda url: procore_sync(url, "incremental"),
                      procore_dagster, procore_verify, prepare=procore_prepare,
                      stamps={"procore_connections": ("last_sync_at",)}),
}
DEFAULT_SIZES = {"odoo": 100_000, "golioth": 1_000_000, "cars": 25_000, "procore": 100}
RSS_SMALL_SHARE = {"golioth": 0.01, "cars": 0.1}  # 10,000 against 1,000,000 points; 2,500 against 25,000 cars


# -- one source ---------------------------------------------------------------------------------


def _api_calls(recorded: list[dict]) -> dict[str, int]:
    calls: collections.Counter[str] = collections.Counter()
    for r in recorded:
        path = r["path"].split("?")[0]
        parts = path.strip("/").split("/")
        # Collapse ids so the endpoints read as endpoints (/devices/<id>/stream).
        label = "/".join("<id>" if p.isdigit() or any(ch.isdigit() for ch in p) and len(p) > 6 else p for p in parts)
        if r["method"] == "POST" and r["body"].startswith("{"):
            body = json.loads(r["body"])
            params = body.get("params", {})
            method = params.get("args", [None] * 5)[4] if params.get("method") == "execute_kw" else params.get("method")
            label += f" {method}"
        calls[f"{r['method']} /{label}"] += 1
    return dict(calls)


def full_vs_floor(source: Source, sandbox: SandboxProcess, size: int, full: Callable[[str], Any], repeat: int = 1) -> dict:
    """``repeat`` timed pairs (sync, then its floor), each into a fresh database; the pair of
    median ratio is reported, with every pair's ratio. The no-change run follows the last."""
    truth = sandbox.truth()
    if WARMUP["on"]:
        with scratch_database() as warm:
            if source.prepare:
                source.prepare(warm, sandbox)
            full(warm)  # fills the sandbox's answer cache; untimed
            source.verify(warm, truth, size)
    pairs = []
    for index in range(repeat):
        with scratch_database() as url:
            pairs.append(_timed_pair(source, sandbox, size, full, truth, url))
            if index == repeat - 1:
                nochange = nothing_to_do(source, sandbox, url)
    pairs.sort(key=lambda pair: pair["ratio"])
    return {**pairs[(len(pairs) - 1) // 2], "ratios": [pair["ratio"] for pair in pairs], **nochange}


def _timed_pair(source: Source, sandbox: SandboxProcess, size: int, full: Callable[[str], Any], truth: dict,
                url: str) -> dict:
    migrate(url)
    if source.prepare:
        source.prepare(url, sandbox)
    mark = sandbox.log_count()
    checkpoint()
    started = time.perf_counter()
    full(url)
    sync_s = time.perf_counter() - started
    recorded = sandbox.requests_since(mark)
    rows = source.verify(url, truth, size)
    copied = read_rows(url, source.tables)
    floor = floor_run(url, sandbox.base_url, recorded, copied)
    return {"rows": rows, "sync_s": sync_s, "floor": floor, "ratio": sync_s / floor["seconds"], "requests": len(recorded)}


def nothing_to_do(source: Source, sandbox: SandboxProcess, url: str) -> dict:
    """An incremental run after the full one (primes cursors), then the measured no-change run,
    plain Python and then through Dagster. Only ``source.stamps`` may change in it."""
    source.incremental(url)
    before, unstamped = tuple_counts(url), _unstamped_rows(url, source.stamps)
    mark = sandbox.log_count()
    started = time.perf_counter()
    source.incremental(url)
    plain_s = time.perf_counter() - started
    calls = _api_calls(sandbox.requests_since(mark))
    after = tuple_counts(url)
    written = written_rows(before, after)
    stamp_only = _stamp_only(written, before, after, unstamped, _unstamped_rows(url, source.stamps))
    dagster_s, dagster_ok = _through_dagster(source, url)
    return {"nochange_written": written, "nochange_stamps_only": stamp_only, "nochange_calls": calls,
            "incremental_s": plain_s, "dagster_s": dagster_s, "dagster_ok": dagster_ok}


def _unstamped_rows(url: str, stamps: dict[str, tuple[str, ...]]) -> dict[str, list[tuple]]:
    """Every row of each stamp table without its stamp columns, in primary-key order."""
    engine = sa.create_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for table, columns in stamps.items():
                t = sa.Table(table, sa.MetaData(), autoload_with=conn)
                kept = [c for c in t.c if c.name not in columns]
                out[table] = [tuple(r) for r in conn.execute(sa.select(*kept).order_by(*t.primary_key.columns))]
    finally:
        engine.dispose()
    return out


def _stamp_only(written: dict[str, int], before: dict, after: dict, rows_before: dict, rows_after: dict) -> bool:
    """Whether the run's writes are updates of stamp tables that left every other column as it was."""
    for table in written:
        ins, _, dele = (a - b for a, b in zip(after[table], before.get(table, (0, 0, 0)), strict=True))
        if table not in rows_before or ins or dele or rows_before[table] != rows_after[table]:
            return False
    return True


DAGSTER = {"on": True}
WARMUP = {"on": True}


def _through_dagster(source: Source, url: str) -> tuple[float, bool]:
    from dagster import DagsterInstance

    if not DAGSTER["on"]:
        return float("nan"), True

    home = tempfile.mkdtemp(prefix="bench_dagster_")
    shutil.copy(ROOT / "dagster.yaml", Path(home) / "dagster.yaml")
    saved = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "SYNC_DATABASE_URL")}
    os.environ.update({"DAGSTER_HOME": home, "SYNC_DATABASE_URL": url})
    try:
        with DagsterInstance.get() as instance:
            started = time.perf_counter()
            ok = source.dagster_incremental(url, instance)
            return time.perf_counter() - started, ok
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(home, ignore_errors=True)


def rss_of(source_name: str, size: int) -> tuple[float, float]:
    """RSS (MB) of a fresh subprocess: the most sampled during one full sync at ``size``
    (every 20 ms from /proc/self/statm), and at the sync's start (imports done, Dagster's
    are most of it). getrusage's peak is no help here: it is set before the sync starts."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", source_name, "--size", str(size)],
        check=True, capture_output=True, text=True,
    ).stdout
    measured = json.loads(out.strip().splitlines()[-1])
    return measured["during_mb"], measured["before_mb"]


def rss_child(source_name: str, size: int) -> int:
    source = SOURCES[source_name]
    with SandboxProcess(**{source.size_arg: size}) as sandbox:
        sandbox.apply_env()
        with scratch_database() as url:
            migrate(url)
            source.incremental(url)  # imports and first use: "before" is then the process at rest
        with scratch_database() as url:
            migrate(url)
            before, sampled = current_rss_mb(), [current_rss_mb()]
            done = threading.Event()
            sampler = threading.Thread(target=_sample_rss, args=(sampled, done), daemon=True)
            sampler.start()
            _full(source, size)(url)
            done.set()
            sampler.join()
            print(json.dumps({"rss_mb": peak_rss_mb(), "before_mb": before, "during_mb": max(sampled)}))
    return 0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _sample_rss(sampled: list[float], done: threading.Event) -> None:
    while not done.wait(0.02):
        sampled.append(current_rss_mb())


def _full(source: Source, size: int) -> Callable[[str], Any]:
    if source.name == "cars":
        return lambda url: cars_sync(url, "full", size)
    return source.full


# -- report ---------------------------------------------------------------------------------------


def _ratios_text(result: dict) -> str:
    return ", ".join(f"{ratio:.2f}x" for ratio in result["ratios"])


def print_report(results: dict[str, dict], rss: dict[str, tuple]) -> None:
    if not results:
        return _print_rss(rss)
    print("\n| source | rows | sync s | rows/s | floor s (fetch + COPY) | floor rows/s | ratio (median) | "
          "every pair | requests |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for name, r in results.items():
        f = r["floor"]
        print(f"| {name} | {r['rows']:,} | {r['sync_s']:.2f} | {r['rows'] / r['sync_s']:,.0f} | "
              f"{f['seconds']:.2f} ({f['fetch_s']:.2f} + {f['copy_s']:.2f}) | {r['rows'] / f['seconds']:,.0f} | "
              f"{r['ratio']:.2f}x | {_ratios_text(r)} | {r['requests']:,} |")
    print("\n| source | no-change run: rows written | API calls | plain Python s | Dagster s | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for name, r in results.items():
        written = ", ".join(f"{t} {n}" for t, n in r["nochange_written"].items()) or "0"
        if r["nochange_written"] and r["nochange_stamps_only"]:
            written += " (" + ", ".join(c for t in r["nochange_written"] for c in SOURCES[name].stamps[t]) + " only)"
        calls = ", ".join(f"{k} x{v}" for k, v in r["nochange_calls"].items())
        print(f"| {name} | {written} | {calls} | {r['incremental_s']:.2f} | {r['dagster_s']:.2f} | "
              f"{r['dagster_s'] / r['incremental_s']:.1f}x |")
    _print_rss(rss)


def _print_rss(rss: dict[str, tuple]) -> None:
    if rss:
        print("\n| source | small | RSS MB during the sync (at its start) | large | RSS MB during the sync (at its start) | ratio |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, (small, (small_mb, small_before), large, (large_mb, large_before)) in rss.items():
            print(f"| {name} | {small:,} | {small_mb:.1f} ({small_before:.1f}) | {large:,} | "
                  f"{large_mb:.1f} ({large_before:.1f}) | {large_mb / small_mb:.2f}x |")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", default="cars,odoo,golioth,procore")
    parser.add_argument("--cars", type=int, default=DEFAULT_SIZES["cars"], help="Encar listings")
    parser.add_argument("--odoo-invoices", type=int, default=DEFAULT_SIZES["odoo"])
    parser.add_argument("--golioth-points", type=int, default=DEFAULT_SIZES["golioth"])
    parser.add_argument("--procore-connections", type=int, default=DEFAULT_SIZES["procore"],
                        help="Procore connections (users), each its own company")
    parser.add_argument("--procore-rfis", type=int, default=50, help="RFIs per Procore connection")
    parser.add_argument("--procore-projects", type=int, default=5, help="projects per Procore connection")
    parser.add_argument("--procore-expired", action="store_true",
                        help="Procore: every access token expired before the syncs (one refresh per connection)")
    parser.add_argument("--rss-small", type=float, help="the small RSS size as a share of the large "
                        "(default: the issue's, 1%% for Golioth, 10%% for cars)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed sync/floor pairs per source, each into a fresh database (the median is reported)")
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--rss-only", action="store_true", help="only the memory measurements")
    parser.add_argument("--no-dagster", action="store_true", help="skip the runs through Dagster (smoke test)")
    parser.add_argument("--no-warmup", action="store_true", help="no cache-filling sync first (smoke test)")
    parser.add_argument("--status-checks", type=int, help="cars: per-car status calls per run (default: the product's)")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    STATUS_CHECKS["per_run"] = args.status_checks
    DAGSTER["on"] = not args.no_dagster
    WARMUP["on"] = not args.no_warmup
    if args.rss_child:
        return rss_child(args.rss_child, args.size)
    with migrated_template():
        return run(args)


def run(args: argparse.Namespace) -> int:
    sizes = {"cars": args.cars, "odoo": args.odoo_invoices, "golioth": args.golioth_points,
             "procore": args.procore_connections}
    PROCORE["expired"] = args.procore_expired
    SOURCES["procore"].sandbox_args = {"procore_rfis": args.procore_rfis, "procore_projects": args.procore_projects}
    results, rss, failures = {}, {}, []
    for name in args.sources.split(","):
        source, size = SOURCES[name], sizes[name]
        print(f"{name}: {size:,} {source.unit}", flush=True)
        try:
            if args.rss_only:
                if name in RSS_SMALL_SHARE:
                    small = max(1, int(size * (args.rss_small or RSS_SMALL_SHARE[name])))
                    rss[name] = (small, rss_of(name, small), size, rss_of(name, size))
                continue
            with SandboxProcess(**{source.size_arg: size}, **source.sandbox_args) as sandbox:
                sandbox.apply_env()
                results[name] = r = full_vs_floor(source, sandbox, size, _full(source, size), args.repeat)
            print(f"{name}: full sync {r['sync_s']:.2f} s, floor {r['floor']['seconds']:.2f} s ({r['ratio']:.2f}x, "
                  f"the median of {_ratios_text(r)}); no-change run wrote {r['nochange_written'] or 0}", flush=True)
            if not r["nochange_stamps_only"]:
                failures.append(f"{name}: a run with no change wrote {r['nochange_written']} (stamps allowed: "
                                f"{source.stamps or 'none'})")
            if not r["dagster_ok"]:
                failures.append(f"{name}: the Dagster run failed")
            if name in ("cars", "golioth") and not args.no_rss:
                share = args.rss_small or RSS_SMALL_SHARE[name]
                small = max(1, int(size * share))
                rss[name] = (small, rss_of(name, small), size, rss_of(name, size))
        except BenchFailure as exc:
            failures.append(f"{name}: {exc}")
    print_report(results, rss)
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
