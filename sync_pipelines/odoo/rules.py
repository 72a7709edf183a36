"""Model-specific steps the generic Odoo model sync calls through ``ModelSpec.rules``.

The defaults do nothing; ``invoice_names.py`` is the one model with rules of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync_pipelines.kit import Reject
    from sync_pipelines.odoo.sync import ModelSyncRun
    from sync_pipelines.warehouse import WarehouseTransaction


class ModelRules:
    """Hooks of one model into its sync; subclass and override the ones it needs."""

    def screen_batch(
        self, tx: WarehouseTransaction, run: ModelSyncRun, rows: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Before the upsert, in the batch's transaction: the rows to land and the rejects."""
        return rows, []

    def finish_run(self, run: ModelSyncRun) -> None:
        """After every batch of the run was read (and, in full mode, deletions marked)."""


NO_RULES = ModelRules()
