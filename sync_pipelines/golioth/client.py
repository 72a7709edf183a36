"""Golioth REST v1 client on the shared HTTP layer: devices and LightDB Stream, key in ``x-api-key``.

One client per integration; all share the process' ``golioth`` rate limiter. A refused key
(403) is a :class:`GoliothKeyRefusedError` naming the variable and project, never the key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import requests

from sync_pipelines.golioth import settings
from sync_pipelines.golioth.settings import MAX_PER_PAGE, VENDOR
from sync_pipelines.http_client import VendorAuthError, VendorClient, VendorHTTPClient, VendorResponseError
from sync_pipelines.kit import paginate
from sync_pipelines.redaction import register_secret
from sync_pipelines.settings import env


class GoliothKeyMissingError(RuntimeError):
    """The integration's API key variable is not set in this process."""


class GoliothKeyRefusedError(VendorAuthError):
    """Golioth refused the key (HTTP 403)."""


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def read_api_key(api_key_env: str, integration_id: str) -> str:
    key = env(api_key_env)
    if not key:
        raise GoliothKeyMissingError(
            f"golioth integration {integration_id}: environment variable {api_key_env} (its API key) is not set"
        )
    register_secret(key)
    return key


MAX_PAGES = 10_000  # 1,000,000 records per call at perPage 100: a bound, not a plan


class GoliothClient(VendorClient):
    def __init__(self, *, project_id: str, api_key: str, api_key_env: str, base_url: str | None = None,
                 per_page: int = MAX_PER_PAGE):
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be 1..{MAX_PER_PAGE}, got {per_page}")
        self.project_id = project_id
        self.api_key_env = api_key_env
        self.per_page = per_page
        self.http = VendorHTTPClient(
            vendor=VENDOR,
            base_url=base_url or settings.api_url(),
            headers={"x-api-key": api_key, "Accept": "application/json"},
            secrets=[api_key],
            rate_limit_per_second=settings.requests_per_second() or None,
        )

    def _refused(self, response: requests.Response) -> None:
        if response.status_code == 403:
            raise GoliothKeyRefusedError(
                VENDOR, f"GET {response.request.path_url.split('?')[0]}",
                f"API key in ${self.api_key_env} refused for project {self.project_id} (HTTP 403)", status=403,
            )

    def _page(self, path: str, params: dict[str, Any], page: int) -> dict[str, Any]:
        body = self.http.get_json(path, params={**params, "page": page, "perPage": self.per_page}, check=self._refused)
        if not isinstance(body, dict) or not isinstance(body.get("list"), list):
            raise VendorResponseError(VENDOR, f"GET {path}", "answer has no 'list' array")
        return body

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Every page of a ``{"list", "page", "perPage", "total"}`` answer (0-based pages),
        until a short page or ``total``; a page repeating the one before fails the run."""
        seen = 0

        def is_last(body: dict[str, Any]) -> bool:
            nonlocal seen
            seen += len(body["list"])
            total = body.get("total")
            return len(body["list"]) < self.per_page or (isinstance(total, int) and seen >= total)

        for body in paginate(lambda n: self._page(path, params, n), keys=_record_keys, is_last=is_last,
                             max_pages=MAX_PAGES, vendor=VENDOR, endpoint=f"GET {path}", first_page=0):
            yield body["list"]

    def devices(self) -> list[dict[str, Any]]:
        path = f"/projects/{self.project_id}/devices"
        return [device for page in self._pages(path, {}) for device in page]

    def stream(self, device_id: str, start: dt.datetime, end: dt.datetime) -> Iterator[dict[str, Any]]:
        """A device's stream records with ``start <= time < end``."""
        path = f"/projects/{self.project_id}/devices/{device_id}/stream"
        for page in self._pages(path, {"start": rfc3339(start), "end": rfc3339(end)}):
            yield from page


def _record_keys(body: dict[str, Any]) -> list[str]:
    """What tells two pages apart: device ids, or each stream record's time and fields
    (as the answer orders them: a page served again comes in the same order)."""
    return [(r.get("id") or r.get("time"), *r) if isinstance(r, dict) else repr(r) for r in body["list"]]
