"""Landing one batch in its transaction: upsert, set rejects aside, resolve old ones, cursor.

The caller owns the transaction (``with warehouse.transaction() as tx``), so whatever else
the batch needs (row locks, archive restores) commits with it, and the cursor never moves
past a batch that did not land.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_pipelines.kit.rejects import OpenRejectKeys
from sync_pipelines.warehouse import UpsertCounts, WarehouseTransaction


@dataclass(frozen=True)
class Reject:
    """A record set aside in ``sync_rejects``: its key, why, and what the vendor sent."""

    key: str
    reason: str
    payload: Any = None


@dataclass(frozen=True)
class Cursor:
    """A ``sync_state`` cursor to store with the batch it covers."""

    entity: str
    value: Any


@dataclass
class BatchLanding:
    """What landing one batch did."""

    counts: UpsertCounts
    rejected: int = 0  # records set aside by this batch
    resolved: int = 0  # older rejects forgotten because their records landed now


def land_batch(
    tx: WarehouseTransaction,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    source: str,
    entity: str,
    landed_keys: Iterable[Any] = (),
    rejects: Iterable[Reject] = (),
    cursor: Cursor | None = None,
    run_id: str | None = None,
    upsert_options: Mapping[str, Any] | None = None,
    open_keys: OpenRejectKeys | None = None,
) -> BatchLanding:
    """Upsert ``rows`` into ``table``, set ``rejects`` aside, resolve the rejects of
    ``landed_keys`` and store ``cursor``, all in ``tx``. With ``open_keys`` (the run's
    :class:`OpenRejectKeys`), only the landed keys that may have an open reject are resolved,
    and this batch's rejects join them."""
    counts = tx.upsert(table, rows, **dict(upsert_options or {}))
    rejects = list(rejects)
    for reject in rejects:
        tx.reject(source, entity, reject.key, reject.reason, payload=reject.payload, run_id=run_id)
    if open_keys is not None:
        open_keys.set_aside(r.key for r in rejects)
        landed_keys = open_keys.among(landed_keys)
    resolved = tx.resolve_rejects(source, entity, landed_keys)
    if cursor is not None:
        tx.set_cursor(source, cursor.entity, cursor.value, run_id)
    return BatchLanding(counts, len(rejects), resolved)
