"""One adapter per source for the fault suite: set it up, run its job, the sandbox's truth and
the destination's snapshot, its credentials (to expire, revoke, restore and plant canaries in).

A snapshot is a list with one key per destination row, so a duplicate shows as a repeated key;
a truth is the set of keys the sandbox says the destination must hold. Odoo's and Procore's
keys carry the record's change stamp (``write_date``, ``updated_at``): a stale row shows as
one lost and one extra.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sync_pipelines.odoo.settings import MODEL_SPECS
from sync_pipelines.warehouse import utcnow
from sync_pipelines_tests.cars.conftest import CarsHarness
from sync_pipelines_tests.golioth.conftest import KEY_ENV, PROJECT, GoliothHarness, _utc
from sync_pipelines_tests.odoo.conftest import OdooHarness
from sync_pipelines_tests.procore.conftest import ProcoreHarness, failure_text


@dataclass
class Outcome:
    success: bool
    failure: str = ""


@dataclass
class Comparison:
    """Destination against truth: rows missing, rows stored more than once, rows not in the truth."""

    lost: set = field(default_factory=set)
    duplicated: dict = field(default_factory=dict)
    extra: set = field(default_factory=set)

    @property
    def equal(self) -> bool:
        return not (self.lost or self.duplicated or self.extra)

    def __str__(self) -> str:
        def some(keys):
            return sorted(map(str, keys))[:5]
        return (f"{len(self.lost)} lost {some(self.lost)}, {len(self.duplicated)} duplicated "
                f"{some(self.duplicated)}, {len(self.extra)} extra {some(self.extra)}")


def compare(truth: set, snapshot: list) -> Comparison:
    counts = Counter(snapshot)
    return Comparison(
        lost=truth - set(counts),
        duplicated={k: n for k, n in counts.items() if n > 1},
        extra=set(counts) - truth,
    )


def _outcome(result) -> Outcome:
    return Outcome(result.success, "" if result.success else failure_text(result))


def version(value: Any) -> str | None:
    """A record's change stamp, vendor text or stored datetime alike, to the second in UTC."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = _utc(value).strftime("%Y-%m-%d %H:%M:%S")
    return str(value).replace("T", " ").removesuffix("Z")[:19]


def table_keys(warehouse, table: str, *columns: str) -> list[tuple]:
    with warehouse.engine.connect() as conn:
        t = warehouse.table(table)
        return [(table, *row) for row in conn.execute(sa.select(*[t.c[c] for c in columns]))]


class FaultSource:
    """What the matrix needs of a source; ``targets`` are the (vendor, path regex) pairs of its
    paged listings, where a fault is switched on."""

    name: str
    vendors: list[str]
    targets: list[tuple[str, str]]
    first_mode = "incremental"
    wrong_type_field: str | None = None  # the field the wrong_type fault spoils (None: the first number)

    def __init__(self, sandbox, warehouse):
        self.sandbox, self.warehouse = sandbox, warehouse

    def setup(self) -> None:
        """Credentials and configuration before the first run."""

    def run(self, mode: str | None = None) -> Outcome:
        raise NotImplementedError

    def job(self, mode: str) -> tuple[str, dict, str | None]:
        """The job, run config and partition of a run in ``mode`` (for ``run_job`` processes)."""
        raise NotImplementedError

    def truth(self) -> set:
        raise NotImplementedError

    def snapshot(self) -> list:
        raise NotImplementedError

    def compare(self) -> Comparison:
        return compare(self.truth(), self.snapshot())

    def add_fault(self, kind: str, **options: Any) -> None:
        if kind == "wrong_type" and self.wrong_type_field:
            options.setdefault("field", self.wrong_type_field)
        for vendor, path in self.targets:
            self.sandbox.faults.add(kind, vendor=vendor, path=path, **options)

    def secrets(self) -> dict[str, str]:
        """Environment variables holding this source's credentials, and their values."""
        return {}

    def dispose(self) -> None:
        self.harness.instance.dispose()


class CarsSource(FaultSource):
    name = "cars"
    vendors = ["encar", "kbchachacha"]
    targets = [("encar", r"/search/"), ("kbchachacha", r"list\.empty")]
    first_mode = "full"

    def __init__(self, sandbox, warehouse):
        super().__init__(sandbox, warehouse)
        self.harness = CarsHarness(sandbox, warehouse)

    def run(self, mode=None) -> Outcome:
        run = self.harness.sync(mode or "incremental", raise_on_error=False)
        return Outcome(run.success, "" if run.success else run.failure_text())

    def job(self, mode: str) -> tuple[str, dict, str | None]:
        from sync_pipelines.cars.assets import run_config_for

        return "cars_sync_job", run_config_for(mode), None

    def truth(self) -> set:
        return self.harness.listed()

    def snapshot(self) -> list:
        return [(r[1], r[2]) for r in table_keys(self.warehouse, "cars", "source", "source_id")]

    def expire_credentials(self) -> None:
        self.harness.kb.control("expire_sessions", {})  # KB's session cookie: the only credential


