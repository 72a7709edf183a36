"""Encar client: the ``ModifiedDate``-sorted list (offset paging) and the vehicle detail.

Built on the shared :class:`~sync_pipelines.http_client.VendorHTTPClient` (timeouts,
retries on 429/5xx honouring Retry-After, rate limit, redaction). Only the base URL differs
between the real ``https://api.encar.com`` and the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sync_pipelines.cars.models import StatusAnswer, encar_status_from_detail
from sync_pipelines.cars.settings import (
    ENCAR,
    ENCAR_DETAIL_PATH,
    ENCAR_LIST_PATH,
    ENCAR_LIST_QUERY,
    ENCAR_PAGE_SIZE,
    ENCAR_SORT,
)
from sync_pipelines.http_client import RetryPolicy, VendorClient, VendorHTTPClient, VendorResponseError

# A truncated/garbled body is usually transient: ask again this many times, then fail the
# run. A malformed page is never read as an empty page (that would end paging early).
MALFORMED_PAGE_ATTEMPTS = 3


@dataclass
class ListPage:
    number: int  # 1-based
    offset: int
    items: list[Any]
    total: int | None  # "Count" when the answer has it (unconfirmed on the real API)
    last: bool  # no further page: short/empty page, or offset + items reached Count


@dataclass
class EncarClient(VendorClient):
    base_url: str
    page_size: int = ENCAR_PAGE_SIZE
    requests_per_second: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    malformed_retries: int = 0  # counted for metadata

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.http = VendorHTTPClient(
            vendor=ENCAR,
            base_url=self.base_url,
            timeout=(5.0, 30.0),
            retry=self.retry,
            rate_limit_per_second=self.requests_per_second,
            headers={"Accept": "application/json", "Referer": "https://www.encar.com/", "Origin": "https://www.encar.com"},
        )

    def list_page(self, number: int) -> ListPage:
        offset = (number - 1) * self.page_size
        params = {
            "count": "true",
            "q": ENCAR_LIST_QUERY,
            "sr": f"|{ENCAR_SORT}|{offset}|{self.page_size}",  # requests URL-encodes the pipes
        }
        for attempt in range(1, MALFORMED_PAGE_ATTEMPTS + 1):
            response = self.http.get(ENCAR_LIST_PATH, params=params)
            try:
                body = self.http.decode_json(response)
                if not isinstance(body, dict) or not isinstance(body.get("SearchResults"), list):
                    raise VendorResponseError(
                        ENCAR, f"GET {ENCAR_LIST_PATH}", f"page {number}: answer has no SearchResults list",
                        status=response.status_code,
                    )
            except VendorResponseError:
                if attempt == MALFORMED_PAGE_ATTEMPTS:
                    raise
                self.malformed_retries += 1
                continue
            break
        items = body["SearchResults"]
        total = body.get("Count")
        total = int(total) if isinstance(total, (int, float)) and not isinstance(total, bool) else None
        last = len(items) < self.page_size or (total is not None and offset + len(items) >= total)
        return ListPage(number=number, offset=offset, items=items, total=total, last=last)

    def car_status(self, car_id: str) -> StatusAnswer:
        """Ask the detail whether a car is still advertised (404 / not ADVERTISE = sold)."""
        path = ENCAR_DETAIL_PATH.format(id=car_id)
        response = self.http.get(path, ok_statuses=(404,))
        body = None if response.status_code == 404 else self.http.decode_json(response)
        return encar_status_from_detail(response.status_code, body)
