"""The one HTTP layer every vendor client is built on: explicit timeouts, retries with backoff
and jitter (``Retry-After``, ``X-Rate-Limit-*``), a per-vendor rate limiter shared by every
client of that vendor in the process, and errors that name vendor, endpoint and status, never
a secret. The story: README, "HTTP layer".
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from sync_pipelines.redaction import get_logger, redact, redact_url, register_secret

log = get_logger("sync_pipelines.http")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class VendorError(Exception):
    """Base of every error a vendor client raises. Its message is always redacted."""

    def __init__(
        self, vendor: str, endpoint: str, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        self.vendor = vendor
        self.endpoint = endpoint
        self.status = status
        self.retry_after = retry_after  # seconds the vendor asked to wait, when it said so
        text = f"{vendor} {endpoint}: {message}"
        super().__init__(redact(text))


class VendorHTTPError(VendorError):
    """The vendor answered with an error status, or could not be reached, for good."""


class VendorResponseError(VendorError):
    """The vendor answered 2xx but the body is not what the contract says (malformed)."""


class VendorAuthError(VendorError):
    """Credentials were refused (401/403, access denied, expired session)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # A single Retry-After longer than this is not waited out inside a run: the run fails
    # clearly and Dagster's run retry (or the next schedule tick) picks it up later.
    max_wait: float = 300.0
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for retry number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1))))


# Waits under a microsecond count as done: Unix seconds in a float resolve ~0.2 us, so
# sleeping such a remainder may not move the clock at all (an endless loop under a fake one).
_RESOLUTION = 1e-6


