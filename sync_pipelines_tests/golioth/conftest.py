"""Golioth test harness: the sandboxed Golioth, the destination (SQLite and Postgres), job runs, a receiver."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from dagster import DagsterInstance

from sync_pipelines.definitions import defs
from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth.assets import run_config_for
from sync_pipelines.golioth.integrations import Integration
from sync_pipelines.golioth.models import normalize_ts
from sync_pipelines.golioth.partitions import INTEGRATIONS_PARTITIONS, add_partition, range_tags
from sync_pipelines.sandbox.vendors.golioth import PROJECTS

PROJECT = "sandbox-project"
PROJECT_2 = "sandbox-project-2"
KEY_ENV = PROJECTS[PROJECT]["env"]
KEY_ENV_2 = PROJECTS[PROJECT_2]["env"]
TOKEN = "golioth-webhook-token-for-tests-5f1c"


def failure_text(result) -> str:
    texts = []
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"):
            error = getattr(event.event_specific_data, "error", None)
            texts.append(event.message or "")
            if error is not None:
                texts.append(error.to_string())
    return "\n".join(texts)


class Receiver:
    """The webhook receiver on uvicorn in a thread, on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/golioth/webhook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:  # a busy CI machine can take over a second to answer the first request
                requests.get(f"http://127.0.0.1:{self.port}/golioth/health", timeout=5)
                return self
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.05)
        raise RuntimeError("receiver did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class GoliothHarness:
    def __init__(self, sandbox, warehouse):
        self.sandbox = sandbox
        self.vendor = sandbox.vendors["golioth"]
        self.warehouse = warehouse
        self.instance = DagsterInstance.ephemeral()

    def control(self, action: str, **payload: Any) -> Any:
        return self.vendor.control(action, payload)

    def add(self, integration_id: str = "acme", project: str = PROJECT, key_env: str = KEY_ENV, **values: Any):
        """Store the integration and give it its partition, as ``golioth integrations add`` does."""
        added = store.add(self.warehouse, Integration(integration_id, project, key_env, **values))
        add_partition(self.instance, integration_id)
        return added

    def sync(self, integrations: list[str] | None = None, mode: str = "incremental", raise_on_error: bool = True):
        job = defs.resolve_job_def("golioth_sync_job")
        return job.execute_in_process(run_config=run_config_for(integrations or [], mode), instance=self.instance,
                                      raise_on_error=raise_on_error)

    def backfill(self, start: str, end: str, integrations: list[str] | None = None, raise_on_error: bool = True):
        """One single-run backfill over days ``start..end`` x ``integrations`` (neighbours in the
        partitions' order; default: every partition), with the range tags a backfill run gets."""
        from dagster import materialize

        from sync_pipelines.golioth.assets import golioth_telemetry
        from sync_pipelines.warehouse import WarehouseResource

        ids = integrations or list(self.instance.get_dynamic_partitions(INTEGRATIONS_PARTITIONS.name))
        return materialize(
            [golioth_telemetry], instance=self.instance, resources={"warehouse": WarehouseResource()},
            tags=range_tags(dt.date.fromisoformat(start), dt.date.fromisoformat(end), ids),
            raise_on_error=raise_on_error,
        )

    def rows(self, where: str = "", params: dict | None = None) -> list[dict[str, Any]]:
        table = self.warehouse.table("device_telemetry_history")
        query = sa.select(table).where(sa.text(where)) if where else sa.select(table)
        with self.warehouse.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query, params or {})]

    def keys(self) -> set[tuple[str, Any, str]]:
        return {(r["device_id"], _utc(r["ts"]), r["path"]) for r in self.rows()}

    def sandbox_keys(self, project: str | None = PROJECT, since=None, until=None) -> set[tuple[str, Any, str]]:
        keys = {(d, normalize_ts(t), p) for d, t, p in self.vendor.points(project)}
        return {k for k in keys if (since is None or k[1] >= since) and (until is None or k[1] < until)}


def _utc(value):
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


@pytest.fixture
def golioth(sandbox, warehouse) -> Iterator[GoliothHarness]:
    yield GoliothHarness(sandbox, warehouse)
