"""``golioth_integrations``: one row per Golioth project synced, validated before it is written.

A row names the variable holding the API key, never the key. The scheduling rule
(:func:`evaluate`) and the atomic slot claim (:func:`claim_slot`) live here; see the README's
"Scheduling".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from sync_pipelines.golioth.settings import INTEGRATIONS_TABLE
from sync_pipelines.settings import env
from sync_pipelines.warehouse import Warehouse, utcnow

STATUSES = ("active", "paused")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class IntegrationError(ValueError):
    """A bad integration value, or an unknown integration; nothing was changed."""


@dataclass
class Integration:
    id: str
    project_id: str
    api_key_env: str
    enabled: bool = True
    status: str = "active"
    frequency_minutes: int = 5
    time_window_start: str | None = None
    time_window_end: str | None = None
    timezone: str = "UTC"
    device_filter: dict[str, Any] = field(default_factory=dict)
    last_run_at: dt.datetime | None = None
    next_run_at: dt.datetime | None = None
    last_error: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Integration:
        names = cls.__dataclass_fields__
        values = {k: v for k, v in row.items() if k in names}
        values["device_filter"] = values.get("device_filter") or {}
        for name in ("last_run_at", "next_run_at"):
            if values.get(name) is not None and values[name].tzinfo is None:  # SQLite keeps no zone
                values[name] = values[name].replace(tzinfo=dt.timezone.utc)
        return cls(**values)

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def window(self) -> str | None:
        if not self.time_window_start:
            return None
        return f"{self.time_window_start}-{self.time_window_end} {self.timezone}"


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def validate(integration: Integration, *, require_env_set: bool = True) -> None:
    """Raise :class:`IntegrationError` naming the first bad value."""
    if not _ID.match(integration.id or ""):
        raise IntegrationError(f"integration id {integration.id!r}: letters, digits, '_', '.', '-' (at most 64)")
    if not integration.project_id or not _ID.match(integration.project_id):
        raise IntegrationError(f"project id {integration.project_id!r} is not a Golioth project id")
    if not _ENV_NAME.match(integration.api_key_env or ""):
        raise IntegrationError(
            f"api key variable {integration.api_key_env!r} is not an environment variable name (e.g. GOLIOTH_API_KEY_ACME)"
        )
    if require_env_set and env(integration.api_key_env) is None:
        raise IntegrationError(
            f"unknown environment variable {integration.api_key_env}: set it (to the project's API key) "
            "in the environment of the Dagster processes first"
        )
    if not isinstance(integration.frequency_minutes, int) or integration.frequency_minutes < 1:
        raise IntegrationError(f"frequency must be at least 1 minute, got {integration.frequency_minutes!r}")
    if integration.status not in STATUSES:
        raise IntegrationError(f"status must be one of {STATUSES}, got {integration.status!r}")
    _validate_window(integration)
    _validate_filter(integration.device_filter)


def _validate_window(integration: Integration) -> None:
    start, end = integration.time_window_start, integration.time_window_end
    try:
        ZoneInfo(integration.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise IntegrationError(f"unknown time zone {integration.timezone!r} (an IANA name, e.g. Europe/Paris)") from None
    if (start is None) != (end is None):
        raise IntegrationError("a time window needs both a start and an end (HH:MM)")
    if start is None:
        return
    for name, value in (("start", start), ("end", end)):
        if not _HHMM.match(value):
            raise IntegrationError(f"time window {name} must be HH:MM (24 h), got {value!r}")
    if start == end:
        raise IntegrationError(f"time window end equals its start ({start}): an empty window would never run")


def _validate_filter(device_filter: dict[str, Any]) -> None:
    unknown = set(device_filter) - {"tags", "name_pattern"}
    if unknown:
        raise IntegrationError(f"device filter keys are 'tags' and 'name_pattern', got {sorted(unknown)}")
    tags = device_filter.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise IntegrationError("device filter tags must be a list of tag ids")


def in_window(integration: Integration, now: dt.datetime) -> bool:
    """Whether ``now`` is inside the integration's window (start inclusive, end exclusive)."""
    if not integration.time_window_start:
        return True
    local = now.astimezone(integration.tz)
    minute = local.hour * 60 + local.minute
    start, end = _minutes(integration.time_window_start), _minutes(integration.time_window_end)
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # crosses midnight


