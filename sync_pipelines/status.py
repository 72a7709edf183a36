"""``python -m sync_pipelines status``: per source, how its syncs are doing.

Read from the Dagster instance (runs, their materializations' metadata, failures) and from
the destination (rejects, connections, integrations, the newest vendor timestamps), never
from a log table of our own. :func:`build_report` returns a :class:`StatusReport`;
:func:`render_text` and :func:`render_json` print it. Figures: ``README.md`` ("Status").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from sync_pipelines.kit.assets import SOURCE_TAG
from sync_pipelines.redaction import redact
from sync_pipelines.warehouse import Warehouse, as_utc, utcnow

FINISHED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
# The newest vendor-side change each source stores: (table, column), newest of all is the lag.
VENDOR_TIMESTAMPS: dict[str, tuple[tuple[str, str], ...]] = {
    "cars": (("cars", "vendor_modified_at"),),
    "odoo": tuple(
        (t, "write_date")
        for t in ("odoo_invoices", "odoo_purchase_orders", "odoo_purchase_order_lines", "odoo_sale_orders",
                  "odoo_products", "odoo_stock_quants")
    ),
    "procore": (("procore_companies", "updated_at"), ("procore_projects", "updated_at"), ("procore_rfis", "updated_at")),
    "golioth": (("device_telemetry_history", "ts"),),
}
LAG_LABELS = {"cars": "cars.vendor_modified_at (Encar)", "odoo": "odoo_*.write_date", "procore": "procore_*.updated_at"}
CHANGE_KINDS = ("inserted", "updated", "deleted")
ERROR_CHARS = 300


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    job_name: str
    status: str  # Dagster's run status: SUCCESS, FAILURE, STARTED, QUEUED...
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    error: str | None = None  # a failed run's first step error (redacted, one line)
    url: str | None = None  # its page in the UI (SYNC_UI_BASE_URL set)


@dataclass
class RowsChanged:
    """Sums of the materializations' ``inserted`` / ``updated`` / ``deleted`` metadata
    (also ``<thing>_inserted`` etc., e.g. ``devices_inserted``, ``points_inserted``)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.deleted

    def add_metadata(self, metadata: dict[str, Any]) -> None:
        for key, entry in metadata.items():
            value = getattr(entry, "value", entry)
            if isinstance(value, bool) or not isinstance(value, int):
                continue
            for kind in CHANGE_KINDS:
                if key == kind or key.endswith(f"_{kind}"):
                    setattr(self, kind, getattr(self, kind) + value)


@dataclass(frozen=True)
class SuccessRate:
    succeeded: int
    finished: int  # runs that ended (success, failure, canceled) in the window

    @property
    def rate(self) -> float | None:
        return round(self.succeeded / self.finished, 3) if self.finished else None


@dataclass
class SourceStatus:
    source: str
    last_run: RunSummary | None
    success_24h: SuccessRate
    success_7d: SuccessRate
    rows_changed_last_run: RowsChanged
    rows_changed_24h: RowsChanged
    newest_vendor_timestamp: dt.datetime | None
    lag_seconds: float | None
    lag_column: str
    open_rejects: int
    needs_reauth: list[str] | None = None  # Procore user ids; None: the source has no connections
    integrations_skipped: list[dict[str, str]] | None = None  # Golioth {id, reason}; None: no integrations


@dataclass
class StatusReport:
    generated_at: dt.datetime
    destination: str
    sources: list[SourceStatus] = field(default_factory=list)


# -- the Dagster instance --------------------------------------------------------------------


def source_of(run: Any, sources: Sequence[str]) -> str | None:
    """A run's source: its ``sync_pipelines/source`` tag, else its job name's prefix
    (Procore sync runs carry no source tag: see CHANGELOG, Procore source)."""
    tagged = run.tags.get(SOURCE_TAG)
    if tagged in sources:
        return tagged
    return next((s for s in sources if run.job_name.startswith(f"{s}_")), None)


def _timestamp(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc) if value else None


def first_error(instance: DagsterInstance, run_id: str) -> tuple[str | None, str | None]:
    """A failed run's first failure: (its step key, or None for a run-level failure; the first
    line of its root-cause error, redacted), or (None, None)."""
    for event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
        records = instance.get_records_for_run(run_id, of_type=event_type, limit=1).records
        if records:
            event = records[0].event_log_entry.dagster_event
            error = getattr(event.event_specific_data, "error", None)
            while error is not None and error.cause is not None:  # the vendor's error, not Dagster's wrapper
                error = error.cause
            text = (error.message if error is not None else event.message) or ""
            lines = text.strip().splitlines()
            # "sync_pipelines.procore.connections.ReauthRequiredError: ..." reads as "ReauthRequiredError: ..."
            line = re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", lines[0]) if lines else None
            return event.step_key, redact(line)[:ERROR_CHARS] if line else None
    return None, None