class OdooSource(FaultSource):
    name = "odoo"
    vendors = ["odoo"]
    targets = [("odoo", r"/jsonrpc")]

    def __init__(self, sandbox, warehouse):
        super().__init__(sandbox, warehouse)
        self.harness = OdooHarness(sandbox, warehouse)

    def run(self, mode=None) -> Outcome:
        run = self.harness.sync(mode or "incremental", raise_on_error=False)
        return Outcome(run.success, "" if run.success else run.failure_text())

    def job(self, mode: str) -> tuple[str, dict, str | None]:
        from sync_pipelines.odoo.assets import run_config_for

        return "odoo_sync_job", run_config_for(MODEL_SPECS, mode, delay_ms=0), None

    def truth(self) -> set:
        records = self.harness.vendor.records
        return {(spec.table, i, version(records[spec.model][i]["write_date"]))
                for spec in MODEL_SPECS for i in self.harness.odoo_ids(spec)}

    def snapshot(self) -> list:
        return [(table, i, version(stamp)) for spec in MODEL_SPECS
                for table, i, stamp in table_keys(self.warehouse, spec.table, "id", "write_date")]

    def expire_credentials(self) -> None:
        self.harness.control("fault", code=100, name="odoo.http.SessionExpiredException",
                             message="Session expired", times=1)

    def revoke_credentials(self) -> None:
        self.harness.control("access_denied", on=True)

    def restore_credentials(self) -> None:
        self.harness.control("access_denied", on=False)

    def secrets(self) -> dict[str, str]:
        return {"ODOO_API_KEY": self.sandbox.env()["ODOO_API_KEY"]}


class ProcoreSource(FaultSource):
    name = "procore"
    vendors = ["procore"]
    targets = [("procore", r"/rfis$")]
    wrong_type_field = "updated_at"

    def __init__(self, sandbox, warehouse):
        super().__init__(sandbox, warehouse)
        self.harness = ProcoreHarness(sandbox, warehouse)
        self.user: str | None = None

    def setup(self) -> None:
        self.user = self.harness.connect()

    def run(self, mode=None) -> Outcome:
        return _outcome(self.harness.sync(self.user, mode or "incremental"))

    def job(self, mode: str) -> tuple[str, dict, str | None]:
        from sync_pipelines.procore.assets import run_config

        return "procore_sync_job", run_config(mode), self.user

    def truth(self) -> set:
        vendor = self.harness.vendor
        records = {"procore_projects": vendor.projects, "procore_rfis": vendor.rfis}
        return {(table, i, version(records[table][i]["updated_at"]) if table in records else None)
                for table, ids in self.harness.expected([self.user]).items() for i in ids}

    def snapshot(self) -> list:
        keys = [(*key, None) for key in table_keys(self.warehouse, "procore_companies", "id")]
        for table in ("procore_projects", "procore_rfis"):
            keys += [(t, i, version(stamp)) for t, i, stamp in table_keys(self.warehouse, table, "id", "updated_at")]
        return keys

    def expire_credentials(self) -> None:
        self.harness.control("expire_after_calls", user_id=self.user, calls=3)  # mid-run

    def revoke_credentials(self) -> None:
        vendor = self.harness.vendor
        for token in [*vendor.access_tokens.values(), *vendor.refresh_tokens.values()]:
            if token["user_id"] == self.user:
                token["revoked"] = token["used"] = True

    def restore_credentials(self) -> None:
        self.user = self.harness.connect(self.user)  # the user authorizes again

    def secrets(self) -> dict[str, str]:
        env = self.sandbox.env()
        return {k: env[k] for k in ("PROCORE_CLIENT_SECRET",) if k in env}


class GoliothSource(FaultSource):
    name = "golioth"
    vendors = ["golioth"]
    targets = [("golioth", r"/stream$")]
    wrong_type_field = "time"  # a stream record's numbers are nested: its time is the field to spoil

    def __init__(self, sandbox, warehouse):
        super().__init__(sandbox, warehouse)
        self.harness = GoliothHarness(sandbox, warehouse)
        self.since: dt.datetime | None = None
        self.key = sandbox.env()[KEY_ENV]

    def setup(self) -> None:
        self.harness.add("acme")
        # the first live pull reads the last day before its start (a moment after this)
        self.since = utcnow() - dt.timedelta(days=1) + dt.timedelta(minutes=1)

    def run(self, mode=None) -> Outcome:
        return _outcome(self.harness.sync(mode=mode or "incremental", raise_on_error=False))

    def job(self, mode: str) -> tuple[str, dict, str | None]:
        from sync_pipelines.golioth.assets import run_config_for

        return "golioth_sync_job", run_config_for([], mode), None

    def truth(self) -> set:
        return self.harness.sandbox_keys(PROJECT, since=self.since)

    def snapshot(self) -> list:
        rows = table_keys(self.warehouse, "device_telemetry_history", "device_id", "ts", "path")
        keys = [(d, _utc(ts), p) for _, d, ts, p in rows]
        every = self.harness.sandbox_keys(PROJECT)
        # points older than the window may be there (the overlap); points the vendor never had may not
        return [k for k in keys if k[1] >= self.since or k not in every]

    def revoke_credentials(self) -> None:
        self.harness.control("revoke_key", project=PROJECT)

    def restore_credentials(self) -> None:
        self.harness.vendor.keys[PROJECT] = self.key

    def secrets(self) -> dict[str, str]:
        return {KEY_ENV: self.key}


SOURCES = {cls.name: cls for cls in (CarsSource, OdooSource, ProcoreSource, GoliothSource)}
