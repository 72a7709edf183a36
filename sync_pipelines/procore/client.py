"""Procore clients on the shared :class:`VendorHTTPClient`: OAuth (login host) and REST v1.0.

:class:`ProcoreOAuth` never retries a refresh after an ambiguous failure (refresh tokens are
single-use); :class:`ProcoreClient` pages, refreshes once on a 401 and keeps the rate budget
(:class:`RateBudget`). Errors name endpoint, status and user, never a token. Story: README.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import requests

from sync_pipelines.http_client import (
    RetryPolicy,
    VendorAuthError,
    VendorClient,
    VendorHTTPClient,
    VendorHTTPError,
    VendorResponseError,
)
from sync_pipelines.kit import paginate
from sync_pipelines.redaction import register_secret

API_PREFIX = "rest/v1.0"
# Procore allows 10,000 per page; even at 100 a page this bounds a listing at a million records.
MAX_PAGES = 10_000


@dataclass(frozen=True)
class TokenAnswer:
    """A token endpoint's answer (tokens kept out of repr)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    created_at: float

    @property
    def expires_at(self) -> float:
        return self.created_at + self.expires_in


class InvalidGrantError(VendorAuthError):
    """Procore refused a code or refresh token (``invalid_grant``): only a reconnect helps."""


class RateBudgetSpent(Exception):
    """The rate window is spent and resets later than a run waits: stop, keep what is synced."""

    def __init__(self, remaining: int | None, reset: float | None):
        self.remaining, self.reset = remaining, reset
        when = f"{time.strftime('%H:%M:%S', time.gmtime(reset))} UTC" if reset else "later"
        super().__init__(f"Procore rate budget spent ({remaining} call(s) left, window resets {when})")


@dataclass
class RateBudget:
    """What ``X-Rate-Limit-Limit/Remaining/Reset`` last said, and what to do before a call.

    Procore reports whichever of its windows (hourly, 10 s spike) is closer to running out.
    At ``reserve`` calls left, a reset within ``max_wait`` seconds is waited for; a later one
    raises :class:`RateBudgetSpent` instead of spending the call on a 429.
    """

    reserve: int = 2
    max_wait: float = 60.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None

    def note(self, headers: Mapping[str, str]) -> None:
        try:
            remaining, reset = headers.get("X-Rate-Limit-Remaining"), headers.get("X-Rate-Limit-Reset")
            if remaining is not None and reset is not None:
                self.remaining, self.reset = int(float(remaining)), float(reset)
                self.limit = int(float(headers.get("X-Rate-Limit-Limit") or 0)) or self.limit
        except ValueError:
            pass  # a malformed header says nothing; the next answer will

    def before_call(self) -> None:
        if self.remaining is None or self.reset is None or self.remaining > self.reserve:
            return
        wait = self.reset - self.clock()
        if wait > self.max_wait:
            raise RateBudgetSpent(self.remaining, self.reset)
        if wait > 0:
            self.sleep(wait)
        self.remaining = self.reset = None  # a new window: its headers come with the next answer


class ProcoreOAuth(VendorClient):
    """The OAuth endpoints of ``PROCORE_LOGIN_URL`` for one app (client id and secret)."""

    def __init__(
        self, login_url: str, client_id: str, client_secret: str, *, user_id: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.login_url = login_url.rstrip("/")
        self.client_id, self._client_secret = client_id, client_secret
        # Errors say whose token call failed (never the token): "procore login (user 7001) POST ..."
        self.vendor = f"procore login (user {user_id})" if user_id else "procore login"
        self.http = VendorHTTPClient(
            vendor=self.vendor,
            base_url=self.login_url,
            secrets=[client_secret],
            retry=RetryPolicy(max_attempts=3, max_wait=60.0),
            sleep=sleep,
        )

    def authorize_url(self, redirect_uri: str, state: str | None = None) -> str:
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri}
        if state:
            params["state"] = state
        return f"{self.login_url}/oauth/authorize?{urlencode(params)}"

    def exchange_code(self, code: str, redirect_uri: str) -> TokenAnswer:
        register_secret(code)
        return self._token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    def refresh(self, refresh_token: str) -> TokenAnswer:
        """One refresh call. Not retried after a timeout or dropped connection: Procore may
        have spent the refresh token, and sending it again would be refused."""
        register_secret(refresh_token)
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, token: str) -> None:
        register_secret(token)
        self.http.post("oauth/revoke", data={"token": token, **self._client()}, idempotent=False)

    def _client(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self._client_secret}

    def _token(self, form: dict[str, str]) -> TokenAnswer:
        response = self.http.post(
            "oauth/token", data={**form, **self._client()}, idempotent=False, ok_statuses=(400, 401)
        )
        body = self.http.decode_json(response)
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            cls = InvalidGrantError if error == "invalid_grant" else VendorAuthError
            raise cls(self.vendor, "POST /oauth/token", f"HTTP {response.status_code}: {error or 'refused'}",
                      status=response.status_code)
        try:
            answer = TokenAnswer(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_in=int(body.get("expires_in") or 5400),
                created_at=float(body.get("created_at") or time.time()),
            )
        except (KeyError, TypeError, ValueError):
            raise VendorResponseError(self.vendor, "POST /oauth/token", "token answer without the token pair") from None
        register_secret(answer.access_token)
        register_secret(answer.refresh_token)
        return answer



