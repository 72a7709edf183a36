"""Cars test harness: the sandboxed Encar and KB Chachacha, the destination (SQLite and
Postgres), and runs of the real Dagster jobs from ``sync_pipelines.definitions``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance

from sync_pipelines.cars.assets import run_config_for
from sync_pipelines.definitions import defs


class SyncRun:
    def __init__(self, result):
        self.result = result
        self.success = result.success

    def meta(self, asset_name: str) -> dict[str, Any]:
        [materialization] = self.result.asset_materializations_for_node(asset_name)
        return {k: v.value for k, v in materialization.metadata.items()}

    def checks(self) -> dict[str, bool]:
        return {e.check_name: e.passed for e in self.result.get_asset_check_evaluations()}

    def failure_text(self) -> str:
        texts = []
        for event in self.result.all_events:
            if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"):
                error = getattr(event.event_specific_data, "error", None)
                texts.append(event.message or "")
                if error is not None:
                    texts.append(error.to_string())
        return "\n".join(texts)


class CarsHarness:
    def __init__(self, sandbox, warehouse):
        self.sandbox = sandbox
        self.encar = sandbox.vendors["encar"]
        self.kb = sandbox.vendors["kbchachacha"]
        self.warehouse = warehouse
        self.instance = DagsterInstance.ephemeral()

    def sync(self, mode: str = "incremental", raise_on_error: bool = True, archive: dict | None = None,
             **listing: Any) -> SyncRun:
        result = defs.resolve_job_def("cars_sync_job").execute_in_process(
            run_config=run_config_for(mode, archive=archive, **listing),
            instance=self.instance,
            raise_on_error=raise_on_error,
        )
        return SyncRun(result)

    def archive(self, raise_on_error: bool = True, **config: Any) -> SyncRun:
        result = defs.resolve_job_def("cars_archive_job").execute_in_process(
            run_config={"ops": {"archive_sold_cars_op": {"config": config}}} if config else None,
            instance=self.instance,
            raise_on_error=raise_on_error,
        )
        return SyncRun(result)

    def rows(self, table: str = "cars", source: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        t = self.warehouse.table(table)
        query = sa.select(t)
        if source:
            query = query.where(t.c.source == source)
        with self.warehouse.engine.connect() as conn:
            return {(r.source, r.source_id): dict(r._mapping) for r in conn.execute(query)}

    def listed(self) -> set[tuple[str, str]]:
        return {("encar", i) for i in self.encar.listed_ids()} | {("kbchachacha", s) for s in self.kb.listed_ids()}


def days_from_now(days: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).isoformat()


@pytest.fixture
def cars(sandbox, warehouse) -> CarsHarness:
    return CarsHarness(sandbox, warehouse)
