"""Procore settings: hosts, OAuth app, paging, rate budget and queue knobs, read at call time."""

from __future__ import annotations

from sync_pipelines.settings import env, env_number, vendor_url

SOURCE = "procore"
# Hosts of the real Procore (CONTRACT.md section 1); the sandbox serves both under /procore.
DEFAULT_API_URL = "https://api.procore.com"
DEFAULT_LOGIN_URL = "https://login.procore.com"
# Procore's out-of-band redirect: the authorize page shows the code instead of redirecting.
OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"

DEFAULT_PER_PAGE = 100
# Incremental reads start this long before the stored cursor: a record saved at Procore just
# as a listing ran may carry an updated_at the listing did not yet show.
DEFAULT_OVERLAP_SECONDS = 60
# A token expiring within this margin is refreshed before the next call, not after a 401.
REFRESH_MARGIN_SECONDS = 120


def api_url() -> str:
    """``PROCORE_API_URL``: the REST host (``https://api.procore.com``)."""
    return vendor_url("PROCORE_API_URL", DEFAULT_API_URL)


def login_url() -> str:
    """``PROCORE_LOGIN_URL``: the OAuth host (``https://login.procore.com``)."""
    return vendor_url("PROCORE_LOGIN_URL", DEFAULT_LOGIN_URL)


def client_id() -> str | None:
    return env("PROCORE_CLIENT_ID")


def client_secret() -> str | None:
    return env("PROCORE_CLIENT_SECRET")


def per_page() -> int:
    """``PROCORE_PER_PAGE``: records per list call (100; Procore allows up to 10,000)."""
    return int(env_number("PROCORE_PER_PAGE", DEFAULT_PER_PAGE, minimum=1, integer=True))


def rate_reserve() -> int:
    """``PROCORE_RATE_LIMIT_RESERVE``: calls left in a window below which a run stops calling (2)."""
    return int(env_number("PROCORE_RATE_LIMIT_RESERVE", 2, integer=True))


def rate_max_wait_seconds() -> float:
    """``PROCORE_RATE_LIMIT_MAX_WAIT``: a window resetting within this is waited for (the 10 s
    spike window); a later reset (the hourly window) ends the run with a backlog (60 s)."""
    return env_number("PROCORE_RATE_LIMIT_MAX_WAIT", 60.0)


def max_in_flight() -> int:
    """``PROCORE_MAX_IN_FLIGHT``: Procore sync runs queued-to-running at once (10)."""
    return int(env_number("PROCORE_MAX_IN_FLIGHT", 10, minimum=1, integer=True))


def starts_per_minute() -> int:
    """``PROCORE_STARTS_PER_MINUTE``: connections that may start syncing in any 60 s (10)."""
    return int(env_number("PROCORE_STARTS_PER_MINUTE", 10, minimum=1, integer=True))


def cleanup_retention_days() -> float:
    """``PROCORE_CLEANUP_RETENTION_DAYS``: run records and resolved rejects kept this long (7)."""
    return env_number("PROCORE_CLEANUP_RETENTION_DAYS", 7.0)
