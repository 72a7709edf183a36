"""Run config shared by every fetching asset (CONTRACT.md section 4: ``mode``)."""

from __future__ import annotations

from typing import Literal

from dagster import Config
from pydantic import Field

SyncMode = Literal["incremental", "full"]


class SyncConfig(Config):
    """``mode``: ``incremental`` (default) reads what changed since the saved cursor;
    ``full`` re-reads everything (and, where the source can, detects deletions)."""

    mode: SyncMode = Field(default="incremental", description="incremental (default) or full")
