"""Golioth REST v1 client on the shared HTTP layer: devices and LightDB Stream, key in ``x-api-key``.

One client per integration (a project and the variable holding its key). Every client of
the process shares the ``golioth`` rate limiter, so a backfill and the live pulls wait on
the same budget. A refused key (403) is a :class:`GoliothKeyRefusedError` naming the
variable and the project, never the key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import requests

from sync_pipelines.golioth import settings
from sync_pipelines.golioth.settings import MAX_PER_PAGE, VENDOR
from sync_pipelines.http_client import VendorAuthError, VendorHTTPClient, VendorResponseError
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


class GoliothClient:
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

    @property
    def stats(self):
        return self.http.stats

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GoliothClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _refused(self, response: requests.Response) -> None:
        if response.status_code == 403:
            raise GoliothKeyRefusedError(
                VENDOR, f"GET {response.request.path_url.split('?')[0]}",
                f"API key in ${self.api_key_env} refused for project {self.project_id} (HTTP 403)", status=403,
            )

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Every page of a ``{"list", "page", "perPage", "total"}`` answer (0-based pages)."""
        page, seen = 0, 0
        while True:
            body = self.http.get_json(path, params={**params, "page": page, "perPage": self.per_page},
                                      check=self._refused)
            if not isinstance(body, dict) or not isinstance(body.get("list"), list):
                raise VendorResponseError(VENDOR, f"GET {path}", "answer has no 'list' array")
            items = body["list"]
            seen += len(items)
            yield items
            total = body.get("total")
            if not items or len(items) < self.per_page or (isinstance(total, int) and seen >= total):
                return
            page += 1

    def devices(self) -> list[dict[str, Any]]:
        path = f"/projects/{self.project_id}/devices"
        return [device for page in self._pages(path, {}) for device in page]

    def stream(self, device_id: str, start: dt.datetime, end: dt.datetime) -> Iterator[dict[str, Any]]:
        """A device's stream records with ``start <= time < end``."""
        path = f"/projects/{self.project_id}/devices/{device_id}/stream"
        for page in self._pages(path, {"start": rfc3339(start), "end": rfc3339(end)}):
            yield from page
