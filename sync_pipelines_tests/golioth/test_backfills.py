"""``golioth_telemetry`` by day x integration: the UI's backfill (its GraphQL mutation, then the
backfill daemon's iterations), the integration partitions' sensor and CLI, the CLI backfill."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    build_sensor_context,
)
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.instance_for_test import instance_for_test
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.test.utils import execute_dagster_graphql

from sync_pipelines.golioth.partitions import INTEGRATIONS_PARTITIONS, partition_key
from sync_pipelines.golioth.sensors import golioth_integrations_sensor
from sync_pipelines.golioth.sync import cursor_entity
from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines.warehouse import Warehouse, WarehouseResource, utcnow
from sync_pipelines_tests.golioth.conftest import KEY_ENV, KEY_ENV_2, PROJECT, PROJECT_2, GoliothHarness

pytestmark = pytest.mark.timeout(300)

# What the UI's "Materialize -> Launch backfill" sends (LaunchAssetChoosePartitionsDialog).
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
  }
}
"""


@contextmanager
def ui_workspace(tmp_path) -> Iterator[WorkspaceProcessContext]:
    """A persistent instance whose runs execute as they are submitted, and the project's code location."""
    overrides = {"run_launcher": {"module": "dagster._core.launcher.sync_in_memory_run_launcher",
                                  "class": "SyncInMemoryRunLauncher"}}
    with instance_for_test(overrides=overrides, temp_dir=str(tmp_path), set_dagster_home=False,
                           synchronous_run_coordinator=True) as instance:
        target = ModuleTarget(module_name="sync_pipelines.definitions", attribute="defs", working_directory=None,
                              location_name="sync_pipelines")
        with WorkspaceProcessContext(instance, target) as context:
            yield context


