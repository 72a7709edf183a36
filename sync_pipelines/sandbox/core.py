"""Sandbox framework: a faithful local stand-in for every vendor API, on loopback.

One HTTP server serves each vendor under its contract prefix (``/encar``, ``/odoo``...), so
clients only change base URLs between sandbox and real vendor. Data is generated from a
seed (same seed, same data) and evolves when told to (``evolve()``) against a controllable
clock. Faults (429 with Retry-After, 503, slow answers, malformed bodies, HTML instead of
JSON, wrong-typed records, dropped or reset connections, records inserted mid-listing) are
switched on per vendor and path, from Python or over HTTP at ``/_sandbox/...``.

Vendors live in ``sync_pipelines.sandbox.vendors``: each module defines ``VENDOR``, a
:class:`SandboxVendor` subclass, and is discovered automatically.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import pkgutil
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sync_pipelines.redaction import get_logger

log = get_logger("sync_pipelines.sandbox")


# -- clock ------------------------------------------------------------------------------


class SandboxClock:
    """Wall-clock time plus an offset that tests move forward (``advance(days=8)``)."""

    def __init__(self, start: dt.datetime | None = None):
        self._offset = dt.timedelta(0)
        self._frozen: dt.datetime | None = start
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            base = self._frozen or dt.datetime.now(dt.timezone.utc)
            return base + self._offset

    def advance(self, **delta: float) -> dt.datetime:
        with self._lock:
            self._offset += dt.timedelta(**delta)
        return self.now()

    def freeze(self, at: dt.datetime | None = None) -> None:
        with self._lock:
            self._frozen = (at or dt.datetime.now(dt.timezone.utc)) - self._offset


# -- requests, responses, routes ----------------------------------------------------------


@dataclass
class SandboxRequest:
    method: str
    path: str  # vendor-local path, without the vendor prefix
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str, default: str | None = None) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return default


@dataclass
class SandboxResponse:
    status: int = 200
    body: Any = None  # bytes/str sent as is; anything else is JSON-encoded
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def json_response(body: Any, status: int = 200, **headers: str) -> SandboxResponse:
    return SandboxResponse(status=status, body=body, headers=dict(headers))


def html_response(body: str, status: int = 200, **headers: str) -> SandboxResponse:
    return SandboxResponse(status=status, body=body, headers=dict(headers), content_type="text/html; charset=utf-8")


Handler = Callable[..., SandboxResponse]


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Mark a vendor method as the handler of ``method`` on paths matching ``pattern``.

    Named groups of the regex are passed to the handler as keyword arguments.
    """

    def mark(fn: Handler) -> Handler:
        fn.__sandbox_route__ = (method.upper(), re.compile(f"^{pattern}$"))  # type: ignore[attr-defined]
        return fn

    return mark


class SandboxVendor:
    """Base of a sandboxed vendor: seeded state, routes, evolution and record corruption."""

    name: str = ""
    prefix: str = ""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.lock = threading.RLock()
        self.requests_served = 0
        self._routes = [
            getattr(self, attr).__sandbox_route__ + (getattr(self, attr),)
            for attr in dir(type(self))
            if hasattr(getattr(type(self), attr, None), "__sandbox_route__")
        ]
        self.reset(sandbox.seed)

    # to override ------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        """(Re)build the vendor's data deterministically from ``seed``."""

    def evolve(self, rng: random.Random) -> dict[str, Any]:
        """Move the data on one step (new records, changes, deletions); return what changed."""
        return {}

    def env_vars(self, base_url: str) -> dict[str, str]:
        """Environment variables that point a client at this sandboxed vendor."""
        return {}

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        """Vendor-specific controls over HTTP: ``POST /_sandbox/<vendor>/<action>``."""
        raise KeyError(action)

    def insert_records(self, count: int) -> list[Any]:
        """Add ``count`` new records that sort ahead of a running listing's cursor (the
        ``shift`` fault); return their keys."""
        raise NotImplementedError(f"sandbox vendor {self.name} cannot insert records mid-listing")

    def corrupt_record(self, body: Any, field_name: str | None) -> Any:
        """Give one record of a JSON answer a wrong-typed field (the ``wrong_type`` fault).

        The default finds the first list of objects and sets ``field_name`` (or the first
        numeric field) of its first item to a string that is not a number.
        """
        records = _first_record_list(body)
        if records:
            record = records[0]
            name = field_name or next(
                (k for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)), None
            )
            if name:
                record[name] = "not-a-number"
        return body

    # machinery --------------------------------------------------------------------------

    def dispatch(self, request: SandboxRequest) -> SandboxResponse:
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                with self.lock:
                    self.requests_served += 1
                    return handler(request, **match.groupdict())
        return json_response({"code": 404, "message": f"no route {request.method} {request.path}"}, 404)


def _first_record_list(body: Any) -> list[dict] | None:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body
    if isinstance(body, dict):
        for value in body.values():
            found = _first_record_list(value)
            if found:
                return found
    return None


