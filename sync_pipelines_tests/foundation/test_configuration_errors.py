"""Issue 16: bad configuration fails at once naming the variable, and no password, whatever its
shape, shows in any output, exception or Dagster storage. Real processes and real servers: the
Dagster CLI and `python -m sync_pipelines.warehouse`, the shared Postgres (missing database, no
SSL) and a throwaway password-auth cluster (refused password)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from sync_pipelines import settings
from sync_pipelines.retries import is_configuration_error, is_transient
from sync_pipelines.warehouse import Warehouse, WarehouseUnavailableError
from sync_pipelines.warehouse.engine import DatabaseConfigurationError, check_database_url
from sync_pipelines_tests.pg_cluster import throwaway_cluster
from sync_pipelines_tests.processes import ROOT

# permanent configuration errors must fail in under 10 s: measured alone, not beside other tests
pytestmark = pytest.mark.serial

# Passwords holding every character URL parsers split on; each piece between them is
# distinctive, so a leak of any part of one is found.
PLANTED = ["Qzx7a@Wxy9b#Kjh4c/Lmn2d%Npq5e:Rts8f", "Hgf3k%41Vbn6m@Plo9i"]


def _pieces(secret: str) -> set[str]:
    return {secret, quote(secret, safe="")} | {p for p in re.split(r"[@#/%:]", secret) if len(p) >= 4}


def _leaks(text: str | bytes, secret: str) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [p for p in _pieces(secret) if p.encode() in data]


def _storage_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "raw, says",
    [
        ("nan", "finite"), ("inf", "finite"), ("-infinity", "finite"), ("-1", ">= 0"), ("abc", "a number"),
    ],
)
def test_non_finite_or_out_of_range_numbers_are_refused_naming_the_variable(monkeypatch, raw, says):
    monkeypatch.setenv("ENCAR_REQUESTS_PER_SECOND", raw)
    from sync_pipelines.cars.settings import requests_per_second

    with pytest.raises(settings.ConfigurationError, match=f"ENCAR_REQUESTS_PER_SECOND must be .*{re.escape(says)}"):
        requests_per_second("encar", 2)
    monkeypatch.setenv("SYNC_STEP_RETRIES", "1000")
    with pytest.raises(settings.ConfigurationError, match="SYNC_STEP_RETRIES must be <= 20"):
        settings.step_retries()


@pytest.mark.parametrize(
    "url, says",
    [
        ("garbage", "is not a database URL"),
        ("mysql://root:pw@127.0.0.1/db", "unsupported database URL scheme 'mysql'; supported: sqlite://"),
        ("postgresql://postgres@127.0.0.1:99999/db", "cannot be parsed"),
        *[(f"postgresql://postgres:{p}@127.0.0.1:5432/db", "must be percent-encoded") for p in PLANTED],
    ],
)
def test_an_unusable_url_is_refused_before_connecting_without_showing_it(url, says):
    with pytest.raises(DatabaseConfigurationError) as refused:
        check_database_url(url)
    assert "SYNC_DATABASE_URL" in str(refused.value) and says in str(refused.value)
    assert is_configuration_error(refused.value) and not is_transient(refused.value)
    for secret in PLANTED:
        assert not _leaks(str(refused.value), secret)
    # the operator command says so in one line (no traceback), fast
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sync_pipelines.warehouse", "upgrade"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "SYNC_DATABASE_URL": url}, timeout=60,
    )
    assert done.returncode == 2 and time.monotonic() - started < 10
    assert done.stderr.startswith("error: SYNC_DATABASE_URL") and "Traceback" not in done.stderr
    for secret in PLANTED:
        assert not _leaks(done.stdout + done.stderr, secret)


@pytest.mark.postgres
def test_refused_password_missing_database_and_refused_ssl_fail_at_once_naming_the_variable(pg_server):
    planted = PLANTED[0]
    with throwaway_cluster() as cluster:
        cases = [
            (cluster.url(password=planted), "refused the credentials"),
            (cluster.url(database="no_such_database_16"), "has no such database"),
            (cluster.url() + "?sslmode=require", "refused SSL"),
        ]
        for url, says in cases:
            started = time.monotonic()
            with pytest.raises(WarehouseUnavailableError) as refused:
                Warehouse(url).migrate()
            assert time.monotonic() - started < 10
            message = str(refused.value)
            assert message.startswith("SYNC_DATABASE_URL: ") and says in message, message
            assert not refused.value.transient and is_configuration_error(refused.value)
            assert not _leaks(message, planted) and cluster.password not in message


@pytest.mark.postgres
def test_planted_passwords_never_reach_output_or_dagster_storage(sandbox, pg_url, tmp_path):
    """A run of the Odoo job per planted password: written raw (refused as malformed) with
    Dagster storage in SQLite, and encoded (refused by the server) with it in Postgres."""
    with throwaway_cluster() as cluster:
        for n, secret in enumerate(PLANTED):
            for encoded in (False, True):
                home = tmp_path / f"home_{n}_{encoded}"
                home.mkdir()
                (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
                url = cluster.url(password=secret) if encoded else f"postgresql://postgres:{secret}@127.0.0.1:{cluster.port}/postgres"
                env = {**os.environ, **sandbox.env(), "DAGSTER_HOME": str(home), "SYNC_DATABASE_URL": url}
                env.pop("DAGSTER_PG_URL", None)
                if encoded:
                    env["DAGSTER_PG_URL"] = pg_url
                done = subprocess.run(
                    [sys.executable, "-m", "dagster", "job", "execute", "-m", "sync_pipelines.definitions",
                     "-j", "odoo_sync_job"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
                )
                output = done.stdout + done.stderr
                assert done.returncode != 0
                assert "SYNC_DATABASE_URL" in output
                assert not _leaks(output, secret), output[-3000:]
                assert not _leaks(_storage_bytes(home), secret)
                run = _newest_run(env)
                assert run.status == DagsterRunStatus.FAILURE
                assert run.tags.get("dagster/retry_on_asset_or_op_failure") == "false"  # no run retry
                assert _duration(env, run.run_id) < 10
        dump = subprocess.run(["pg_dump", "--data-only", pg_url.replace("postgresql+psycopg2", "postgresql")],
                              capture_output=True, timeout=120)
        assert dump.returncode == 0, dump.stderr
        assert b"SYNC_DATABASE_URL" in dump.stdout  # the failures are stored ...
        for secret in PLANTED:
            assert not _leaks(dump.stdout, secret)  # ... and no password with them


def _newest_run(env: dict[str, str]):
    with _instance(env) as instance:
        return instance.get_runs(RunsFilter(job_name="odoo_sync_job"), limit=1)[0]


def _duration(env: dict[str, str], run_id: str) -> float:
    with _instance(env) as instance:
        record = instance.get_run_record_by_id(run_id)
        return record.end_time - record.start_time


class _instance:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def __enter__(self) -> DagsterInstance:
        self.saved = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "DAGSTER_PG_URL")}
        for key in self.saved:
            if key in self.env:
                os.environ[key] = self.env[key]
            else:
                os.environ.pop(key, None)
        self.instance = DagsterInstance.get()
        return self.instance

    def __exit__(self, *exc) -> None:
        self.instance.dispose()
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_the_data_folder_is_the_repository_s_whatever_the_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SYNC_DATA_DIR", "DAGSTER_HOME", "SYNC_DATABASE_URL")}
    probe = "from sync_pipelines import settings; print(settings.data_dir()); print(settings.database_url())"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(ROOT / ".sync_data"), f"sqlite:///{ROOT / '.sync_data' / 'warehouse.sqlite'}"]
    assert not (tmp_path / ".sync_data").exists()
    # a Dagster CLI run from there refuses instead of recording into a throwaway instance
    run = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "sync_pipelines.definitions", "-j", "cars_sync_job"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode != 0
    assert "DAGSTER_HOME is unset" in run.stdout + run.stderr and "run from the repository" in run.stdout + run.stderr
    assert not (tmp_path / ".sync_data").exists()


@pytest.mark.parametrize("raw", ["nan", "inf", "-2"])
def test_a_run_with_a_bad_number_fails_at_once_naming_the_variable(sandbox, sqlite_url, monkeypatch, raw):
    from sync_pipelines.cars.assets import run_config_for
    from sync_pipelines.definitions import defs

    monkeypatch.setenv("SYNC_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ENCAR_REQUESTS_PER_SECOND", raw)
    started = time.monotonic()
    result = defs.resolve_job_def("cars_sync_job").execute_in_process(
        run_config=run_config_for("incremental"), instance=DagsterInstance.ephemeral(), raise_on_error=False,
    )
    assert not result.success and time.monotonic() - started < 10
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["encar_listings"]
    assert "ENCAR_REQUESTS_PER_SECOND must be" in failures[0].step_failure_data.error.to_string()
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_an_unreachable_vendor_error_names_host_port_variable_and_cause(monkeypatch):
    from sync_pipelines.http_client import RetryPolicy, VendorHTTPClient, VendorHTTPError
    from sync_pipelines_tests.pg_cluster import _free_port

    port = _free_port()  # nothing listens there
    monkeypatch.setenv("ODOO_URL", f"http://127.0.0.1:{port}")
    client = VendorHTTPClient(vendor="odoo", base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=1))
    with pytest.raises(VendorHTTPError) as failed:
        client.post("/jsonrpc")
    assert f"connection failed to 127.0.0.1:{port} (ODOO_URL): Connection refused" in str(failed.value)
    assert is_transient(failed.value) and not is_configuration_error(failed.value)
