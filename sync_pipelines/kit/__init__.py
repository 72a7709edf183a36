"""The shared source kit: the per-batch and per-asset plumbing every source uses.

Names, signatures and one example each: ``CONTRIBUTING.md`` ("The source kit").
"""

from sync_pipelines.http_client import VendorClient
from sync_pipelines.kit.assets import SOURCE_TAG, finish_sync_asset, run_tags
from sync_pipelines.kit.landing import BatchLanding, Cursor, Reject, land_batch
from sync_pipelines.kit.paging import PageRepeatGuard, RepeatedPageError, paginate
from sync_pipelines.kit.partitions import sync_dynamic_partitions
from sync_pipelines.kit.readahead import read_ahead
from sync_pipelines.kit.records import RecordError
from sync_pipelines.kit.rejects import (
    REREAD_REJECTS_PER_RUN,
    OpenReject,
    OpenRejectKeys,
    open_rejects,
)
from sync_pipelines.kit.report import SyncReport, metric, not_metric

__all__ = [
    "REREAD_REJECTS_PER_RUN",
    "SOURCE_TAG",
    "BatchLanding",
    "Cursor",
    "OpenReject",
    "OpenRejectKeys",
    "PageRepeatGuard",
    "RecordError",
    "Reject",
    "RepeatedPageError",
    "SyncReport",
    "VendorClient",
    "finish_sync_asset",
    "land_batch",
    "metric",
    "not_metric",
    "open_rejects",
    "paginate",
    "read_ahead",
    "run_tags",
    "sync_dynamic_partitions",
]