class TokenSource(Protocol):
    """Where a client gets its access token: the connection store, under its row lock."""

    def access_token(self) -> tuple[str, int]:
        """The current access token and its version (refreshed first if about to expire)."""

    def refreshed(self, stale_version: int) -> tuple[str, int]:
        """A token newer than ``stale_version``: refreshed now, or by whoever did it first."""


class ProcoreClient(VendorClient):
    """One user's calls to the Procore REST API."""

    def __init__(
        self,
        api_url: str,
        user_id: str,
        tokens: TokenSource,
        *,
        per_page: int = 100,
        budget: RateBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.user_id = user_id
        self.tokens = tokens
        self.per_page = per_page
        self.budget = budget or RateBudget()
        self.vendor = f"procore (user {user_id})"
        self.http = VendorHTTPClient(
            vendor=self.vendor,
            base_url=api_url,
            retry=RetryPolicy(max_attempts=6, max_wait=self.budget.max_wait),
            sleep=sleep,
        )

    def me(self) -> dict[str, Any]:
        return self.http.decode_json(self.get("me"))

    def companies(self) -> Iterator[list[dict[str, Any]]]:
        return self.pages("companies")

    def projects(self, company_id: int, updated_since: str | None = None) -> Iterator[list[dict[str, Any]]]:
        params = {"company_id": company_id, **_updated_filter(updated_since)}
        return self.pages("projects", params, company_id=company_id)

    def rfis(self, company_id: int, project_id: int, updated_since: str | None = None) -> Iterator[list[dict[str, Any]]]:
        return self.pages(f"projects/{project_id}/rfis", _updated_filter(updated_since), company_id=company_id)

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, company_id: int | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list, in order, until ``Total``/``Link`` say it is the last; a page
        repeating the one before fails (kit ``paginate``) instead of looping."""
        endpoint = f"GET /{API_PREFIX}/{path}"

        def fetch(number: int) -> _Page:
            response = self.get(path, {**(params or {}), "page": number, "per_page": self.per_page}, company_id=company_id)
            records = self.http.decode_json(response)
            if not isinstance(records, list):
                raise VendorResponseError(self.vendor, endpoint, "expected a JSON array")
            return _Page(number, response, records)

        for page in paginate(
            fetch, keys=_Page.ids, is_last=lambda page: page.is_last(self.per_page),
            max_pages=MAX_PAGES, vendor=self.vendor, endpoint=endpoint,
        ):
            yield page.records

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, company_id: int | None = None) -> requests.Response:
        """One GET with the user's token; a 401 gets one refresh and one retry."""
        headers = {"Procore-Company-Id": str(company_id)} if company_id is not None else {}
        token, version = self.tokens.access_token()
        response = self._send(path, params, headers, token)
        if response.status_code == 401:
            token, version = self.tokens.refreshed(version)
            response = self._send(path, params, headers, token)
            if response.status_code == 401:
                raise VendorAuthError(self.vendor, f"GET /{API_PREFIX}/{path}", "HTTP 401 again after a token refresh",
                                      status=401)
        return response

    def _send(self, path: str, params: Any, headers: dict[str, str], token: str) -> requests.Response:
        self.budget.before_call()
        try:
            response = self.http.get(
                f"{API_PREFIX}/{path}", params=params, headers={**headers, "Authorization": f"Bearer {token}"},
                ok_statuses=(401,),
            )
        except VendorHTTPError as exc:
            if exc.status == 429:  # still spent after the waits a run makes: a backlog, not a failure
                reset = self.budget.clock() + exc.retry_after if exc.retry_after is not None else self.budget.reset
                raise RateBudgetSpent(0, reset) from None
            raise
        self.budget.note(response.headers)
        return response


# Procore's updated_at filter is a closed range; the upper end only has to be after anything.
FILTER_END = "2999-12-31T23:59:59Z"


def _updated_filter(updated_since: str | None) -> dict[str, str]:
    return {"filters[updated_at]": f"{updated_since}...{FILTER_END}"} if updated_since else {}


@dataclass(frozen=True)
class _Page:
    number: int
    response: requests.Response
    records: list[dict[str, Any]]

    def ids(self) -> list[Any]:
        return [r.get("id") for r in self.records if isinstance(r, dict)]

    def is_last(self, per_page: int) -> bool:
        """``Total`` says how many there are; else ``Link`` has no ``next``; else a short page."""
        total = self.response.headers.get("Total")
        if total is not None and total.isdigit():
            return self.number * per_page >= int(total) or not self.records
        link = self.response.headers.get("Link")
        if link is not None:
            return 'rel="next"' not in link
        return len(self.records) < per_page
