"""Ending a sync asset (log line, metadata, reject samples) and the run tags of a source."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dagster import MaterializeResult, MetadataValue

from sync_pipelines.kit.report import SyncReport

# The tag the instance's run queue limits to one run per source (dagster.yaml).
SOURCE_TAG = "sync_pipelines/source"


def run_tags(source: str, *, mode: str | None = None, trigger: str | None = None) -> dict[str, str]:
    """The tags of a source's jobs and run requests: ``sync_pipelines/source`` always,
    ``sync_pipelines/mode`` and ``sync_pipelines/trigger`` when given."""
    tags = {SOURCE_TAG: source}
    if mode is not None:
        tags["sync_pipelines/mode"] = mode
    if trigger is not None:
        tags["sync_pipelines/trigger"] = trigger
    return tags


def finish_sync_asset(
    logger: Any,
    report: SyncReport,
    summary: str,
    *,
    destination: str,
    metadata: Mapping[str, Any] | None = None,
    notes: Iterable[str] = (),
) -> MaterializeResult:
    """Log ``summary`` (then each of ``notes``) and return the asset's result: the report's
    metadata, ``metadata`` (e.g. HTTP stats), ``destination`` and the reject samples."""
    logger.info(summary)
    for note in notes:
        logger.info(note)
    result = {**report.as_metadata(), **dict(metadata or {}), "destination": destination}
    if report.reject_samples:
        result["reject_samples"] = MetadataValue.md("\n".join(f"- {s}" for s in report.reject_samples))
    return MaterializeResult(metadata=result)
