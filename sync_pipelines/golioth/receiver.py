"""The Golioth webhook receiver: a small Starlette app that appends each delivery to the inbox.

An event is answered 202 only once committed to ``golioth_webhook_inbox`` (503 when it cannot
be, never 2xx); auth, size and header rules, in order, are in the README's "Push". The
receiver refuses to start without ``GOLIOTH_WEBHOOK_TOKEN``.
"""

from __future__ import annotations

import hmac
import json
import signal
import subprocess
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sync_pipelines import settings as shared_settings
from sync_pipelines.golioth import integrations, settings
from sync_pipelines.golioth.models import CE_TYPE_PREFIX
from sync_pipelines.redaction import get_logger, register_secret
from sync_pipelines.warehouse import Warehouse, utcnow

log = get_logger("sync_pipelines.golioth.receiver")
WEBHOOK_PATH = "/golioth/webhook"
PROJECTS_TTL_SECONDS = 30.0  # how long the known projects are cached (a new integration waits this long)


class ReceiverConfigError(RuntimeError):
    """The receiver cannot start (no token)."""


class InboxWriter:
    """Appends events to the inbox; knows the projects of the integrations (cached briefly)."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._projects: set[str] = set()
        self._projects_at = 0.0
        self._lock = threading.Lock()

    def warehouse(self) -> Warehouse:
        return Warehouse.for_url(self.database_url)

    def known_project(self, project_id: str) -> bool:
        with self._lock:
            fresh = time.monotonic() - self._projects_at < PROJECTS_TTL_SECONDS
            if fresh and project_id in self._projects:
                return True
        projects = integrations.project_ids(self.warehouse())
        with self._lock:
            self._projects, self._projects_at = projects, time.monotonic()
        return project_id in projects

    def append(self, event: dict[str, Any]) -> None:
        """Commit one event; returns only once it is durable."""
        warehouse = self.warehouse()
        with warehouse.transaction() as tx:
            tx.execute(tx.table(settings.INBOX_TABLE).insert().values(**event, received_at=utcnow()))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status)


def _authorized(request: Request, token: bytes) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    # compare_digest on the whole header value: same time whatever prefix matches
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), token)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes ``limit`` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


def _event(request: Request, body: bytes) -> dict[str, Any] | str:
    """The inbox row of a delivery, or why it is refused."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "body is not JSON"
    headers = request.headers
    missing = [h for h in ("ce-source", "ce-subject", "ce-type", "ce-time") if not headers.get(h)]
    if missing:
        return f"missing CloudEvents header(s): {', '.join(missing)}"
    if not headers["ce-type"].startswith(CE_TYPE_PREFIX):
        return f"Ce-Type must be {CE_TYPE_PREFIX}/<path>"
    return {
        "project_id": headers["ce-subject"][:128], "device_id": headers["ce-source"][:64],
        "event_id": (headers.get("ce-id") or "")[:255] or None, "event_type": headers["ce-type"][:512],
        "event_time": headers["ce-time"][:64], "body": data,
    }


def create_app(token: str | None = None, database_url: str | None = None, max_bytes: int | None = None) -> Starlette:
    token = token if token is not None else settings.webhook_token()
    if not token:
        raise ReceiverConfigError(
            f"{settings.WEBHOOK_TOKEN_ENV} is not set: the webhook receiver refuses to start without a token"
        )
    register_secret(token)
    token_bytes = token.encode()
    limit = max_bytes or settings.webhook_max_bytes()
    writer = InboxWriter(database_url or shared_settings.database_url())

    async def webhook(request: Request) -> JSONResponse:
        if not _authorized(request, token_bytes):
            return _error(401, "missing or wrong bearer token")
        body = await _read_body(request, limit)
        if body is None:
            return _error(413, f"body larger than {limit} bytes")
        event = _event(request, body)
        if isinstance(event, str):
            return _error(400, event)
        try:
            if not await run_in_threadpool(writer.known_project, event["project_id"]):
                return _error(400, f"project {event['project_id']} has no golioth integration")
            await run_in_threadpool(writer.append, event)
        except Exception as exc:  # the database down, a lock timeout, a bug: not stored, so not 2xx
            log.error("golioth webhook: inbox not written, answering 503: %s", exc)
            return _error(503, "inbox unavailable, send again later")
        return JSONResponse({"accepted": True}, status_code=202)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route(WEBHOOK_PATH, webhook, methods=["POST"]),
                             Route("/golioth/health", health, methods=["GET"])])


def _server(host: str, port: int, database_url: str | None):
    import uvicorn

    app = create_app(database_url=database_url)
    log.info("golioth webhook receiver on http://%s:%d%s", host, port, WEBHOOK_PATH)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False))


def serve(host: str = "127.0.0.1", port: int = 8787, database_url: str | None = None) -> None:
    """Run the receiver on uvicorn until interrupted (``python -m sync_pipelines.golioth receiver``)."""
    _server(host, port, database_url).run()


def serve_alongside(command: list[str], host: str, port: int, database_url: str | None = None) -> int:
    """Run ``command`` (``make ui``: the demo and the Dagster UI) with the receiver beside it,
    when a token is set; the receiver stops when the command ends. Returns its exit code."""
    server = None
    if settings.webhook_token():
        server = _server(host, port, database_url)
        threading.Thread(target=server.run, name="golioth-receiver", daemon=True).start()
    else:
        print(f"golioth webhook receiver not started: set {settings.WEBHOOK_TOKEN_ENV} to start it", flush=True)
    # the child takes Ctrl-C itself (SIGINT reset: a non-interactive shell may have ignored it)
    child = subprocess.Popen(command, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # the child got the same Ctrl-C and is stopping
    finally:
        if server is not None:
            server.should_exit = True
