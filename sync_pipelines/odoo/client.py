"""Odoo external API client over JSON-RPC (``POST /jsonrpc``) or JSON-2, on :class:`VendorClient`.

Faults become :class:`OdooError` subclasses naming the fault and carrying Odoo's message
(never its ``debug`` traceback, never the API key). Reads page by keyset on whole seconds of
(``write_date``, ``id``), never by offset (:class:`KeysetPaging`; Odoo README, "How a sync works").
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync_pipelines.http_client import (
    RetryPolicy,
    VendorAuthError,
    VendorClient,
    VendorError,
    VendorHTTPClient,
    VendorResponseError,
)
from sync_pipelines.kit import PageRepeatGuard
from sync_pipelines.odoo.models import strptime_odoo
from sync_pipelines.odoo.settings import KEYSET_ORDER

VENDOR = "odoo"
ENDPOINT = "POST /jsonrpc"
ODOO_DATETIME = "%Y-%m-%d %H:%M:%S"


class OdooError(VendorError):
    """A JSON-RPC fault from Odoo (message redacted, without Odoo's debug traceback)."""


class OdooAccessDeniedError(OdooError, VendorAuthError):
    """Login refused or ``odoo.exceptions.AccessDenied``: wrong database, user or API key."""


class OdooSessionExpiredError(OdooError, VendorAuthError):
    """Fault code 100 ("Odoo Session Expired") that a fresh login did not cure."""


class OdooModelMissingError(OdooError):
    """The model does not exist on that database (its app is not installed).

    Odoo 16 to 19 answer ``execute_kw`` on an unknown model with
    ``UserError("Object <model> doesn't exist")`` (``odoo/service/model.py``, ``execute_cr``):
    JSON-RPC fault code 200, ``data.name`` ``odoo.exceptions.UserError``. Code 404 and
    ``KeyError``, which say the same, are recognised too."""


def _is_missing_model_fault(code: Any, name: str, reason: str, model: str | None) -> bool:
    if code == 404 or name in ("builtins.KeyError", "KeyError"):
        return True
    # A UserError is also every business refusal: only Odoo's own text naming this model
    # counts (translated, it stays a plain OdooError that carries Odoo's message).
    return name.endswith("UserError") and model is not None and reason == f"Object {model} doesn't exist"


def _second_after(write_date: str) -> str:
    at = dt.datetime.strptime(write_date, ODOO_DATETIME)
    return (at + dt.timedelta(seconds=1)).strftime(ODOO_DATETIME)


def within_second(write_date: str) -> list:
    """Records whose write_date falls in that whole second (Odoo keeps microseconds)."""
    return [("write_date", ">=", write_date), ("write_date", "<", _second_after(write_date))]


def keyset_domain(after: tuple[str, int] | None, *, read_ids: Sequence[int] = ()) -> list:
    """Records after the keyset position ``after`` = (write_date, id).

    Odoo keeps write_date with microseconds and compares domains against that value, but
    answers with whole seconds. So the position is a whole second S and an id X, and "after"
    means: a later second (``write_date >= S+1s``), or second S with ``id > X`` (and, while
    paging, not among ``read_ids``, the ids of second S read already). ``('write_date', '=', S)``
    or ``('write_date', '>', S)`` would match almost nothing, resp. the rest of second S.
    """
    if after is None:
        return []
    write_date, record_id = after
    if not record_id and not read_ids:
        return [("write_date", ">=", write_date)]
    rest = [*within_second(write_date)]
    if record_id:
        rest.append(("id", ">", record_id))
    if read_ids:
        rest.append(("id", "not in", sorted(read_ids)))
    return ["|", ("write_date", ">=", _second_after(write_date)), *["&"] * (len(rest) - 1), *rest]


def is_odoo_datetime(value: Any) -> bool:
    """Whether ``value`` is a datetime as Odoo sends it: ``"YYYY-MM-DD HH:MM:SS"``."""
    if not isinstance(value, str) or len(value) != 19:
        return False
    try:
        strptime_odoo(value)
    except ValueError:
        return False
    return True


def keyset_position(record: Any) -> tuple[str, int] | None:
    """(write_date, id) of a record when both are well-formed, else None (never a cursor)."""
    if not isinstance(record, dict):
        return None
    wd, rid = record.get("write_date"), record.get("id")
    if not is_odoo_datetime(wd) or not isinstance(rid, int) or isinstance(rid, bool) or rid <= 0:
        return None
    return (wd, rid)


@dataclass
class OdooClient(VendorClient):
    """One authenticated connection to an Odoo database."""

    url: str
    db: str
    username: str
    api_key: str = field(repr=False)
    timeout: tuple[float, float] = (5.0, 60.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # "jsonrpc" (every Odoo version up to 21) or "json2" (Odoo 19+: POST /json/2/<model>/<method>
    # with the API key as bearer token; each call its own transaction, real HTTP errors).
    protocol: str = "jsonrpc"
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.protocol not in ("jsonrpc", "json2"):
            raise ValueError(f"Odoo protocol must be 'jsonrpc' or 'json2', got {self.protocol!r}")
        self.http = VendorHTTPClient(
            vendor=VENDOR,
            base_url=self.url,
            timeout=self.timeout,
            retry=self.retry,
            headers={"Content-Type": "application/json"},
            secrets=[self.api_key],
            sleep=self.sleep,
        )
        self._ids = itertools.count(1)
        self._uid: int | None = None

    # -- JSON-RPC -------------------------------------------------------------------------

    def call(self, service: str, method: str, *args: Any) -> Any:
        """One JSON-RPC call; returns ``result`` or raises the matching :class:`OdooError`."""
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": next(self._ids),
            "params": {"service": service, "method": method, "args": list(args)},
        }
        # Reads are idempotent: VendorHTTPClient retries 429/5xx and dropped connections.
        response = self.http.post("jsonrpc", json_body=payload)
        body = self.http.decode_json(response)
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise VendorResponseError(VENDOR, ENDPOINT, f"not a JSON-RPC answer: {str(body)[:120]!r}")
        if body.get("error") is not None:
            raise self._fault_error(body["error"], service, method, args)
        return body["result"]

    def _fault_error(self, error: Any, service: str, method: str, args: Sequence[Any]) -> OdooError:
        error = error if isinstance(error, dict) else {"message": str(error)}
        data = error.get("data") if isinstance(error.get("data"), dict) else {}
        code = error.get("code")
        name = str(data.get("name") or "")
        # data.message is Odoo's own reason; error.message is the generic "Odoo Server Error".
        # data.debug (a server traceback) is deliberately never shown.
        reason = str(data.get("message") or error.get("message") or "unknown fault").strip()
        what = f"{service}.{method}"
        if service == "object" and len(args) >= 5:
            what = f"{args[3]}.{args[4]}"
        detail = f"{reason} (fault code {code}{', ' + name if name else ''})"
        if name.endswith(("AccessDenied", "AccessError")):
            return OdooAccessDeniedError(
                VENDOR, ENDPOINT,
                f"Odoo access denied on {what} for user {self.username!r} on database {self.db!r}: {detail}. "
                "Check ODOO_USERNAME and ODOO_API_KEY (API keys expire) and the user's access rights.",
            )
        if code == 100 or "SessionExpired" in name:
            return OdooSessionExpiredError(VENDOR, ENDPOINT, f"Odoo session expired on {what}: {detail}")
        model = str(args[3]) if service == "object" and len(args) >= 4 else None
        if _is_missing_model_fault(code, name, reason, model):
            return OdooModelMissingError(
                VENDOR, ENDPOINT,
                f"Odoo model {model or what!r} missing on database {self.db!r} (is its app installed?): {detail}",
            )
        return OdooError(VENDOR, ENDPOINT, f"Odoo fault on {what}: {detail}")

    # -- authentication -------------------------------------------------------------------

    def login(self) -> int:
        uid = self.call("common", "login", self.db, self.username, self.api_key)
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            raise OdooAccessDeniedError(
                VENDOR, ENDPOINT,
                f"Odoo access denied: login refused for user {self.username!r} on database {self.db!r} "
                "(wrong database, username or API key; check ODOO_DB, ODOO_USERNAME and ODOO_API_KEY)",
            )
        self._uid = uid
        return uid

    @property
    def uid(self) -> int:
        return self._uid if self._uid is not None else self.login()

    def execute_kw(self, model: str, method: str, args: list, kwargs: dict | None = None) -> Any:
        if self.protocol == "json2":
            return self._json2(model, method, args, kwargs or {})

        def once() -> Any:
            return self.call("object", "execute_kw", self.db, self.uid, self.api_key, model, method, args, kwargs or {})

        try:
            return once()
        except OdooSessionExpiredError:
            # API-key calls carry no session, but a proxy or a restarted server may still say
            # so: log in again once, then give up with the clear error.
            self._uid = None
            return once()

    # -- JSON-2 (Odoo 19+) ----------------------------------------------------------------

    # The positional arguments of the methods this client calls, by name (JSON-2 takes
    # named arguments only).
    _JSON2_ARG_NAMES = {"search_read": ("domain", "fields"), "search_count": ("domain",), "read": ("ids", "fields")}

    def _json2(self, model: str, method: str, args: list, kwargs: dict) -> Any:
        body = dict(kwargs)
        for name, value in zip(self._JSON2_ARG_NAMES.get(method, ()), args, strict=False):
            body[name] = value
        endpoint = f"POST /json/2/{model}/{method}"
        response = self.http.post(
            f"json/2/{model}/{method}",
            json_body=body,
            headers={"Authorization": f"bearer {self.api_key}", "X-Odoo-Database": self.db},
            ok_statuses=(400, 401, 403, 404, 422),
        )
        if response.status_code < 300:
            return self.http.decode_json(response)
        try:
            error = response.json()
        except ValueError:
            error = {}
        error = error if isinstance(error, dict) else {}
        name = str(error.get("name") or "")
        detail = f"{error.get('message') or 'no message'} (HTTP {response.status_code}{', ' + name if name else ''})"
        if response.status_code in (401, 403) or name.endswith(("AccessDenied", "AccessError")):
            return_error: OdooError = OdooAccessDeniedError(
                VENDOR, endpoint,
                f"Odoo access denied on {model}.{method} on database {self.db!r}: {detail}. "
                "Check ODOO_API_KEY (API keys expire) and the user's access rights.",
            )
        elif response.status_code == 404:
            return_error = OdooModelMissingError(
                VENDOR, endpoint, f"Odoo model {model!r} or method {method!r} missing on database {self.db!r}: {detail}"
            )
        else:
            return_error = OdooError(VENDOR, endpoint, f"Odoo fault on {model}.{method}: {detail}")
        raise return_error

    # -- reads ----------------------------------------------------------------------------

    def search_read(
        self,
        model: str,
        domain: list,
        fields: Sequence[str],
        *,
        limit: int | None = None,
        order: str = KEYSET_ORDER,
        context: dict | None = None,
    ) -> list[dict]:
        kwargs: dict[str, Any] = {"fields": list(fields), "order": order}
        if limit:
            kwargs["limit"] = limit
        if context:
            kwargs["context"] = context
        result = self.execute_kw(model, "search_read", [domain], kwargs)
        if not isinstance(result, list):
            raise VendorResponseError(VENDOR, ENDPOINT, f"{model}.search_read returned {type(result).__name__}, not a list")
        return result

    def search_count(self, model: str, domain: list, *, context: dict | None = None) -> int:
        kwargs = {"context": context} if context else {}
        result = self.execute_kw(model, "search_count", [domain], kwargs)
        if not isinstance(result, int) or isinstance(result, bool):
            raise VendorResponseError(VENDOR, ENDPOINT, f"{model}.search_count returned {result!r}, not a number")
        return result

    def newest_position(self, model: str, domain: list, *, context: dict | None = None) -> tuple[str, int] | None:
        """The keyset position of the last record matching ``domain``: its second, and the
        highest id within that second (Odoo sorts a second by microseconds, not ids)."""
        newest = self.search_read(model, domain, ["write_date"], limit=1, order="write_date desc, id desc",
                                  context=context)
        position = keyset_position(newest[0]) if newest else None
        if position is None:
            return None
        top = self.search_read(model, [*within_second(position[0]), *domain], ["write_date"], limit=1,
                               order="id desc", context=context)
        return keyset_position(top[0]) if top else position

    def iter_batches(
        self,
        model: str,
        fields: Sequence[str],
        *,
        domain: Sequence = (),
        after: tuple[str, int] | None = None,
        batch_size: int = 100,
        delay_seconds: float = 0.0,
        context: dict | None = None,
    ) -> Iterator[list[dict]]:
        """Every record matching ``domain`` after ``after`` = (write_date, id), each once.

        Yields one list per ``search_read`` call; ``delay_seconds`` pauses between calls.
        Pages by keyset on whole seconds, never by offset (:class:`KeysetPaging`; the Odoo
        README, "Keyset paging"); a batch repeating the previous one fails the run.
        """
        read_fields = list(dict.fromkeys([*fields, "write_date"]))
        paging = KeysetPaging.after(after)
        repeats = PageRepeatGuard(VENDOR, ENDPOINT)
        first = True
        while True:
            if not first and delay_seconds > 0:
                self.sleep(delay_seconds)
            first = False
            keyset, order = paging.query()
            batch = self.search_read(
                model, [*keyset, *domain], read_fields, limit=batch_size, order=order, context=context
            )
            positions = [p for p in map(keyset_position, batch) if p]
            if batch and not positions:
                raise VendorResponseError(
                    VENDOR, ENDPOINT,
                    f"{model}.search_read batch has no usable (write_date, id) to page on after "
                    f"{(paging.second, paging.last_id)}; refusing to page by offset",
                )
            paging.check(model, positions)
            if batch:
                repeats.check([(r.get("id"), r.get("write_date")) for r in batch], page=f"of {model}")
                yield batch
            if not paging.advance(positions, full=len(batch) >= batch_size):
                return


@dataclass
class KeysetPaging:
    """Where paging stands: everything before ``second`` is read; of ``second``, the ids up
    to ``last_id`` and those in ``read_ids``. ``by_id``: paging the rest of ``second`` by id,
    because a whole batch lay within it.

    Odoo sorts by the microsecond write_date, so within one served second records come in
    write order, not id order: after a batch that ends inside second S, the next call
    excludes the ids of S already read (at most that batch's). When a whole batch lies
    within one second, the rest of it is paged by id (``order="id asc"``, ``id > last``,
    excluding the at most two batches of ids already read) before going on. A record written
    while the sync pages moves to a later second and is read again there.
    """

    second: str | None = None
    last_id: int = 0
    read_ids: set[int] = field(default_factory=set)
    by_id: bool = False

    @classmethod
    def after(cls, position: tuple[str, int] | None) -> KeysetPaging:
        return cls(position[0], position[1]) if position else cls()

    def query(self) -> tuple[list, str]:
        """The keyset part of the next call's domain, and its order."""
        if self.by_id:
            assert self.second is not None
            rest = [*within_second(self.second), ("id", ">", self.last_id)]
            if self.read_ids:
                rest.append(("id", "not in", sorted(self.read_ids)))
            return rest, "id asc"
        position = (self.second, self.last_id) if self.second is not None else None
        return keyset_domain(position, read_ids=sorted(self.read_ids)), KEYSET_ORDER

    def check(self, model: str, positions: list[tuple[str, int]]) -> None:
        """Refuse a batch that does not follow the keyset (it would loop or go back)."""
        if not positions:
            return
        if self.by_id:
            if max(rid for _, rid in positions) <= self.last_id or any(wd != self.second for wd, _ in positions):
                raise VendorResponseError(
                    VENDOR, ENDPOINT, f"{model}.search_read ignored the id keyset within {self.second}; refusing to loop"
                )
            return
        newest = positions[-1][0]
        if self.second is not None and newest < self.second:
            raise VendorResponseError(
                VENDOR, ENDPOINT, f"{model}.search_read went back to {newest} after {self.second}; refusing to page"
            )

    def advance(self, positions: list[tuple[str, int]], *, full: bool) -> bool:
        """Move past a batch; False when the read is complete."""
        if self.by_id:
            assert self.second is not None
            if full:
                self.last_id = max(rid for _, rid in positions)
                self.read_ids = {i for i in self.read_ids if i > self.last_id}
            else:  # that second is done: on to the next ones
                self.second, self.last_id, self.read_ids, self.by_id = _second_after(self.second), 0, set(), False
            return True
        if not positions or not full:
            return False
        newest = positions[-1][0]
        ids_in_newest = {rid for wd, rid in positions if wd == newest}
        if newest == self.second:
            # The whole batch lies in one second: page the rest of that second by id.
            self.read_ids |= ids_in_newest
            self.by_id = True
        else:
            self.second, self.last_id, self.read_ids = newest, 0, ids_in_newest
        return True
