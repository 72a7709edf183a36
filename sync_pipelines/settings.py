"""Environment-driven settings, read at call time (never at import time).

Every knob the project has lives in the environment (see CONTRACT.md section 1). The
functions here are the one place that knows the variable names and their defaults, so
resources and clients never read ``os.environ`` ad hoc.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# The repository checkout holding this package (an editable install, as `make install` does).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ConfigurationError(ValueError):
    """A variable is set to something unusable: permanent, so never retried; names the variable."""


def env(name: str, default: str | None = None) -> str | None:
    """An environment variable, with empty strings treated as unset."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def project_root() -> Path | None:
    """The repository checkout this package runs from, or None (installed elsewhere)."""
    pyproject = PROJECT_ROOT / "pyproject.toml"
    try:
        if 'name = "sync_pipelines"' in pyproject.read_text():
            return PROJECT_ROOT
    except OSError:
        pass
    return None


def data_dir() -> Path:
    """The local data folder of the embedded default (SQLite files, Dagster home).

    ``SYNC_DATA_DIR``, else ``.sync_data`` in the repository checkout, whatever the working
    directory: a run started from elsewhere must not start an empty database of its own.
    """
    configured = env("SYNC_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    root = project_root()
    if root is None:
        raise ConfigurationError(
            "SYNC_DATA_DIR is unset and sync_pipelines is not running from its repository checkout "
            f"({PROJECT_ROOT} has no sync_pipelines pyproject.toml): set SYNC_DATA_DIR to the data folder"
        )
    return root / ".sync_data"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'warehouse.sqlite'}"


def database_url() -> str:
    """The destination database URL: ``SYNC_DATABASE_URL`` or the embedded SQLite file."""
    return env("SYNC_DATABASE_URL") or default_database_url()


def vendor_url(name: str, default: str) -> str:
    """A vendor base URL from its variable, else ``default`` (the real vendor host, which each
    source's ``settings.py`` names)."""
    return (env(name) or default).rstrip("/")


def env_number(
    name: str, default: float, *, minimum: float = 0, maximum: float | None = None, integer: bool = False
) -> float:
    """A numeric knob from the environment; a clear error naming the variable when it is not
    a finite number within [minimum, maximum]."""
    raw = env(name)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be {'an integer' if integer else 'a number'}, got {raw!r}") from None
    if not math.isfinite(value):  # float("nan") and float("inf") parse, and nan compares as nothing
        raise ConfigurationError(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {raw!r}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name} must be <= {maximum}, got {raw!r}")
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
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def step_retries() -> int:
    """``SYNC_STEP_RETRIES``: how often a step failing for a transient reason is retried (3)."""
    return int(env_number("SYNC_STEP_RETRIES", 3, maximum=20, integer=True))


def step_retry_seconds() -> float:
    """``SYNC_STEP_RETRY_SECONDS``: the first step retry's wait, doubled each time (30 s)."""
    return env_number("SYNC_STEP_RETRY_SECONDS", 30.0, maximum=900)
