"""The shared HTTP layer against the sandbox's faults, over real loopback HTTP."""

from __future__ import annotations

import email.utils
import http.server
import json
import threading
import time

import pytest

from sync_pipelines.http_client import (
    RetryPolicy,
    VendorAuthError,
    VendorHTTPClient,
    VendorHTTPError,
    VendorResponseError,
    parse_retry_after,
    rate_limiter_for,
)
from sync_pipelines.sandbox import Sandbox, SandboxVendor, json_response, route

SECRET = "sk_live_abcdef123456"


class ProbeVendor(SandboxVendor):
    """A minimal vendor for testing the framework itself (lives with the tests, not the product)."""

    name = "probe"
    prefix = "/probe"

    def reset(self, seed: int) -> None:
        self.items = [{"id": i, "value": i * 10} for i in range(5)]
        self.remaining = 100

    @route("GET", r"/items")
    def list_items(self, request):
        return json_response({"list": self.items, "total": len(self.items)})

    @route("GET", r"/limited")
    def limited(self, request):
        self.remaining -= 1
        return json_response(
            {"ok": True},
            **{"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": str(self.remaining),
               "X-Rate-Limit-Reset": str(int(time.time()) + 1)},
        )

    @route("GET", r"/secure")
    def secure(self, request):
        if request.header("x-api-key") != SECRET:
            return json_response({"code": 403, "message": f"bad key {request.header('x-api-key')}"}, 403)
        return json_response({"ok": True})

    @route("GET", r"/missing")
    def missing(self, request):
        return json_response({"code": 404, "message": "not found"}, 404)


@pytest.fixture
def probe():
    with Sandbox(seed=1, vendors=[], extra_vendors=[ProbeVendor]) as sb:
        yield sb


def client(sb: Sandbox, vendor: str = "probe", **kw) -> VendorHTTPClient:
    kw.setdefault("retry", RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05))
    return VendorHTTPClient(vendor=vendor, base_url=sb.url("probe"), timeout=(2, 2), **kw)


def test_retry_after_is_honoured(probe: Sandbox):
    probe.faults.add("status", vendor="probe", status=429, retry_after=1, times=2)
    waits: list[float] = []
    c = client(probe, sleep=lambda s: (waits.append(s), time.sleep(s)))
    assert c.get_json("/items")["total"] == 5
    assert len(waits) == 2 and all(w >= 1.0 for w in waits)
    assert c.stats.retries == 2 and c.stats.requests == 3


def test_503_storm_ridden_out_with_backoff(probe: Sandbox):
    probe.faults.add("status", vendor="probe", status=503, times=3)
    c = client(probe)
    assert c.get_json("/items")["total"] == 5
    assert c.stats.retries == 3


def test_gives_up_after_the_limit_with_a_clear_error(probe: Sandbox):
    probe.faults.add("status", vendor="probe", status=503, retry_after=0, times=None)
    c = client(probe)
    with pytest.raises(VendorHTTPError) as err:
        c.get("/items")
    message = str(err.value)
    assert "probe" in message and "GET /probe/items" in message and "HTTP 503" in message
    assert "gave up after 4 attempts" in message
    assert err.value.status == 503


def test_retry_after_beyond_the_cap_fails_fast(probe: Sandbox):
    probe.faults.add("status", vendor="probe", status=429, retry_after=3600, times=1)
    c = client(probe, retry=RetryPolicy(max_attempts=4, max_wait=60))
    with pytest.raises(VendorHTTPError, match="asks to wait 3600s"):
        c.get("/items")


def test_timeout_then_recovery(probe: Sandbox):
    probe.faults.add("slow", vendor="probe", delay=1.5, times=1)
    c = VendorHTTPClient(
        vendor="probe", base_url=probe.url("probe"), timeout=(1, 0.5),
        retry=RetryPolicy(max_attempts=3, backoff_base=0.01),
    )
    assert c.get_json("/items")["total"] == 5
    assert c.stats.retries == 1


def test_timeouts_exhausted_name_the_timeout(probe: Sandbox):
    probe.faults.add("slow", vendor="probe", delay=1.0, times=None)
    c = VendorHTTPClient(
        vendor="probe", base_url=probe.url("probe"), timeout=(1, 0.3),
        retry=RetryPolicy(max_attempts=2, backoff_base=0.01),
    )
    with pytest.raises(VendorHTTPError, match=r"read timed out after 0.3s waiting for 127.0.0.1:\d+ \(gave up after 2"):
        c.get("/items")