# -- faults -----------------------------------------------------------------------------

FAULT_KINDS = ("status", "slow", "malformed", "html", "wrong_type", "disconnect", "reset", "shift")

# What a CDN or a vendor's maintenance page answers with status 200 instead of the API's JSON.
MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Down for maintenance</title></head>"
    "<body><h1>We'll be back soon</h1><p>Scheduled maintenance.</p></body></html>"
)


@dataclass
class Fault:
    """One switchable fault.

    ``kind``: ``status`` (answer ``status`` with optional ``retry_after`` and extra
    ``headers``, e.g. ``X-Rate-Limit-Remaining: 0`` / ``X-Rate-Limit-Reset``), ``slow`` (wait
    ``delay`` seconds before answering), ``malformed`` (a truncated body with status 200),
    ``html`` (a maintenance page with status 200 and ``text/html``), ``wrong_type`` (one
    record gets a wrong-typed ``field``), ``disconnect`` (close the connection without an
    answer), ``reset`` (abort it with a TCP RST), ``shift`` (the vendor inserts ``records``
    new records, :meth:`SandboxVendor.insert_records`, then answers). It hits requests of ``vendor`` (all if None) whose
    vendor-local path matches the regex ``path``, after letting ``skip`` through, for
    ``times`` requests (forever if None).
    """

    kind: str
    vendor: str | None = None
    path: str | None = None
    status: int = 503
    retry_after: float | None = None
    headers: dict[str, str] | None = None
    delay: float = 0.0
    times: int | None = 1
    skip: int = 0
    field: str | None = None
    records: int = 3
    hits: int = 0
    seen: int = 0
    id: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")

    def matches(self, vendor: str, path: str) -> bool:
        if self.vendor and self.vendor != vendor:
            return False
        return not self.path or re.search(self.path, path) is not None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class FaultBoard:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = 0

    def add(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind=kind, **options)
        with self._lock:
            self._ids += 1
            fault.id = self._ids
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, vendor: str, path: str) -> Fault | None:
        """The fault that hits this request, if any (consumes one of its ``times``)."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(vendor, path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                fault.hits += 1
                return fault
        return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]


# -- the sandbox ------------------------------------------------------------------------


def discover_vendor_classes() -> dict[str, type[SandboxVendor]]:
    """Every ``VENDOR`` defined by a module of ``sync_pipelines.sandbox.vendors``."""
    from sync_pipelines.sandbox import vendors

    found: dict[str, type[SandboxVendor]] = {}
    for info in sorted(pkgutil.iter_modules(vendors.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{vendors.__name__}.{info.name}")
        vendor_cls = getattr(module, "VENDOR", None)
        if vendor_cls is not None:
            found[vendor_cls.name] = vendor_cls
    return found


class Sandbox:
    """All sandboxed vendors behind one loopback HTTP server.

    >>> with Sandbox(seed=7) as sandbox:
    ...     os.environ.update(sandbox.env())
    ...     sandbox.faults.add("status", vendor="encar", status=429, retry_after=1, times=2)
    """

    def __init__(
        self,
        seed: int = 42,
        vendors: list[str] | None = None,
        clock: SandboxClock | None = None,
        extra_vendors: list[type[SandboxVendor]] = (),
    ):
        self.seed = seed
        self.clock = clock or SandboxClock()
        self.faults = FaultBoard()
        classes = discover_vendor_classes()
        unknown = set(vendors or []) - set(classes)
        if unknown:
            raise ValueError(f"unknown sandbox vendors {sorted(unknown)}; known: {sorted(classes)}")
        chosen = [cls for name, cls in classes.items() if vendors is None or name in vendors]
        self.vendors: dict[str, SandboxVendor] = {cls.name: cls(self) for cls in [*chosen, *extra_vendors]}
        self._evolve_rngs = self._seed_evolve_rngs()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._server is not None:
            return self.base_url
        self._server = _SandboxServer((host, port), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, vendor: str) -> str:
        return self.base_url + self.vendors[vendor].prefix

    def env(self) -> dict[str, str]:
        """Environment variables pointing every client at this sandbox."""
        out: dict[str, str] = {}
        for vendor in self.vendors.values():
            out.update(vendor.env_vars(self.base_url + vendor.prefix))
        return out

    def vendor(self, name: str) -> Any:
        return self.vendors[name]

    # data ---------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        self.seed = self.seed if seed is None else seed
        self._evolve_rngs = self._seed_evolve_rngs()
        self.faults.clear()
        for vendor in self.vendors.values():
            with vendor.lock:
                vendor.reset(self.seed)

    def _seed_evolve_rngs(self) -> dict[str, random.Random]:
        # One random stream per vendor, seeded from its name and the seed: what a vendor
        # evolves into depends on nothing else, so adding a vendor (or serving fewer)
        # changes no other vendor's data. (A str seed is hashed with SHA-512, the same in
        # every process, whatever PYTHONHASHSEED.)
        return {name: random.Random(f"sandbox-evolve/{name}/{self.seed}") for name in self.vendors}

    def evolve(self, steps: int = 1) -> dict[str, list[dict[str, Any]]]:
        changes: dict[str, list[dict[str, Any]]] = {name: [] for name in self.vendors}
        for _ in range(steps):
            for name, vendor in self.vendors.items():
                with vendor.lock:
                    changes[name].append(vendor.evolve(self._evolve_rngs[name]))
        return changes

    # request handling -----------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> SandboxResponse | None:
        """Answer one request; ``None`` means drop the connection (``disconnect`` fault), ``RESET``
        abort it (``reset`` fault)."""
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path.startswith("/_sandbox"):
            return self._admin(method, parts.path[len("/_sandbox"):], body)
        for vendor in self.vendors.values():
            if parts.path == vendor.prefix or parts.path.startswith(vendor.prefix + "/"):
                local = parts.path[len(vendor.prefix):] or "/"
                request = SandboxRequest(method, local, query, headers, body)
                fault = self.faults.take(vendor.name, local)
                return self._answer(vendor, request, fault)
        return json_response({"code": 404, "message": f"no sandbox vendor serves {parts.path}"}, 404)

    def _answer(self, vendor: SandboxVendor, request: SandboxRequest, fault: Fault | None) -> SandboxResponse | None:
        if fault is not None:
            if fault.kind == "disconnect":
                return None
            if fault.kind == "reset":
                return RESET
            if fault.kind == "html":
                return html_response(MAINTENANCE_PAGE)
            if fault.kind == "shift":
                with vendor.lock:
                    vendor.insert_records(fault.records)
            if fault.kind == "status":
                headers = {k: str(v) for k, v in (fault.headers or {}).items()}
                if fault.retry_after is not None:
                    headers["Retry-After"] = _fmt_seconds(fault.retry_after)
                return json_response({"code": fault.status, "message": "sandbox fault"}, fault.status, **headers)
            if fault.kind == "slow":
                time.sleep(fault.delay)
        response = vendor.dispatch(request)
        if fault is not None and fault.kind == "malformed":
            encoded = response.encoded()
            response = SandboxResponse(200, encoded[: max(1, len(encoded) // 2)], response.headers, response.content_type)
        elif fault is not None and fault.kind == "wrong_type" and not isinstance(response.body, (bytes, str)):
            response.body = vendor.corrupt_record(response.body, fault.field)
        return response

    def _admin(self, method: str, path: str, body: bytes) -> SandboxResponse:
        payload = json.loads(body or b"{}") if body else {}
        if path == "/health":
            return json_response({"ok": True, "vendors": sorted(self.vendors), "now": self.clock.now().isoformat()})
        if path == "/faults" and method == "GET":
            return json_response(self.faults.list())
        if path == "/faults" and method == "POST":
            fault = self.faults.add(payload.pop("kind"), **payload)
            return json_response(asdict(fault), 201)
        if path == "/faults" and method == "DELETE":
            self.faults.clear()
            return json_response({"cleared": True})
        if path == "/clock" and method == "POST":
            now = self.clock.advance(seconds=float(payload.get("advance_seconds", 0)))
            return json_response({"now": now.isoformat()})
        if path == "/reset" and method == "POST":
            self.reset(payload.get("seed"))
            return json_response({"seed": self.seed})
        if path == "/evolve" and method == "POST":
            return json_response(self.evolve(int(payload.get("steps", 1))))
        match = re.match(r"^/(?P<vendor>[\w-]+)/(?P<action>[\w-]+)$", path)
        if match and method == "POST" and match["vendor"] in self.vendors:
            vendor = self.vendors[match["vendor"]]
            try:
                with vendor.lock:
                    return json_response({"result": vendor.control(match["action"], payload)})
            except KeyError:
                return json_response({"message": f"unknown control {match['action']}"}, 404)
        return json_response({"message": f"unknown admin call {method} {path}"}, 404)


# The answer that aborts the connection with a TCP RST (the ``reset`` fault).
RESET = SandboxResponse(status=0, body=b"")


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class _SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _make_handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's
            # algorithm plus the client's delayed ACK add ~40 ms to every keep-alive answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                response = sandbox.handle(self.command, self.path, dict(self.headers.items()), body)
            except Exception as exc:  # a sandbox bug is a 500, like a real server's
                log.exception("sandbox error on %s %s", self.command, self.path)
                response = json_response({"code": 500, "message": f"sandbox error: {exc}"}, 500)
            if response is None:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if response is RESET:
                # linger 0: closing sends RST, not FIN (the client sees "connection reset by peer")
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            payload = response.encoded()
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("sandbox %s", format % args)

    return Handler


def iter_pages(items: list[Any], page: int, per_page: int) -> Iterator[Any]:
    """Slice helper for vendors that page by number (0- or 1-based is the caller's)."""
    start = page * per_page
    yield from items[start : start + per_page]
