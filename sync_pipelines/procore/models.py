"""Procore records as rows: one :class:`EntitySpec` per synced entity (table, columns, checks).

A record without an integer ``id`` or with an unreadable timestamp (:class:`RecordError`) is
not guessed at: it goes to ``sync_rejects`` with the reason, and the rest of its page lands.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync_pipelines.kit import RecordError, Reject

Row = dict[str, Any]


def parse_time(value: Any) -> dt.datetime | None:
    """A Procore timestamp (ISO 8601, ``Z`` or an offset) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RecordError(f"timestamp {value!r} is not a string")
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"timestamp {value!r} is not ISO 8601") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)


def parse_date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if isinstance(value, str) and value else None


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:limit] if limit else text


def _company_row(record: dict, parent: dict) -> Row:
    return {"id": record["id"], "name": _text(record.get("name")), "is_active": record.get("is_active"),
            "created_at": None, "updated_at": parse_time(record.get("updated_at")), "deleted_at": None, "raw": record}


def _project_row(record: dict, parent: dict) -> Row:
    company = record.get("company")
    company_id = company.get("id") if isinstance(company, dict) else parent["company_id"]
    return {
        "id": record["id"], "company_id": int(company_id or parent["company_id"]),
        "name": _text(record.get("display_name") or record.get("name")),
        "project_number": _text(record.get("project_number"), 128), "active": record.get("active"),
        "created_at": parse_time(record.get("created_at")), "updated_at": parse_time(record.get("updated_at")),
        "deleted_at": None, "raw": record,
    }


def _rfi_row(record: dict, parent: dict) -> Row:
    return {
        "id": record["id"], "project_id": parent["project_id"], "company_id": parent["company_id"],
        "number": _text(record.get("number"), 64), "subject": _text(record.get("subject")),
        "status": _text(record.get("status"), 32), "due_date": parse_date(record.get("due_date")),
        "created_at": parse_time(record.get("created_at")), "updated_at": parse_time(record.get("updated_at")),
        "deleted_at": None, "raw": record,
    }


@dataclass(frozen=True)
class EntitySpec:
    entity: str  # sync_state / sync_rejects entity and metadata prefix
    table: str
    to_row: Callable[[dict, dict], Row]

    def rows(self, records: list[Any], parent: dict) -> tuple[list[Row], list[Reject]]:
        rows: list[Row] = []
        rejects: list[Reject] = []
        for record in records:
            key = record.get("id") if isinstance(record, dict) else None
            if not isinstance(key, int) or isinstance(key, bool):
                rejects.append(Reject(repr(key), "record without an integer id", record))
                continue
            try:
                rows.append(self.to_row(record, parent))
            except (RecordError, TypeError, ValueError, KeyError) as exc:
                rejects.append(Reject(str(key), f"unreadable {self.entity} record: {exc}", record))
        return rows, rejects


COMPANIES = EntitySpec("companies", "procore_companies", _company_row)
PROJECTS = EntitySpec("projects", "procore_projects", _project_row)
RFIS = EntitySpec("rfis", "procore_rfis", _rfi_row)
