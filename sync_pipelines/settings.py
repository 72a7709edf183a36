"""Environment-driven settings, read at call time (never at import time).

Every knob the project has lives in the environment (see CONTRACT.md section 1). The
functions here are the one place that knows the variable names and their defaults, so
resources and clients never read ``os.environ`` ad hoc.
"""

from __future__ import annotations

import os
from pathlib import Path


def env(name: str, default: str | None = None) -> str | None:
    """An environment variable, with empty strings treated as unset."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def data_dir() -> Path:
    """The local data folder of the embedded default (SQLite files, Dagster home)."""
    return Path(env("SYNC_DATA_DIR", ".sync_data")).resolve()


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'warehouse.sqlite'}"


def database_url() -> str:
    """The destination database URL: ``SYNC_DATABASE_URL`` or the embedded SQLite file."""
    return env("SYNC_DATABASE_URL") or default_database_url()


def vendor_url(name: str, default: str) -> str:
    """A vendor base URL from its variable, else ``default`` (the real vendor host, which each
    source's ``settings.py`` names)."""
    return (env(name) or default).rstrip("/")


def env_number(name: str, default: float, *, minimum: float = 0, integer: bool = False) -> float:
    """A numeric knob from the environment; a clear error naming the variable when it is not one."""
    raw = env(name)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_flag(name: str, default: bool) -> bool:
    """An on/off knob: true/false, 1/0, yes/no, on/off."""
    raw = env(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def step_retries() -> int:
    """``SYNC_STEP_RETRIES``: how often a step failing for a transient reason is retried (3)."""
    return int(env_number("SYNC_STEP_RETRIES", 3, integer=True))


def step_retry_seconds() -> float:
    """``SYNC_STEP_RETRY_SECONDS``: the first step retry's wait, doubled each time (30 s)."""
    return env_number("SYNC_STEP_RETRY_SECONDS", 30.0)