class RateLimiter:
    """A thread-safe token bucket, plus a "not before" time set by the vendor's own headers.

    One clock serves both (Unix seconds by default, since vendors say when a window resets
    in Unix seconds); tests inject a fake clock together with a sleep that advances it.
    """

    def __init__(self, rate_per_second: float | None, burst: int = 1, clock: Callable[[], float] = time.time):
        self.rate = rate_per_second
        self.capacity = max(1, burst)
        self.tokens = float(self.capacity)
        self.clock = clock
        self.updated = clock()
        self.not_before = 0.0
        self._lock = threading.Lock()

    def defer_until(self, when: float) -> None:
        """No call (of any client of this vendor) before ``when``, on this limiter's clock."""
        with self._lock:
            self.not_before = max(self.not_before, when)

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until a call may be made; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                pause = self.not_before - now
                if pause < _RESOLUTION and self.rate:
                    self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
                    self.updated = now
                    if self.tokens >= 1 - _RESOLUTION * self.rate:
                        self.tokens = max(0.0, self.tokens - 1)
                        return waited
                    pause = (1 - self.tokens) / self.rate
                elif pause < _RESOLUTION:
                    return waited
            sleep(pause)
            waited += pause


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter_for(
    vendor: str, rate_per_second: float | None, burst: int = 1, clock: Callable[[], float] = time.time
) -> RateLimiter:
    """The process-wide limiter of a vendor (created on first use, with that caller's settings)."""
    with _limiters_lock:
        limiter = _limiters.get(vendor)
        if limiter is None:
            limiter = _limiters[vendor] = RateLimiter(rate_per_second, burst, clock)
        return limiter


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def rate_limit_reset_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until ``X-Rate-Limit-Reset`` (Unix seconds) when the window is exhausted."""
    remaining = headers.get("X-Rate-Limit-Remaining")
    reset = headers.get("X-Rate-Limit-Reset")
    if remaining is None or reset is None:
        return None
    try:
        if int(float(remaining)) > 0:
            return None
        return max(0.0, float(reset) - (now if now is not None else time.time()))
    except ValueError:
        return None


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    throttled_seconds: float = 0.0

    def as_metadata(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_http_requests": self.requests,
            f"{prefix}_http_retries": self.retries,
            f"{prefix}_http_wait_seconds": round(self.throttled_seconds, 3),
        }


class ClosesOnExit:
    """``with client:`` closes the client on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class VendorHTTPClient(ClosesOnExit):
    """A retrying, rate-limited, secret-safe HTTP client bound to one vendor base URL.

    ``secrets`` are values (API keys, tokens, cookies) that must never be shown: they are
    registered for redaction so that errors and logs mask them.
    """

    vendor: str
    base_url: str
    timeout: tuple[float, float] = (5.0, 30.0)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_limit_per_second: float | None = None
    rate_limit_burst: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)
    secrets: Iterable[str] = ()
    sleep: Callable[[float], None] = time.sleep
    stats: ClientStats = field(default_factory=ClientStats)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        for secret in self.secrets:
            register_secret(secret)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": "sync_pipelines/0.1", **dict(self.headers)})
        # The environment's proxies and CA bundle are read once per host, not by requests on every
        # call (a tenth of a large backfill); ~/.netrc never supplies a vendor's credentials.
        self.session.trust_env = False
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._proxies: dict[str, dict[str, str]] = {}
        # Shared by every client of the vendor in the process; its clock (Unix seconds) is also
        # "now" for Retry-After dates and X-Rate-Limit-Reset, so that a wait computed here and
        # the limiter's "not before" are on one time base (tests inject a fake clock through
        # rate_limiter_for before building clients).
        self.limiter = rate_limiter_for(self.vendor, self.rate_limit_per_second, self.rate_limit_burst)

    # -- public API -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: Iterable[int] = (),
        idempotent: bool = True,
        timeout: tuple[float, float] | None = None,
        check: Callable[[requests.Response], None] | None = None,
    ) -> requests.Response:
        """Send a request, retrying what is safe to retry; return a 2xx (or ``ok_statuses``) answer.

        ``idempotent=False`` (e.g. an OAuth refresh with a single-use token) retries only
        answers the vendor refused outright (429/503), never a timeout or dropped connection
        after which the request may have been applied.

        ``check`` sees every answer before its status is acted on and may raise to stop
        there: a body that says more than its status (a bot challenge served as 403/503)
        is then the client's own error, neither retried as an outage nor called refused
        credentials.
        """
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        endpoint = f"{method.upper()} {urlsplit(url).path}"
        allowed = set(ok_statuses)
        attempt = 0
        while True:
            attempt += 1
            self.stats.throttled_seconds += self.limiter.acquire(self.sleep)
            self.stats.requests += 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    json=json_body,
                    headers=headers,
                    timeout=timeout or self.timeout,
                    proxies=self._proxies_for(url),
                )
            except _TRANSPORT_ERRORS as exc:
                reason = _describe_transport_error(exc, timeout or self.timeout, url)
                if not idempotent or attempt >= self.retry.max_attempts:
                    raise VendorHTTPError(
                        self.vendor, endpoint, f"{reason} (gave up after {attempt} attempt(s))"
                    ) from None
                self._wait(self.retry.backoff(attempt), endpoint, reason, attempt)
                continue

            self._note_rate_headers(response)
            if check is not None:
                check(response)
            status = response.status_code
            if 200 <= status < 300 or status in allowed:
                return response
            retryable = status in self.retry.retry_statuses and (idempotent or status in (429, 503))
            if not retryable:
                raise self._status_error(endpoint, response, attempt)
            if attempt >= self.retry.max_attempts:
                raise self._status_error(endpoint, response, attempt, gave_up=True)
            self._wait(self._status_wait(response, endpoint, attempt), endpoint, f"HTTP {status}", attempt)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def _proxies_for(self, url: str) -> dict[str, str]:
        """``*_PROXY`` / ``NO_PROXY`` for the URL's host, as requests would apply them."""
        host = urlsplit(url).netloc
        if host not in self._proxies:
            self._proxies[host] = requests.utils.get_environ_proxies(url)
        return self._proxies[host]

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        return self.decode_json(response)

    def post_json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("POST", path, **kwargs)
        return self.decode_json(response)

    def decode_json(self, response: requests.Response) -> Any:
        """Parse a JSON body or raise a :class:`VendorResponseError` that says where and why."""
        try:
            return response.json()
        except (ValueError, json.JSONDecodeError) as exc:
            endpoint = f"{response.request.method} {urlsplit(response.url).path}"
            snippet = response.text[:120].replace("\n", " ")
            raise VendorResponseError(
                self.vendor, endpoint, f"malformed JSON body (HTTP {response.status_code}): {exc}; starts {snippet!r}",
                status=response.status_code,
            ) from None

    def close(self) -> None:
        self.session.close()

    # -- internals --------------------------------------------------------------------

    def _status_wait(self, response: requests.Response, endpoint: str, attempt: int) -> float:
        """How long to wait before retrying a retryable status: what the vendor asks
        (``Retry-After``, an exhausted rate window), else backoff; too long fails the run."""
        status = response.status_code
        now = self.limiter.clock()
        wait = parse_retry_after(response.headers.get("Retry-After"), now)
        if wait is None and status == 429:
            wait = rate_limit_reset_wait(response.headers, now)
        if wait is not None and wait > self.retry.max_wait:
            raise VendorHTTPError(
                self.vendor,
                endpoint,
                f"HTTP {status}; vendor asks to wait {wait:.0f}s, more than the {self.retry.max_wait:.0f}s "
                "a run waits; the next run will pick up from the saved cursor",
                status=status,
                retry_after=wait,
            )
        if wait is None:
            return self.retry.backoff(attempt)
        wait += random.uniform(0, min(1.0, wait * 0.1))  # never earlier than asked
        # The vendor throttles the account, not this client: every client and thread of the
        # vendor in this process holds off until then.
        self.limiter.defer_until(now + wait)
        return wait

    def _wait(self, seconds: float, endpoint: str, reason: str, attempt: int) -> None:
        self.stats.retries += 1
        self.stats.throttled_seconds += seconds
        log.warning(
            "%s %s: %s, retry %d/%d in %.2fs", self.vendor, endpoint, reason, attempt, self.retry.max_attempts - 1, seconds
        )
        self.sleep(seconds)

    def _note_rate_headers(self, response: requests.Response) -> None:
        # A 2xx that says the window is used up makes the *next* call wait for the reset,
        # instead of spending a request to learn it from a 429.
        now = self.limiter.clock()
        wait = rate_limit_reset_wait(response.headers, now)
        if wait and 200 <= response.status_code < 300:
            self.limiter.defer_until(now + min(wait, self.retry.max_wait))

    def _status_error(
        self, endpoint: str, response: requests.Response, attempt: int, gave_up: bool = False
    ) -> VendorError:
        status = response.status_code
        detail = _error_detail(response)
        suffix = f" (gave up after {attempt} attempts)" if gave_up else ""
        message = f"HTTP {status}{': ' + detail if detail else ''}{suffix}"
        cls = VendorAuthError if status in (401, 403) else VendorHTTPError
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self.limiter.clock())
        return cls(self.vendor, endpoint, message, status=status, retry_after=retry_after)