def _run_error(instance: DagsterInstance, run_id: str) -> str | None:
    return first_error(instance, run_id)[1]


def _summary(instance: DagsterInstance, record: Any) -> RunSummary:
    from sync_pipelines.alerts import run_link

    run = record.dagster_run
    failed = run.status == DagsterRunStatus.FAILURE
    return RunSummary(
        run.run_id, run.job_name, run.status.value, _timestamp(record.start_time), _timestamp(record.end_time),
        _run_error(instance, run.run_id) if failed else None, run_link(run.run_id),
    )


def _rows_changed(instance: DagsterInstance, run_ids: Iterable[str]) -> RowsChanged:
    changed = RowsChanged()
    for run_id in run_ids:
        for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
            materialization = record.event_log_entry.asset_materialization
            if materialization is not None:
                changed.add_metadata(dict(materialization.metadata))
    return changed


def _success(records: Iterable[Any], since: dt.datetime) -> SuccessRate:
    finished = [r for r in records if r.dagster_run.status in FINISHED and as_utc(r.create_timestamp) >= since]
    return SuccessRate(sum(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in finished), len(finished))


def runs_by_source(instance: DagsterInstance, sources: Sequence[str], now: dt.datetime) -> dict[str, list[Any]]:
    """The run records of the last 7 days per source, newest first."""
    grouped: dict[str, list[Any]] = {s: [] for s in sources}
    for record in instance.get_run_records(RunsFilter(created_after=now - dt.timedelta(days=7))):
        source = source_of(record.dagster_run, sources)
        if source is not None:
            grouped[source].append(record)
    for records in grouped.values():
        records.sort(key=lambda r: r.create_timestamp, reverse=True)
    return grouped


def _last_run_record(instance: DagsterInstance, source: str, recent: list[Any]) -> Any:
    if recent:
        return recent[0]
    older = instance.get_run_records(RunsFilter(tags={SOURCE_TAG: source}), limit=1)
    return older[0] if older else None


# -- the destination -----------------------------------------------------------------------


def _tables(warehouse: Warehouse) -> set[str]:
    return set(sa.inspect(warehouse.engine).get_table_names())


def newest_vendor_timestamp(warehouse: Warehouse, source: str, tables: set[str]) -> dt.datetime | None:
    newest = None
    with warehouse.engine.connect() as conn:
        for table, column in VENDOR_TIMESTAMPS.get(source, ()):
            if table in tables:
                value = as_utc(conn.execute(sa.select(sa.func.max(warehouse.table(table).c[column]))).scalar())
                if value is not None and (newest is None or value > newest):
                    newest = value
    return newest


def open_rejects(warehouse: Warehouse, source: str, tables: set[str]) -> int:
    """Rows of ``sync_rejects``: a reject is deleted when its record lands cleanly, so all are open."""
    return warehouse.count("sync_rejects", source=source) if "sync_rejects" in tables else 0


def procore_needs_reauth(warehouse: Warehouse) -> list[str]:
    connections = warehouse.table("procore_connections")
    query = sa.select(connections.c.user_id).where(connections.c.status == "needs_reauth").order_by(connections.c.user_id)
    with warehouse.engine.connect() as conn:
        return [str(user_id) for user_id in conn.execute(query).scalars()]


def golioth_skipped(warehouse: Warehouse, now: dt.datetime) -> list[dict[str, str]]:
    """Integrations the scheduler skips now (disabled, paused, outside their window), with the
    scheduler's own reason, plus any whose last run failed (``last_error``)."""
    from sync_pipelines.golioth import integrations

    skipped = []
    for integration in integrations.load(warehouse):
        decision = integrations.evaluate(integration, now)
        if not decision.due and not decision.reason.startswith("not due until"):
            skipped.append({"id": integration.id, "reason": decision.reason})
        elif integration.last_error:
            skipped.append({"id": integration.id, "reason": f"last run failed: {redact(integration.last_error)[:ERROR_CHARS]}"})
    return skipped


# -- the report ------------------------------------------------------------------------------