def test_dropped_connection_is_retried(probe: Sandbox):
    probe.faults.add("disconnect", vendor="probe", times=1)
    assert client(probe).get_json("/items")["total"] == 5


def test_non_idempotent_request_not_retried_after_dropped_connection(probe: Sandbox):
    probe.faults.add("disconnect", vendor="probe", times=1)
    with pytest.raises(VendorHTTPError, match="connection failed"):
        client(probe).post("/items", idempotent=False)


def test_malformed_body_is_a_clear_error(probe: Sandbox):
    probe.faults.add("malformed", vendor="probe", times=1)
    with pytest.raises(VendorResponseError, match="malformed JSON body"):
        client(probe).get_json("/items")


def test_wrong_typed_record_fault(probe: Sandbox):
    probe.faults.add("wrong_type", vendor="probe", field="value", times=1)
    body = client(probe).get_json("/items")
    assert body["list"][0]["value"] == "not-a-number"
    assert body["list"][1]["value"] == 10


def test_404_can_be_an_answer(probe: Sandbox):
    response = client(probe).get("/missing", ok_statuses=(404,))
    assert response.status_code == 404
    with pytest.raises(VendorHTTPError, match="HTTP 404: not found"):
        client(probe).get("/missing")


def test_exhausted_rate_window_defers_the_next_call(probe: Sandbox):
    probe.vendor("probe").remaining = 1  # the next answer says Remaining: 0
    slept: list[float] = []
    c = client(probe, sleep=lambda s: (slept.append(s), time.sleep(s)))
    c.get("/limited")
    c.get("/limited")
    assert slept and slept[0] > 0  # waited for X-Rate-Limit-Reset instead of hitting a 429


class BodySaysMore(Exception):
    pass


def test_check_sees_an_error_answer_before_it_is_retried_or_raised(probe: Sandbox):
    seen: list[int] = []

    def check(response) -> None:
        seen.append(response.status_code)
        if response.status_code in (403, 503) and "sandbox fault" in response.text:
            raise BodySaysMore(response.status_code)

    for status in (503, 403):
        fault = probe.faults.add("status", vendor="probe", status=status, retry_after=0, times=None)
        c = client(probe)
        with pytest.raises(BodySaysMore):
            c.get("/items", check=check)
        # stopped at the first answer: no retry of the 503, no VendorAuthError for the 403
        assert fault.hits == 1 and c.stats.requests == 1 and c.stats.retries == 0
        probe.faults.clear()
    assert seen == [503, 403]

    # a check that lets the answer through changes nothing: a 503 is retried as ever, a 2xx returned
    probe.faults.add("status", vendor="probe", status=503, retry_after=0, times=2)
    c = client(probe)
    assert c.get_json("/items", check=lambda response: seen.append(response.status_code))["total"] == 5
    assert seen[2:] == [503, 503, 200]
    assert c.stats.requests == 3 and c.stats.retries == 2


def test_auth_error_never_shows_the_key(probe: Sandbox):
    c = client(probe, headers={"x-api-key": "wrong_key_987654"}, secrets=["wrong_key_987654"])
    with pytest.raises(VendorAuthError) as err:
        c.get("/secure")
    assert "HTTP 403" in str(err.value)
    assert "wrong_key_987654" not in str(err.value)
    ok = client(probe, headers={"x-api-key": SECRET}, secrets=[SECRET])
    assert ok.get_json("/secure") == {"ok": True}


def test_parse_retry_after_forms():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class FakeClock:
    """Unix seconds that move only when a client sleeps: waits are asserted, never spent."""

    def __init__(self, start: float | None = None):
        self.now = time.time() if start is None else start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _vendor_name(request) -> str:
    # a limiter is per vendor and per process: a name of its own keeps tests apart
    return f"probe-{request.node.name}"


def _vendor_on(request, clock: FakeClock, rate_per_second: float | None = None, burst: int = 1) -> str:
    """A vendor of this test whose limiter (made here, first) runs on ``clock``: the clients
    built after it use that clock for waits, rate windows and Retry-After dates."""
    vendor = _vendor_name(request)
    rate_limiter_for(vendor, rate_per_second, burst, clock)
    return vendor