def slot_start(frequency_minutes: int, now: dt.datetime) -> dt.datetime:
    """The start of the frequency slot holding ``now`` (slots tile time from the Unix epoch)."""
    minutes = int((now - _EPOCH).total_seconds() // 60)
    return _EPOCH + dt.timedelta(minutes=minutes - minutes % frequency_minutes)


@dataclass(frozen=True)
class Decision:
    integration_id: str
    due: bool
    reason: str
    slot: dt.datetime | None = None

    @property
    def run_key(self) -> str:
        return f"golioth:{self.integration_id}:{self.slot:%Y-%m-%dT%H:%MZ}"


def evaluate(integration: Integration, now: dt.datetime) -> Decision:
    """Whether the integration is due at ``now``, and if not, why."""
    iid = integration.id
    if not integration.enabled:
        return Decision(iid, False, "disabled")
    if integration.status != "active":
        return Decision(iid, False, f"status is {integration.status}, not active")
    if not in_window(integration, now):
        local = now.astimezone(integration.tz).strftime("%H:%M")
        return Decision(iid, False, f"outside its window {integration.window} (local time {local})")
    if integration.next_run_at is not None and now < integration.next_run_at:
        return Decision(iid, False, f"not due until {integration.next_run_at:%Y-%m-%d %H:%M} UTC "
                                    f"(every {integration.frequency_minutes} min)")
    return Decision(iid, True, "due", slot_start(integration.frequency_minutes, now))


# -- the store --------------------------------------------------------------------------------


def load(warehouse: Warehouse, ids: list[str] | None = None) -> list[Integration]:
    table = warehouse.table(INTEGRATIONS_TABLE)
    query = sa.select(table).order_by(table.c.id)
    if ids:
        query = query.where(table.c.id.in_(ids))
    with warehouse.engine.connect() as conn:
        return [Integration.from_row(dict(r._mapping)) for r in conn.execute(query)]


def get(warehouse: Warehouse, integration_id: str) -> Integration:
    found = load(warehouse, [integration_id])
    if not found:
        raise IntegrationError(f"no golioth integration {integration_id!r}")
    return found[0]


def add(warehouse: Warehouse, integration: Integration) -> Integration:
    validate(integration)
    now = utcnow()
    with warehouse.transaction() as tx:
        table = tx.table(INTEGRATIONS_TABLE)
        if tx.execute(sa.select(table.c.id).where(table.c.id == integration.id)).first():
            raise IntegrationError(f"golioth integration {integration.id!r} already exists (remove it first)")
        tx.execute(table.insert().values(**integration.as_row(), created_at=now, synced_at=now))
    return integration


def update(warehouse: Warehouse, integration_id: str, **values: Any) -> Integration:
    """Change fields of one integration, validated as a whole; ``next_run_at`` is reset so a
    re-enabled integration runs at the next tick."""
    current = get(warehouse, integration_id)
    for name, value in values.items():
        setattr(current, name, value)
    validate(current, require_env_set="api_key_env" in values)
    if "device_filter" in values:
        values["device_filter"] = values["device_filter"] or None
    with warehouse.transaction() as tx:
        table = tx.table(INTEGRATIONS_TABLE)
        tx.execute(table.update().where(table.c.id == integration_id)
                   .values(**values, next_run_at=None, synced_at=utcnow()))
    return current


def remove(warehouse: Warehouse, integration_id: str) -> None:
    with warehouse.transaction() as tx:
        table = tx.table(INTEGRATIONS_TABLE)
        if not tx.execute(table.delete().where(table.c.id == integration_id)).rowcount:
            raise IntegrationError(f"no golioth integration {integration_id!r}")


def claim_slot(warehouse: Warehouse, decision: Decision, frequency_minutes: int, now: dt.datetime) -> bool:
    """Record that ``decision.slot`` got its run; False when another tick already claimed it."""
    with warehouse.transaction() as tx:
        table = tx.table(INTEGRATIONS_TABLE)
        claimed = tx.execute(
            table.update()
            .where(table.c.id == decision.integration_id,
                   sa.or_(table.c.next_run_at.is_(None), table.c.next_run_at <= now),
                   # an edit clears next_run_at; a slot that had its run still gets no second one
                   sa.or_(table.c.last_run_at.is_(None), table.c.last_run_at < decision.slot))
            .values(last_run_at=decision.slot,
                    next_run_at=decision.slot + dt.timedelta(minutes=frequency_minutes))
        ).rowcount
    return claimed == 1


def record_result(warehouse: Warehouse, integration_id: str, error: str | None) -> None:
    with warehouse.transaction() as tx:
        table = tx.table(INTEGRATIONS_TABLE)
        tx.execute(table.update().where(table.c.id == integration_id).values(last_error=error))


def project_ids(warehouse: Warehouse) -> set[str]:
    table = warehouse.table(INTEGRATIONS_TABLE)
    with warehouse.engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.project_id).distinct()).scalars())