def source_status(
    instance: DagsterInstance, warehouse: Warehouse, source: str, records: list[Any], now: dt.datetime,
    tables: set[str],
) -> SourceStatus:
    day_ago = now - dt.timedelta(days=1)
    last = _last_run_record(instance, source, records)
    newest = newest_vendor_timestamp(warehouse, source, tables)
    return SourceStatus(
        source=source,
        last_run=_summary(instance, last) if last is not None else None,
        success_24h=_success(records, day_ago),
        success_7d=_success(records, now - dt.timedelta(days=7)),
        rows_changed_last_run=_rows_changed(instance, [last.dagster_run.run_id] if last is not None else []),
        rows_changed_24h=_rows_changed(
            instance, [r.dagster_run.run_id for r in records if as_utc(r.create_timestamp) >= day_ago]
        ),
        newest_vendor_timestamp=newest,
        lag_seconds=round((now - newest).total_seconds(), 1) if newest is not None else None,
        lag_column=LAG_LABELS.get(source) or ", ".join(f"{t}.{c}" for t, c in VENDOR_TIMESTAMPS.get(source, ())),
        open_rejects=open_rejects(warehouse, source, tables),
        needs_reauth=procore_needs_reauth(warehouse) if "procore_connections" in tables and source == "procore" else None,
        integrations_skipped=golioth_skipped(warehouse, now) if "golioth_integrations" in tables and source == "golioth" else None,
    )


def build_report(
    instance: DagsterInstance, warehouse: Warehouse, sources: Sequence[str], now: dt.datetime | None = None
) -> StatusReport:
    now = now or utcnow()
    grouped = runs_by_source(instance, sources, now)
    report = StatusReport(generated_at=now, destination=warehouse.location)
    tables = _tables(warehouse)
    report.sources = [source_status(instance, warehouse, s, grouped[s], now, tables) for s in sources]
    return report


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, RowsChanged):
        return {**dataclasses.asdict(value), "total": value.total}
    if isinstance(value, SuccessRate):
        return {**dataclasses.asdict(value), "rate": value.rate}
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render_json(report: StatusReport) -> str:
    return json.dumps(_plain(report), indent=2)


def _when(value: dt.datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "-"


def _rate(rate: SuccessRate) -> str:
    return f"{rate.rate:.0%} ({rate.succeeded}/{rate.finished})" if rate.rate is not None else "no finished run"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _source_lines(s: SourceStatus) -> list[str]:
    run = s.last_run
    last = f"{run.status} {_when(run.ended_at or run.started_at)} ({run.job_name}, run {run.run_id})" if run else "never"
    rows = s.rows_changed_24h
    lines = [
        f"{s.source}",
        f"  last run          {last}",
        *([f"  last error        {run.error}"] if run and run.error else []),
        *([f"  run page          {run.url}"] if run and run.url else []),
        f"  success 24 h      {_rate(s.success_24h)}",
        f"  success 7 days    {_rate(s.success_7d)}",
        f"  rows changed      {s.rows_changed_last_run.total} last run; {rows.total} in 24 h "
        f"(inserted {rows.inserted}, updated {rows.updated}, deleted {rows.deleted})",
        f"  vendor lag        {_duration(s.lag_seconds)} (newest {_when(s.newest_vendor_timestamp)}, {s.lag_column})",
        f"  open rejects      {s.open_rejects}",
    ]
    if s.needs_reauth is not None:
        lines.append(f"  needs reauth      {len(s.needs_reauth)}{': ' + ', '.join(s.needs_reauth) if s.needs_reauth else ''}")
    if s.integrations_skipped is not None:
        lines.append(f"  skipped           {len(s.integrations_skipped)}")
        lines += [f"    {i['id']}: {i['reason']}" for i in s.integrations_skipped]
    return lines


def render_text(report: StatusReport) -> str:
    lines = [f"status at {_when(report.generated_at)}; destination {report.destination}", ""]
    for s in report.sources:
        lines += [*_source_lines(s), ""]
    return "\n".join(lines).rstrip() + "\n"


def status_command(*, as_json: bool, source: str | None) -> int:
    """``python -m sync_pipelines status [--json] [--source NAME]``."""
    from sync_pipelines import settings
    from sync_pipelines.__main__ import source_names
    from sync_pipelines.instance import operator_instance

    sources = source_names()
    if source is not None and source not in sources:
        raise SystemExit(f"unknown source {source!r}; one of {', '.join(sources)}")
    # A report only reads: it never migrates the destination (missing tables read as empty).
    warehouse = Warehouse.for_url(settings.database_url(), migrate_schema=False)
    with operator_instance() as instance:
        report = build_report(instance, warehouse, [source] if source else sources)
    print(render_json(report) if as_json else render_text(report), end="" if not as_json else "\n")
    return 0
