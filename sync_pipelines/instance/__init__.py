"""Dagster instance settings of the embedded default (SQLite storage, same policies as production)."""

from __future__ import annotations

import shutil
from pathlib import Path

EMBEDDED_YAML = Path(__file__).with_name("dagster.embedded.yaml")


def prepare_dagster_home(home: Path) -> Path:
    """Create ``home`` with the embedded ``dagster.yaml`` unless one is there already."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(EMBEDDED_YAML, target)
    return target
