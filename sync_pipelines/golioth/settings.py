"""Golioth source constants and environment knobs (CONTRACT.md sections 1-4), read at call time."""

from __future__ import annotations

import datetime as dt

from sync_pipelines.settings import env, env_number

SOURCE = "golioth"  # sync_state / sync_rejects source, Dagster pool, asset group
VENDOR = "golioth"  # the shared HTTP layer's vendor (one rate limiter for live pulls and backfills)

DEFAULT_API_URL = "https://api.golioth.io/v1"
API_URL_ENV = "GOLIOTH_API_URL"
WEBHOOK_TOKEN_ENV = "GOLIOTH_WEBHOOK_TOKEN"
RETENTION_ENV = "GOLIOTH_TELEMETRY_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 90
REQUESTS_PER_SECOND_ENV = "GOLIOTH_REQUESTS_PER_SECOND"
# Golioth documents no rate limit; be polite (the sandbox sets 0, unthrottled).
DEFAULT_REQUESTS_PER_SECOND = 10.0
WEBHOOK_MAX_BYTES_ENV = "GOLIOTH_WEBHOOK_MAX_BYTES"
DEFAULT_WEBHOOK_MAX_BYTES = 64 * 1024

MAX_PER_PAGE = 100  # Golioth's perPage ceiling
# The live pull re-reads this much before its cursor: points that became visible in the
# stream a little after their own timestamp (device clocks, upload delays) are still caught.
DEFAULT_OVERLAP = dt.timedelta(minutes=10)
# A device is online when it reported this recently (Golioth's own status is often "-").
ONLINE_WITHIN = dt.timedelta(hours=1)
# Telemetry ts precision: every route's time is truncated to this many microseconds.
TS_PRECISION_US = 1000

INTEGRATIONS_TABLE = "golioth_integrations"
DEVICES_TABLE = "golioth_devices"
TELEMETRY_TABLE = "device_telemetry_history"
TELEMETRY_ARCHIVE_TABLE = "device_telemetry_history_archive"
INBOX_TABLE = "golioth_webhook_inbox"

CURSOR_ENTITY = "telemetry/{integration_id}"  # sync_state entity of an integration's live cursor


def api_url() -> str:
    return (env(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")


def requests_per_second() -> float:
    return env_number(REQUESTS_PER_SECOND_ENV, DEFAULT_REQUESTS_PER_SECOND)


def retention_days() -> int:
    return int(env_number(RETENTION_ENV, DEFAULT_RETENTION_DAYS, integer=True))


def webhook_max_bytes() -> int:
    return int(env_number(WEBHOOK_MAX_BYTES_ENV, DEFAULT_WEBHOOK_MAX_BYTES, minimum=1, integer=True))


def webhook_token() -> str | None:
    return env(WEBHOOK_TOKEN_ENV)
