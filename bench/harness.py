"""Shared pieces of the source benchmarks: a scratch Postgres database, the sized sandbox in
its own process, write counters, and the floor (bare requests + COPY) to compare against."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

ADMIN_URL = os.environ.get("SYNC_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
BENCH = Path(__file__).resolve().parent


# A stopped benchmark still drops its scratch databases and stops its sandbox (finally blocks).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class BenchFailure(AssertionError):
    """A correctness assertion of a benchmark failed: the script exits non-zero."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchFailure(message)


TEMPLATE: dict[str, str | None] = {"name": None}  # a migrated database that scratch ones copy


@contextlib.contextmanager
def scratch_database(prefix: str = "sync_bench") -> Iterator[str]:
    """A fresh Postgres database (its URL), a copy of the migrated template if there is one; dropped afterwards."""
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    template = f' TEMPLATE "{TEMPLATE["name"]}"' if TEMPLATE["name"] else ""
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{template}'))
    try:
        yield sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def checkpoint() -> None:
    """Write out the dirty pages and WAL earlier work left behind (untimed), so a timed side
    does not pay for the one before it."""
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("CHECKPOINT"))
    finally:
        admin.dispose()


@contextlib.contextmanager
def migrated_template() -> Iterator[None]:
    """Migrate one database for the whole run; every scratch database starts as its copy
    (the migrations take seconds, a copy a fraction of one)."""
    from sync_pipelines.warehouse import Warehouse

    with scratch_database("sync_bench_template") as url:
        Warehouse.for_url(url).dispose()
        TEMPLATE["name"] = sa.engine.make_url(url).database
        try:
            yield
        finally:
            TEMPLATE["name"] = None


class SandboxProcess:
    """bench/sandbox_server.py in a child process; its env points the project at it."""

    def __init__(self, **sizes: int):
        args = [sys.executable, str(BENCH / "sandbox_server.py")]
        for name, value in sizes.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the bench sandbox did not start")
        info = json.loads(line)
        self.base_url: str = info["base_url"]
        self.env: dict[str, str] = info["env"]
        self.seeded_s: float = info["seeded_s"]
        self.session = requests.Session()

    def apply_env(self) -> None:
        os.environ.update(self.env)

    def log_count(self) -> int:
        return self.session.get(f"{self.base_url}/_bench/log", params={"since": 1 << 40}).json()["count"]

    def requests_since(self, mark: int) -> list[dict[str, Any]]:
        return self.session.get(f"{self.base_url}/_bench/log", params={"since": mark}).json()["requests"]

    def truth(self) -> dict[str, Any]:
        return self.session.get(f"{self.base_url}/_bench/truth").json()

    def post(self, action: str, payload: dict[str, Any]) -> Any:
        return self.session.post(f"{self.base_url}/_bench/{action}", json=payload).json()

    def close(self) -> None:
        self.session.close()
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- write counters ------------------------------------------------------------------------


def tuple_counts(url: str) -> dict[str, tuple[int, int, int]]:
    """(n_tup_ins, n_tup_upd, n_tup_del) per table once every write so far is counted.

    Backends report asynchronously (or as they exit): callers dispose their engines first;
    the view is then read until it has not moved for half a second.
    """
    engine = sa.create_engine(url)
    last, stable_since, deadline = None, time.monotonic(), time.monotonic() + 15
    try:
        while True:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
                current = {
                    r.relname: (int(r.n_tup_ins), int(r.n_tup_upd), int(r.n_tup_del))
                    for r in conn.execute(
                        sa.text("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")
                    )
                }
            if current != last:
                last, stable_since = current, time.monotonic()
            if time.monotonic() - stable_since >= 0.5 or time.monotonic() > deadline:
                return current
            time.sleep(0.1)
    finally:
        engine.dispose()


def written_rows(before: dict, after: dict) -> dict[str, int]:
    """Tables whose counters moved, with the rows inserted + updated + deleted."""
    moved = {}
    for table, counts in after.items():
        old = before.get(table, (0, 0, 0))
        delta = sum(counts) - sum(old)
        if delta:
            moved[table] = delta
    return moved


# -- the floor ------------------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _field(v: Any) -> str:
    if v is None:
        return "\\N"
    if type(v) is str:
        return v if v.isprintable() and "\\" not in v else v.translate(_ESCAPES)
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, (int, float, decimal.Decimal)):
        return str(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, (dict, list)):
        return _json(v).translate(_ESCAPES)
    return str(v).translate(_ESCAPES)


def read_rows(url: str, tables: list[str]) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every row of ``tables`` as Python values (what the floor will COPY), read untimed."""
    engine = sa.create_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for table in tables:
                result = conn.execute(sa.text(f'SELECT * FROM "{table}"'))
                out[table] = (list(result.keys()), [tuple(r) for r in result])
    finally:
        engine.dispose()
    return out


def floor_run(url: str, base_url: str, recorded: list[dict], rows: dict[str, tuple[list[str], list[tuple]]]) -> dict:
    """The floor: the same requests with a bare requests.Session (bodies decoded), then a
    plain COPY of the same rows (encoded column by column) into empty copies of the tables."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in rows:
            conn.execute(sa.text(f'CREATE TABLE "floor_{table}" (LIKE "{table}" INCLUDING ALL)'))
    checkpoint()
    started = time.perf_counter()
    with requests.Session() as session:
        for r in recorded:
            answer = session.request(r["method"], base_url + r["path"], data=r["body"].encode() or None,
                                     headers=r["headers"])
            if "json" in answer.headers.get("content-type", ""):
                answer.json()
            else:
                _ = answer.text
    fetched = time.perf_counter()
    with engine.begin() as conn, conn.connection.dbapi_connection.cursor() as cur:
        for table, (columns, values) in rows.items():
            if not values:
                continue
            fields = [list(map(_field, col)) for col in zip(*values, strict=True)]
            text = "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"
            cols = ", ".join(f'"{c}"' for c in columns)
            cur.copy_expert(f'COPY "floor_{table}" ({cols}) FROM STDIN', io.StringIO(text), size=1 << 20)
    done = time.perf_counter()
    engine.dispose()
    return {"seconds": done - started, "fetch_s": fetched - started, "copy_s": done - fetched,
            "requests": len(recorded)}


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
