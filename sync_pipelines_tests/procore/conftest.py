"""Procore test harness: the sandboxed Procore, the destination (SQLite and Postgres), job runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from dagster import DagsterInstance
from dagster._core.instance_for_test import instance_for_test

from sync_pipelines.definitions import defs
from sync_pipelines.procore.assets import CONNECTIONS_PARTITIONS, run_config
from sync_pipelines.procore.cli import complete_connect
from sync_pipelines.procore.resources import ProcoreResource
from sync_pipelines.procore.settings import OOB_REDIRECT_URI

# Resolved once, outside any test instance: resolving reads the current instance's state
# storage, and an instance_for_test of an earlier test is gone by then.
SYNC_JOB = defs.resolve_job_def("procore_sync_job")


class ProcoreHarness:
    def __init__(self, sandbox, warehouse):
        self.sandbox = sandbox
        self.vendor = sandbox.vendors["procore"]
        self.warehouse = warehouse
        self.instance = DagsterInstance.ephemeral()
        self.resource = ProcoreResource()

    def control(self, action: str, **payload: Any) -> Any:
        with self.vendor.lock:
            return self.vendor.control(action, payload)

    @property
    def store(self):
        return self.resource.store(self.warehouse)

    def authorize(self, login: str | None = None) -> str:
        url = self.resource.oauth().authorize_url(OOB_REDIRECT_URI)
        page = requests.get(url + (f"&login={login}" if login else ""), timeout=10)
        assert page.status_code == 200, page.text
        return re.search(r"<code id='code'>([^<]+)</code>", page.text)[1]

    def connect(self, login: str | None = None, company_id: int | None = None) -> str:
        code = self.authorize(login)
        user_id, _ = complete_connect(self.resource.oauth(), self.store, code, OOB_REDIRECT_URI, company_id)
        self.instance.add_dynamic_partitions(CONNECTIONS_PARTITIONS.name, [user_id])
        return user_id

    def connect_many(self, count: int) -> list[str]:
        users = list(self.vendor.users)
        if len(users) < count:
            self.control("add_users", count=count - len(users))
        return [self.connect(str(uid)) for uid in list(self.vendor.users)[:count]]

    def sync(self, user_id: str, mode: str = "incremental", raise_on_error: bool = False):
        return SYNC_JOB.execute_in_process(
            run_config=run_config(mode), instance=self.instance, partition_key=user_id, raise_on_error=raise_on_error
        )

    def rows(self, table: str) -> list[dict[str, Any]]:
        t = self.warehouse.table(table)
        with self.warehouse.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]

    def ids(self, table: str) -> list:
        return [r["id"] for r in self.rows(table)]

    def api_calls(self) -> dict[str, int]:
        return dict(self.vendor.stats["api_calls"])

    def user_companies(self, user_id: str) -> list[int]:
        return list(self.vendor.users[user_id]["companies"])

    def expected(self, users) -> dict[str, set[int]]:
        companies = {c for u in users for c in self.user_companies(u)}
        projects = {p for p, rec in self.vendor.projects.items() if rec["company"]["id"] in companies}
        rfis = {r for r, rec in self.vendor.rfis.items() if rec["project_id"] in projects}
        return {"procore_companies": companies, "procore_projects": projects, "procore_rfis": rfis}


def meta(result, asset: str) -> dict[str, Any]:
    [materialization] = [
        e.materialization for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset
    ]
    return {k: v.value for k, v in materialization.metadata.items()}


def failure_text(result) -> str:
    texts = []
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"):
            error = getattr(event.event_specific_data, "error", None)
            texts.append(event.message or "")
            if error is not None:
                texts.append(error.to_string())
    return "\n".join(texts)


@pytest.fixture
def procore(sandbox, warehouse, secret_key) -> Iterator[ProcoreHarness]:
    harness = ProcoreHarness(sandbox, warehouse)
    try:
        yield harness
    finally:
        harness.instance.dispose()


@pytest.fixture
def procore_on_instance(procore) -> Iterator[ProcoreHarness]:
    """The harness on a real (temporary, SQLite) instance: schedule and sensor contexts need its ref."""
    with instance_for_test() as instance:
        procore.instance = instance
        yield procore