def test_429_with_only_rate_limit_headers_waits_until_the_reset(probe: Sandbox, request):
    clock = FakeClock()
    reset = int(clock.now) + 30
    probe.faults.add(
        "status", vendor="probe", status=429, times=1,
        headers={"X-Rate-Limit-Limit": "3600", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": str(reset)},
    )
    c = client(probe, _vendor_on(request, clock), sleep=clock.sleep)
    started = time.monotonic()
    assert c.get_json("/items")["total"] == 5
    assert clock.now >= reset  # waited out until the window reset, not a short backoff
    assert sum(clock.slept) < 30 + 3.1  # (+ at most 1 s of jitter, + rounding of the start)
    assert c.stats.retries == 1 and c.stats.requests == 2
    assert time.monotonic() - started < 5  # the fake clock, not wall time


def test_a_retry_after_told_to_one_client_holds_back_the_vendors_other_clients(probe: Sandbox, request):
    clock = FakeClock()
    vendor = _vendor_on(request, clock)
    second_waits: list[float] = []
    served_before_second_sent: list[int] = []

    def second_sleep(seconds: float) -> None:
        second_waits.append(seconds)
        served_before_second_sent.append(probe.vendor("probe").requests_served)
        clock.sleep(seconds)

    second = client(probe, vendor, sleep=second_sleep)

    def first_sleep(seconds: float) -> None:
        # While the first client waits out its 429, the second one wants to call the vendor.
        assert second.get_json("/items")["total"] == 5
        clock.sleep(seconds)

    probe.faults.add("status", vendor="probe", status=429, retry_after=20, times=1)
    first = client(probe, vendor, sleep=first_sleep)
    assert second.limiter is first.limiter  # same vendor, same process: one limiter
    assert first.get_json("/items")["total"] == 5
    assert len(second_waits) == 1 and second_waits[0] >= 20  # the second client waited too
    assert served_before_second_sent == [0]  # ...before sending anything (the 429 is not served by the vendor)
    assert second.stats.requests == 1 and second.stats.retries == 0  # and never met the 429 itself


def test_token_bucket_limits_a_burst_to_the_configured_rate(probe: Sandbox, request):
    clock = FakeClock()
    sent_at: list[float] = []
    vendor = _vendor_on(request, clock, rate_per_second=5, burst=2)
    c = client(probe, vendor, sleep=clock.sleep, rate_limit_per_second=5, rate_limit_burst=2)
    start = clock.now
    started = time.monotonic()
    for _ in range(12):
        c.get("/items")
        sent_at.append(clock.now - start)
    # 2 at once (the burst), then one every 1/5 s: 10 more take 2 s
    assert sent_at[:2] == [0, 0]
    assert sent_at[-1] == pytest.approx(2.0)
    for i, at in enumerate(sent_at):
        # never more than burst + rate * t by time t (to the microsecond Unix-time floats resolve)
        assert i + 1 <= 2 + (at + 1e-6) * 5, sent_at
    assert c.stats.throttled_seconds == pytest.approx(2.0)
    assert time.monotonic() - started < 2  # the fake clock, not wall time (and no busy spin)


def test_every_client_of_a_vendor_reads_time_from_the_vendors_limiter(probe: Sandbox, request):
    # A day behind the wall clock: a wait computed on any other time base would be off by a day.
    clock = FakeClock(start=time.time() - 86_400)
    vendor = _vendor_on(request, clock)
    first, second = client(probe, vendor, sleep=clock.sleep), client(probe, vendor, sleep=clock.sleep)
    assert not hasattr(first, "clock") and first.limiter is second.limiter and first.limiter.clock is clock
    # Retry-After as an HTTP date 20 s after the limiter's now (a day in the past for the wall clock)
    when = email.utils.formatdate(clock.now + 20, usegmt=True)
    probe.faults.add("status", vendor="probe", status=503, times=1, headers={"Retry-After": when})
    started = time.monotonic()
    assert second.get_json("/items")["total"] == 5
    assert len(clock.slept) == 1 and 19 <= clock.slept[0] <= 22  # (the date has whole seconds, + jitter)
    assert first.limiter.not_before >= clock.now - 1e-6  # the deferral is on that clock too
    assert time.monotonic() - started < 5


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    """A forward proxy's side of the wire: answers with the absolute URL it was asked for."""

    def do_GET(self):
        body = json.dumps({"proxied": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_environment_s_proxy_and_no_proxy_are_honoured(probe: Sandbox, monkeypatch):
    """Read once per host (requests no longer re-reads the environment on every call)."""
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        remote = VendorHTTPClient(vendor="probe", base_url="http://vendor.example/probe", timeout=(2, 2))
        assert remote.get_json("/items") == {"proxied": "http://vendor.example/probe/items"}
        # NO_PROXY: the sandbox on loopback is reached directly
        assert client(probe).get_json("/items")["total"] == 5
    finally:
        proxy.shutdown()
        proxy.server_close()
