"""The report base every sync returns: counts, rejects and samples; its run metadata is
derived from its fields (numbers, flags and :class:`UpsertCounts` by default)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync_pipelines.warehouse import UpsertCounts

_KEY = "sync_pipelines.metric"


def metric(key: str | None = None, *, render: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Field metadata: include the field in the run metadata, under ``key`` (default: its
    name), as ``render(value)`` (a mapping is merged in, key by key)."""
    return {_KEY: {"key": key, "render": render, "include": True}}


def not_metric() -> dict[str, Any]:
    """Field metadata: leave a numeric field out of the run metadata."""
    return {_KEY: {"include": False}}


def _is_metric_value(value: Any) -> bool:
    return isinstance(value, (int, float, bool, UpsertCounts))


@dataclass
class SyncReport:
    """What one sync of one entity did. Subclasses add their counters as fields.

    ``as_metadata`` takes every int/float/bool/UpsertCounts field (floats rounded to 3
    places, flags as 0/1) unless marked ``not_metric()``, plus fields marked ``metric()``.
    """

    entity: str  # sync_state / sync_rejects entity (e.g. "encar", "invoices")
    mode: str  # "incremental" or "full"
    fetched: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    rejected: int = 0
    reject_samples: list[str] = field(default_factory=list)

    def add_reject_samples(self, samples: Iterable[str], limit: int = 10) -> None:
        """Keep up to ``limit`` samples in all, the first ones seen."""
        room = max(0, limit - len(self.reject_samples))
        self.reject_samples.extend(list(samples)[:room])

    def as_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            rule = f.metadata.get(_KEY, {})
            value = getattr(self, f.name)
            if not rule.get("include", _is_metric_value(value)):
                continue
            if rule.get("render"):
                value = rule["render"](value)
            if isinstance(value, UpsertCounts):
                value = value.as_metadata()
            if isinstance(value, Mapping):
                metadata.update(value)
            else:
                metadata[rule.get("key") or f.name] = _metadata_value(value)
        return metadata


def _metadata_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return round(value, 3)
    return value
