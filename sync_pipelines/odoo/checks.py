"""Asset checks: no open rejects per Odoo table, and no duplicate invoice names."""

import sqlalchemy as sa
from dagster import AssetCheckResult, AssetChecksDefinition, AssetCheckSeverity, asset_check

from sync_pipelines.odoo.settings import INVOICES, MODEL_SPECS, SOURCE, ModelSpec
from sync_pipelines.warehouse import WarehouseResource


def build_rejects_check(spec: ModelSpec) -> AssetChecksDefinition:
    @asset_check(
        asset=spec.asset_name,
        name="no_open_rejects",
        description=f"Fails while Odoo {spec.model} records sit in sync_rejects (malformed or duplicate).",
    )
    def _check(warehouse: WarehouseResource) -> AssetCheckResult:
        rejects = warehouse.get_warehouse().rejects(SOURCE, spec.entity)
        sample = "; ".join(f"{r['record_key']}: {r['reason']}" for r in rejects[:5])
        return AssetCheckResult(
            passed=not rejects,
            severity=AssetCheckSeverity.ERROR,
            metadata={"open_rejects": len(rejects), "sample": sample or "none"},
            description=None if not rejects else f"{len(rejects)} open reject(s) in sync_rejects: {sample}",
        )

    return _check


@asset_check(
    asset=INVOICES.asset_name,
    name="no_duplicate_invoice_names",
    description="Fails if two live invoices share (company_id, move_type, name), drafts named '/' excepted.",
)
def no_duplicate_invoice_names(warehouse: WarehouseResource) -> AssetCheckResult:
    wh = warehouse.get_warehouse()
    table = wh.table(INVOICES.table)
    query = (
        sa.select(table.c.company_id, table.c.move_type, table.c.name, sa.func.count().label("n"))
        .where(table.c.name != "/", table.c.deleted_at.is_(None))
        .group_by(table.c.company_id, table.c.move_type, table.c.name)
        .having(sa.func.count() > 1)
    )
    with wh.engine.connect() as conn:
        duplicates = [tuple(r) for r in conn.execute(query)]
    return AssetCheckResult(
        passed=not duplicates,
        severity=AssetCheckSeverity.ERROR,
        metadata={"duplicate_names": len(duplicates), "sample": str(duplicates[:5]) if duplicates else "none"},
    )


ODOO_CHECKS = [*(build_rejects_check(spec) for spec in MODEL_SPECS), no_duplicate_invoice_names]
