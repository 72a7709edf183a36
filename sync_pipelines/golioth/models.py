"""Golioth records as rows: devices, and telemetry points identified the same whatever the route.

A point is (device, ts, path): ``ts`` in UTC truncated to milliseconds
(:data:`~sync_pipelines.golioth.settings.TS_PRECISION_US`), ``path`` the first segment of the
stream path. Examples: README "One row per point".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sync_pipelines.golioth.settings import ONLINE_WITHIN, TS_PRECISION_US
from sync_pipelines.kit import RecordError

STREAM_META_FIELDS = ("time", "deviceId")
CE_TYPE_PREFIX = "io.golioth.data.v1/.s"
_FRACTION = re.compile(r"(\.\d+)")
# The part of a time below the precision, by its microseconds (a subtraction is 7x a replace's speed).
_BELOW_PRECISION = tuple(dt.timedelta(microseconds=us) for us in range(TS_PRECISION_US))


class PointError(RecordError):
    """A telemetry record, webhook event or device that cannot be stored as is (says why)."""


def parse_time(value: Any) -> dt.datetime:
    """An RFC 3339 time (any fraction length, ``Z`` or an offset) as an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            # The usual shape read in C at once (Python 3.11+ takes Z and cuts nanoseconds too).
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            parsed = _parse_time_text(value)
    else:
        raise PointError(f"not an RFC 3339 time: {value!r}")
    if parsed.tzinfo is dt.timezone.utc:
        return parsed
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _parse_time_text(value: str) -> dt.datetime:
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python reads at most microseconds; nanoseconds are cut (the precision is ms anyway)
    text = _FRACTION.sub(lambda m: m.group(1)[:7], text, count=1)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise PointError(f"not an RFC 3339 time: {value!r}") from None


def normalize_ts(value: Any) -> dt.datetime:
    """A point's identity time: UTC, truncated to the telemetry precision (milliseconds)."""
    parsed = parse_time(value)
    return parsed - _BELOW_PRECISION[parsed.microsecond % TS_PRECISION_US]


def optional_time(value: Any) -> dt.datetime | None:
    if value in (None, "", "-"):
        return None
    try:
        return parse_time(value)
    except PointError:
        return None


@dataclass(frozen=True)
class Point:
    device_id: str
    ts: dt.datetime
    path: str
    payload: Any

    @property
    def key(self) -> tuple[str, dt.datetime, str]:
        return (self.device_id, self.ts, self.path)


def split_path(path: str) -> list[str]:
    return [part for part in path.strip().strip("/").split("/") if part]


def points_from_message(device_id: str, time: Any, path: str, body: Any) -> list[Point]:
    """The points of one message posted to ``/.s/{path}`` (a webhook event, a stream record)."""
    if not device_id:
        raise PointError("no device id")
    ts = normalize_ts(time)
    parts = split_path(path)
    if not parts:
        if not isinstance(body, dict) or not body:
            raise PointError("a message posted to the stream root must be a non-empty JSON object")
        return [Point(device_id, ts, str(k), v) for k, v in sorted(body.items())]
    payload = body
    for part in reversed(parts[1:]):
        payload = {part: payload}
    return [Point(device_id, ts, parts[0], payload)]


def points_from_stream_record(record: dict[str, Any], device_id: str) -> list[Point]:
    """One LightDB Stream record (``{"time", "deviceId", <path>: <value>...}``) as points."""
    if not isinstance(record, dict) or "time" not in record:
        raise PointError("stream record without a time")
    data = [(k, v) for k, v in record.items() if k not in STREAM_META_FIELDS]
    if not data:
        return []
    # A message to the stream root, as points_from_message reads it (inline: once per record).
    device = str(record.get("deviceId") or device_id)
    if not device:
        raise PointError("no device id")
    ts = normalize_ts(record["time"])
    return [Point(device, ts, str(k), v) for k, v in sorted(data)]


def path_from_event_type(event_type: str) -> str:
    """The stream path of a Pipelines ``Ce-Type`` (``io.golioth.data.v1/.s/{path}``)."""
    if not event_type or not event_type.startswith(CE_TYPE_PREFIX):
        raise PointError(f"Ce-Type {event_type!r} is not {CE_TYPE_PREFIX}/<path>")
    return event_type[len(CE_TYPE_PREFIX):]


def points_from_event(event: dict[str, Any]) -> list[Point]:
    """The points of one inbox row (a webhook delivery as received)."""
    path = path_from_event_type(event["event_type"])
    if not event.get("event_time"):
        raise PointError("webhook event without Ce-Time")
    return points_from_message(event["device_id"], event["event_time"], path, event["body"])


def telemetry_row(point: Point, *, via: str, integration_id: str | None, project_id: str | None,
                  received_at: dt.datetime) -> dict[str, Any]:
    return {
        "device_id": point.device_id, "ts": point.ts, "path": point.path, "payload": point.payload,
        "received_via": via, "integration_id": integration_id, "project_id": project_id,
        "received_at": received_at,
    }


def firmware(device: dict[str, Any]) -> tuple[str | None, str | None]:
    main = (((device.get("metadata") or {}).get("update") or {}).get("main")) or {}
    return main.get("version"), main.get("state")


def is_online(last_report: dt.datetime | None, now: dt.datetime) -> bool:
    return last_report is not None and now - last_report <= ONLINE_WITHIN


def device_row(device: dict[str, Any], *, integration_id: str, project_id: str, now: dt.datetime) -> dict[str, Any]:
    """A ``golioth_devices`` row; ``online`` from ``lastReport`` (``status`` is often ``-``)."""
    if not device.get("id"):
        raise PointError("device without an id")
    metadata = device.get("metadata") or {}
    last_report = optional_time(device.get("lastReport") or metadata.get("lastReport"))
    seen = [t for t in (last_report, optional_time(metadata.get("lastSeenOnline"))) if t]
    version, state = firmware(device)
    return {
        "integration_id": integration_id, "device_id": str(device["id"]), "project_id": project_id,
        "name": device.get("name"), "status": device.get("status"), "online": is_online(last_report, now),
        "enabled": device.get("enabled"), "last_report": last_report, "last_seen": max(seen) if seen else None,
        "firmware_version": version, "firmware_state": state,
        "hardware_ids": device.get("hardwareIds") or [], "tag_ids": device.get("tagIds") or [],
        "vendor_created_at": optional_time(device.get("createdAt")),
        "vendor_updated_at": optional_time(device.get("updatedAt")),
        "deleted_at": None, "raw": device, "first_seen_at": now,
    }
