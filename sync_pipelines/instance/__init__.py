"""Dagster instance settings of the embedded default (SQLite storage, same policies as production)."""

from __future__ import annotations

import shutil
from pathlib import Path

EMBEDDED_YAML = Path(__file__).with_name("dagster.embedded.yaml")


def prepare_dagster_home(home: Path, *, refresh: bool = False) -> Path:
    """Create ``home`` with the embedded ``dagster.yaml`` unless one is there already.

    ``refresh``: also replace a ``dagster.yaml`` that differs from the shipped one (a home
    made by an older version keeps no stale policy).
    """
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() or (refresh and target.read_bytes() != EMBEDDED_YAML.read_bytes()):
        shutil.copyfile(EMBEDDED_YAML, target)
    return target
