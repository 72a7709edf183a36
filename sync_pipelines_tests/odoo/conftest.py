"""Odoo test harness: the sandboxed Odoo, the destination (SQLite and Postgres), job runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance

from sync_pipelines.definitions import defs
from sync_pipelines.odoo.assets import run_config_for
from sync_pipelines.odoo.settings import MODEL_SPECS, SOURCE, ModelSpec, specs_for_types


class SyncRun:
    def __init__(self, result):
        self.result = result
        self.success = result.success

    def meta(self, entity_or_spec: str | ModelSpec) -> dict[str, Any]:
        spec = entity_or_spec if isinstance(entity_or_spec, ModelSpec) else specs_for_types(entity_or_spec)[0]
        [materialization] = self.result.asset_materializations_for_node(spec.asset_name)
        return {k: v.value for k, v in materialization.metadata.items()}

    def checks(self) -> dict[tuple[str, str], bool]:
        return {(e.asset_key.path[-1], e.check_name): e.passed for e in self.result.get_asset_check_evaluations()}

    def failure_text(self) -> str:
        texts = []
        for event in self.result.all_events:
            if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"):
                data = event.event_specific_data
                error = getattr(data, "error", None)
                texts.append(event.message or "")
                if error is not None:
                    texts.append(error.to_string())
        return "\n".join(texts)


class OdooHarness:
    def __init__(self, sandbox, warehouse):
        self.sandbox = sandbox
        self.vendor = sandbox.vendors["odoo"]
        self.warehouse = warehouse
        self.instance = DagsterInstance.ephemeral()

    def control(self, action: str, **payload: Any) -> Any:
        return self.vendor.control(action, payload)

    def sync(self, mode: str = "incremental", types=None, raise_on_error: bool = True, **config: Any) -> SyncRun:
        specs = specs_for_types(types)
        config.setdefault("delay_ms", 0)
        job = defs.resolve_job_def("odoo_sync_job")
        result = job.execute_in_process(
            run_config=run_config_for(specs, mode, **config),
            instance=self.instance,
            asset_selection=[AssetKey(spec.asset_name) for spec in specs],
            raise_on_error=raise_on_error,
        )
        return SyncRun(result)

    def archive(self, **config: Any) -> dict[str, int]:
        """Run odoo_archive_job; returns the rows moved per table (from the output metadata)."""
        job = defs.resolve_job_def("odoo_archive_job")
        result = job.execute_in_process(
            run_config={"ops": {"odoo_archive_rows": {"config": config}}}, instance=self.instance
        )
        assert result.success
        [output] = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = output.event_specific_data.metadata
        return {
            spec.table: metadata[f"moved_{spec.table}"].value for spec in MODEL_SPECS
        }

    def rows(self, table: str, where: str | None = None, **params: Any) -> list[dict[str, Any]]:
        # Through the reflected table, so values come back typed (datetimes on SQLite too).
        t = self.warehouse.table(table)
        query = sa.select(t).order_by(t.c.id)
        if where:
            query = query.where(sa.text(where))
        with self.warehouse.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query, params)]

    def row(self, table: str, record_id: int) -> dict[str, Any] | None:
        found = self.rows(table, "id = :id", id=record_id)
        return found[0] if found else None

    def odoo_ids(self, spec: ModelSpec) -> set[int]:
        """Ids the sandbox holds for a model, within the spec's domain (archived included)."""
        records = self.vendor._search(spec.model, list(spec.domain), {"active_test": False})
        return {r["id"] for r in records}

    def rejects(self, entity: str | None = None) -> list[dict[str, Any]]:
        return self.warehouse.rejects(SOURCE, entity)


@pytest.fixture
def odoo(sandbox, warehouse) -> Iterator[OdooHarness]:
    harness = OdooHarness(sandbox, warehouse)
    try:
        yield harness
    finally:
        harness.instance.dispose()


ALL_SPECS = MODEL_SPECS