class VendorClient(ClosesOnExit):
    """Base of a vendor client that talks through one :class:`VendorHTTPClient`, ``self.http``
    (set in ``__init__``/``__post_init__``): ``stats``, ``close`` and ``with`` once."""

    http: VendorHTTPClient

    @property
    def stats(self) -> ClientStats:
        return self.http.stats

    def close(self) -> None:
        self.http.close()


def _describe_transport_error(exc: Exception, timeout: tuple[float, float], url: str) -> str:
    """Why no answer came, with where it was asked: host, port, the variable naming it, the cause."""
    where = _where(url)
    if isinstance(exc, requests.ConnectTimeout):
        return f"connect timed out after {timeout[0]}s to {where}"
    if isinstance(exc, requests.ReadTimeout):
        return f"read timed out after {timeout[1]}s waiting for {where}"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed to {where}: {_transport_cause(exc)}"
    return f"{type(exc).__name__} talking to {where}"


def _where(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{parts.hostname}:{port}"
    variable = url_variable(url)
    return f"{where} ({variable})" if variable else where


def url_variable(url: str) -> str | None:
    """The environment variable (``*_URL``) that set the base of ``url``, when one did."""
    best = None
    for name, value in os.environ.items():
        value = value.rstrip("/")
        if name.endswith("_URL") and value and url.startswith(value) and (best is None or len(value) > len(best[1])):
            best = (name, value)
    return best[0] if best else None


_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _transport_cause(exc: Exception) -> str:
    """The operating system's or server's reason (connection refused, name not known, reset)."""
    text = str(exc)
    found = _ERRNO_TEXT.findall(text)
    if found:
        return found[-1].strip()
    if "RemoteDisconnected" in text or "Remote end closed" in text:
        return "the server closed the connection without answering"
    if "Connection aborted" in text:
        return "connection aborted"
    return "connection failed"


def _error_detail(response: requests.Response) -> str:
    """A short, redacted reason from an error body (vendors put it in message/error/errors)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return redact(text[:200]) if text and not text.lstrip().startswith("<") else ""
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "errors", "detail"):
            if body.get(key):
                return redact(json.dumps(body[key]) if not isinstance(body[key], str) else body[key])[:300]
    return ""


__all__ = [
    "ClientStats",
    "ClosesOnExit",
    "RateLimiter",
    "RetryPolicy",
    "VendorAuthError",
    "VendorClient",
    "VendorError",
    "VendorHTTPClient",
    "VendorHTTPError",
    "VendorResponseError",
    "parse_retry_after",
    "rate_limit_reset_wait",
    "rate_limiter_for",
    "redact_url",
]