def ui_backfill(context: WorkspaceProcessContext, keys: list[str]) -> list:
    """Launch a backfill of ``keys`` as the UI does, run the daemon until it is done; its runs.
    Executed in process (run config), which only saves the test a step subprocess per run."""
    result = execute_dagster_graphql(context.create_request_context(), LAUNCH_BACKFILL, variables={"backfillParams": {
        "assetSelection": [{"path": ["golioth_telemetry"]}], "partitionNames": keys, "fromFailure": False,
        "tags": [{"key": "dagster/from_ui", "value": "true"}],
        "runConfigData": {"execution": {"config": {"in_process": {}}}}}})
    launched = result.data["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    instance = context.instance
    for _ in range(10):
        list(execute_backfill_iteration(context, logging.getLogger("golioth_backfill_test")))
        if instance.get_backfill(launched["backfillId"]).status != BulkActionStatus.REQUESTED:
            break
    assert instance.get_backfill(launched["backfillId"]).status == BulkActionStatus.COMPLETED_SUCCESS
    return instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": launched["backfillId"]}))


@pytest.fixture
def golioth_sqlite(sandbox, sqlite_url, monkeypatch) -> GoliothHarness:
    monkeypatch.setenv("SYNC_DATABASE_URL", sqlite_url)
    return GoliothHarness(sandbox, Warehouse.for_url(sqlite_url))


def test_a_ui_backfill_is_one_run_per_integration_over_its_days(golioth_sqlite, tmp_path):
    """On SQLite only: what the backfill writes is tested on both databases in test_sync.py."""
    golioth, warehouse = golioth_sqlite, golioth_sqlite.warehouse
    today = utcnow().date()
    days = [today - dt.timedelta(days=n) for n in (3, 2, 1)]
    window = (dt.datetime.combine(days[0], dt.time(), dt.timezone.utc),
              dt.datetime.combine(today, dt.time(), dt.timezone.utc))
    with ui_workspace(tmp_path) as context:
        golioth.instance = context.instance
        golioth.add("acme")
        golioth.add("second", project=PROJECT_2, key_env=KEY_ENV_2)
        both = [str(partition_key(d, i)) for d in days for i in ("acme", "second")]
        runs = ui_backfill(context, both)
        # Dagster 1.13 splits a day x integration selection into one range per integration
        ranges = sorted((r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                        for r in runs)
        assert ranges == [(f"{days[0]}|{i}", f"{days[-1]}|{i}") for i in ("acme", "second")]
        assert all(r.status == DagsterRunStatus.SUCCESS for r in runs)
        expected = golioth.sandbox_keys(since=window[0], until=window[1]) | golioth.sandbox_keys(PROJECT_2, *window)
        assert len(expected) > 1000 and expected <= golioth.keys() and len(golioth.rows()) == len(golioth.keys())
        assert context.instance.get_materialized_partitions(AssetKey("golioth_telemetry")) == set(both)
        count = len(golioth.rows())
        # one integration over a range of days: one run; again: nothing new
        [run] = ui_backfill(context, [str(partition_key(d, "second")) for d in days])
        assert run.status == DagsterRunStatus.SUCCESS and len(golioth.rows()) == count
        assert all(warehouse.get_cursor("golioth", cursor_entity(i)) is None for i in ("acme", "second"))


def test_the_integrations_sensor_adds_and_removes_partitions_disabled_ones_kept(sqlite_url, monkeypatch):
    from sync_pipelines.golioth import integrations as store
    from sync_pipelines.golioth.integrations import Integration

    monkeypatch.setenv("SYNC_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("GOLIOTH_KEY_ACME", "acme-secret-key-0123456789")
    warehouse = Warehouse.for_url(sqlite_url)
    instance = DagsterInstance.ephemeral()

    def tick():
        context = build_sensor_context(instance=instance, resources={"warehouse": WarehouseResource()})
        result = golioth_integrations_sensor(context)
        for request in getattr(result, "dynamic_partitions_requests", None) or []:  # what the daemon applies
            if isinstance(request, AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
        return result

    assert "0 golioth integration partition(s), all current" in tick().skip_message
    for integration_id in ("acme", "second"):
        store.add(warehouse, Integration(integration_id, PROJECT, "GOLIOTH_KEY_ACME"))
    [added] = tick().dynamic_partitions_requests
    assert added.partition_keys == ["acme", "second"]
    assert list(instance.get_dynamic_partitions(INTEGRATIONS_PARTITIONS.name)) == ["acme", "second"]
    store.update(warehouse, "acme", enabled=False)  # disabled: its history stays backfillable
    assert "2 golioth integration partition(s), all current" in tick().skip_message
    store.remove(warehouse, "second")
    [removed] = tick().dynamic_partitions_requests
    assert removed.partition_keys == ["second"]
    assert list(instance.get_dynamic_partitions(INTEGRATIONS_PARTITIONS.name)) == ["acme"]


def _cli(*args: str) -> tuple[int, str, str]:
    from sync_pipelines_tests.golioth.test_models import _cli as run

    return run(*args)


def test_the_cli_keeps_partitions_in_step_and_backfills_days_x_integrations_in_one_run(
        sandbox, sqlite_url, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    golioth = GoliothHarness(sandbox, Warehouse.for_url(sqlite_url))
    monkeypatch.setenv("SYNC_DATABASE_URL", sqlite_url)
    for args in (("--project", PROJECT, "--id", "acme"), ("--project", PROJECT_2, "--id", "second"),
                 ("--project", PROJECT, "--id", "third", "--disabled")):
        key_env = KEY_ENV_2 if PROJECT_2 in args else KEY_ENV
        code, out, err = _cli("integrations", "add", *args, "--api-key-env", key_env)
        assert code == 0 and f"golioth_telemetry partition '{args[3]}' added" in out, out + err
    with DagsterInstance.get() as instance:
        assert list(instance.get_dynamic_partitions(INTEGRATIONS_PARTITIONS.name)) == ["acme", "second", "third"]
    code, out, _ = _cli("integrations", "remove", "third")
    assert code == 0 and "golioth_telemetry partition 'third' removed" in out

    today = utcnow().date()
    first, last = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    code, out, err = _cli("backfill", "--from", str(first), "--to", str(last))  # every enabled integration
    assert code == 0, out + err
    with DagsterInstance.get() as instance:
        [run] = instance.get_runs()
    assert f"run {run.run_id} succeeded" in out and run.status == DagsterRunStatus.SUCCESS
    assert run.tags["dagster/asset_partition_range_start"] == f"{first}|acme"
    assert run.tags["dagster/asset_partition_range_end"] == f"{last}|second"
    assert run.tags["sync_pipelines/source"] == "golioth" and run.tags["sync_pipelines/mode"] == "backfill"
    window = (dt.datetime.combine(first, dt.time(), dt.timezone.utc),
              dt.datetime.combine(today, dt.time(), dt.timezone.utc))
    assert golioth.keys() == golioth.sandbox_keys(since=window[0], until=window[1]) | golioth.sandbox_keys(
        PROJECT_2, *window)

    code, _, err = _cli("backfill", "--from", str(last), "--to", str(first))
    assert code == 2 and "is after --to" in err
    code, _, err = _cli("backfill", "--from", str(first), "--to", str(last), "--integration", "nope")
    assert code == 2 and "no golioth integration 'nope'" in err


def test_a_set_of_integrations_is_cut_into_ranges_of_neighbours():
    from sync_pipelines.golioth.partitions import contiguous_slices, day_windows, days_by_integration

    assert contiguous_slices(["a", "b", "c", "d"], ["a", "b", "d"]) == [["a", "b"], ["d"]]
    assert contiguous_slices(["a", "b"], []) == []
    keys = [str(partition_key(day, i)) for day in ("2026-11-02", "2026-11-01", "2026-11-04") for i in ("a", "b")]
    days = days_by_integration(keys)
    assert days == {i: [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 4)] for i in ("a", "b")}
    utc = dt.timezone.utc
    assert day_windows(days["a"]) == [(dt.datetime(2026, 11, 1, tzinfo=utc), dt.datetime(2026, 11, 3, tzinfo=utc)),
                                      (dt.datetime(2026, 11, 4, tzinfo=utc), dt.datetime(2026, 11, 5, tzinfo=utc))]


def test_a_range_backfill_from_the_dagster_cli_is_one_run(sandbox, sqlite_url, tmp_path, monkeypatch):
    """The README's ``dagster asset materialize --partition-range`` with ``day|integration`` keys."""
    from sync_pipelines.golioth import integrations as store
    from sync_pipelines.golioth.integrations import Integration
    from sync_pipelines.golioth.partitions import add_partition

    monkeypatch.setenv("DAGSTER_HOME", str(prepare_dagster_home(tmp_path / "dagster_home").parent))
    monkeypatch.setenv("SYNC_DATABASE_URL", sqlite_url)
    golioth = GoliothHarness(sandbox, Warehouse.for_url(sqlite_url))
    store.add(golioth.warehouse, Integration("acme", PROJECT, KEY_ENV))
    with DagsterInstance.get() as instance:
        add_partition(instance, "acme")
    today = utcnow().date()
    start, end = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "sync_pipelines.definitions",
         "--select", "golioth_telemetry", "--partition-range", f"{start}|acme...{end}|acme",
         "--config-json", '{"execution": {"config": {"in_process": {}}}}'],  # only spares a step subprocess
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("RUN_SUCCESS") == 1
    window = (dt.datetime.combine(start, dt.time(), dt.timezone.utc),
              dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc))
    assert golioth.sandbox_keys(since=window[0], until=window[1]) == golioth.keys()
