"""Point identity across routes, device rows, integration validation and the integrations CLI."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth.integrations import Integration, IntegrationError
from sync_pipelines.golioth.models import (
    PointError,
    device_row,
    normalize_ts,
    points_from_event,
    points_from_stream_record,
)
from sync_pipelines.instance import prepare_dagster_home
from sync_pipelines.warehouse import Warehouse
from sync_pipelines_tests.golioth.conftest import KEY_ENV, PROJECT

UTC = dt.timezone.utc


def test_one_instant_written_three_ways_is_one_time():
    expected = dt.datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)
    for text in ("2026-12-01T10:00:00.123456+00:00", "2026-12-01T10:00:00.123456789Z", "2026-12-01T19:00:00.1239+09:00",
                 "2026-12-01T10:00:00.123Z"):
        assert normalize_ts(text) == expected, text
    assert normalize_ts("2026-12-01T10:00:00Z") == dt.datetime(2026, 12, 1, 10, tzinfo=UTC)
    with pytest.raises(PointError):
        normalize_ts("yesterday")


def test_pushed_and_pulled_messages_give_the_same_points():
    record = {"time": "2026-12-01T10:00:00.123456+00:00", "deviceId": "d1", "env": {"temp": 21}, "battery": {"level": 90}}
    pulled = points_from_stream_record(record, "d1")
    pushed_root = points_from_event({"device_id": "d1", "event_type": "io.golioth.data.v1/.s/",
                                     "event_time": "2026-12-01T10:00:00.123456789Z",
                                     "body": {"env": {"temp": 21}, "battery": {"level": 90}}})
    pushed_env = points_from_event({"device_id": "d1", "event_type": "io.golioth.data.v1/.s/env",
                                    "event_time": "2026-12-01T10:00:00.123Z", "body": {"temp": 21}})
    nested = points_from_event({"device_id": "d1", "event_type": "io.golioth.data.v1/.s/env/temp",
                                "event_time": "2026-12-01T10:00:00.123Z", "body": 21})
    assert {p.key for p in pulled} == {p.key for p in pushed_root}
    assert pushed_env[0].key == nested[0].key == next(p.key for p in pulled if p.path == "env")
    assert nested[0].payload == {"temp": 21}
    with pytest.raises(PointError):
        points_from_event({"device_id": "d1", "event_type": "DEVICE_STREAM_TYPE", "event_time": "x", "body": {}})


def test_device_row_derives_online_from_last_report_and_reads_firmware():
    now = dt.datetime(2026, 12, 1, 12, tzinfo=UTC)
    device = {"id": "68bf", "name": "C25", "status": "-", "enabled": True, "lastReport": "2026-12-01T11:30:00.000Z",
              "metadata": {"lastSeenOnline": "2026-12-01T11:45:00Z", "update": {"main": {"version": "1.2.0", "state": "IDLE"}}}}
    row = device_row(device, integration_id="acme", project_id=PROJECT, now=now)
    assert row["online"] is True and row["status"] == "-" and row["firmware_version"] == "1.2.0"
    assert row["last_seen"] == dt.datetime(2026, 12, 1, 11, 45, tzinfo=UTC)
    stale = device_row({**device, "lastReport": "2026-11-30T00:00:00Z", "metadata": {}}, integration_id="a",
                       project_id=PROJECT, now=now)
    assert stale["online"] is False and stale["firmware_version"] is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"api_key_env": "NOT_SET_ANYWHERE_123"}, "unknown environment variable NOT_SET_ANYWHERE_123"),
        ({"api_key_env": "lower-case"}, "is not an environment variable name"),
        ({"time_window_start": "08:00", "time_window_end": "08:00"}, "time window end equals its start (08:00)"),
        ({"time_window_start": "08:00"}, "needs both a start and an end"),
        ({"time_window_start": "8am", "time_window_end": "09:00"}, "must be HH:MM"),
        ({"frequency_minutes": 0}, "frequency must be at least 1 minute, got 0"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"device_filter": {"color": "red"}}, "device filter keys are"),
    ],
)
def test_bad_values_are_refused_clearly_and_change_nothing(warehouse, monkeypatch, values, message):
    monkeypatch.setenv(KEY_ENV, "k" * 20)
    fields = {"api_key_env": KEY_ENV, **values}
    with pytest.raises(IntegrationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.add(warehouse, Integration("acme", PROJECT, **fields))
    assert store.load(warehouse) == []


def test_an_update_is_validated_as_a_whole(warehouse, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k" * 20)
    store.add(warehouse, Integration("acme", PROJECT, KEY_ENV, time_window_start="22:00", time_window_end="06:00"))
    with pytest.raises(IntegrationError, match="equals its start"):
        store.update(warehouse, "acme", time_window_end="22:00")
    assert store.get(warehouse, "acme").time_window_end == "06:00"
    with pytest.raises(IntegrationError, match="no golioth integration 'nope'"):
        store.remove(warehouse, "nope")


def _cli(*args: str) -> tuple[int, str, str]:
    """The CLI in this process (the entry point itself is run once, below)."""
    import contextlib
    import io

    from sync_pipelines.golioth.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_integrations_cli_add_list_enable_disable_remove(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("DAGSTER_HOME", str(prepare_dagster_home(tmp_path / "dagster_home").parent))
    monkeypatch.setenv("GOLIOTH_KEY_ACME", "acme-secret-key-0123456789")
    code, out, err = _cli("integrations", "add", "--project", PROJECT, "--id", "acme", "--api-key-env", "GOLIOTH_KEY_ACME",
                          "--frequency", "15", "--window-start", "22:00", "--window-end", "06:00",
                          "--timezone", "Europe/Paris", "--tags", "outdoor", "--name-pattern", "S*")
    assert code == 0, err
    assert "acme-secret-key" not in out + err
    listed = _cli("integrations", "list")[1]
    assert "acme: project sandbox-project, key in $GOLIOTH_KEY_ACME, enabled, active, every 15 min" in listed
    assert "window 22:00-06:00 Europe/Paris" in listed and "'name_pattern': 'S*'" in listed
    assert _cli("integrations", "disable", "acme")[0] == 0
    assert "disabled" in _cli("integrations", "list")[1]
    assert _cli("integrations", "enable", "acme")[0] == 0
    code, _, err = _cli("integrations", "add", "--project", "p2", "--api-key-env", "GOLIOTH_KEY_ACME",
                        "--window-start", "07:00", "--window-end", "07:00")
    assert code == 2 and "time window end equals its start (07:00)" in err
    code, _, err = _cli("integrations", "add", "--project", "p3", "--api-key-env", "NO_SUCH_VAR_XYZ")
    assert code == 2 and "unknown environment variable NO_SUCH_VAR_XYZ" in err
    code, _, err = _cli("integrations", "add", "--project", "p4", "--api-key-env", "GOLIOTH_KEY_ACME", "--frequency", "0")
    assert code == 2 and "frequency must be at least 1 minute" in err
    assert [i.id for i in store.load(Warehouse.for_url(database_url))] == ["acme"]  # the refused ones changed nothing
    code, out, _ = _cli("integrations", "set", "acme", "--frequency", "30", "--no-window", "--status", "paused")
    assert code == 0 and "frequency_minutes" in out
    listed = _cli("integrations", "list")[1]
    assert "paused, every 30 min" in listed and "window" not in listed
    code, _, err = _cli("integrations", "set", "acme", "--window-start", "09:00", "--window-end", "09:00")
    assert code == 2 and "equals its start" in err
    assert _cli("integrations", "set", "acme")[2].startswith("error: nothing to change")
    assert _cli("integrations", "remove", "acme")[0] == 0
    assert "no golioth integrations" in _cli("integrations", "list")[1]
    monkeypatch.delenv("GOLIOTH_WEBHOOK_TOKEN", raising=False)
    code, _, err = _cli("receiver")
    assert code == 2 and "refuses to start without a token" in err


@pytest.mark.parametrize("entry", [["sync_pipelines.golioth"], ["sync_pipelines", "golioth"]])
def test_the_cli_runs_as_its_module_and_from_the_top_level_cli(sqlite_url, entry):
    env = {**os.environ, "SYNC_DATABASE_URL": sqlite_url}
    result = subprocess.run([sys.executable, "-m", *entry, "integrations", "list"], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0 and "no golioth integrations" in result.stdout, result.stderr
    refused = subprocess.run([sys.executable, "-m", *entry, "integrations", "add", "--project", "p", "--api-key-env",
                              "NO_SUCH_VAR_XYZ"], capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode == 2 and "unknown environment variable NO_SUCH_VAR_XYZ" in refused.stderr
