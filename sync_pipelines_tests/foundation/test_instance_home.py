"""One run history in the embedded default: a run the Dagster CLI records from the repository
(``DAGSTER_HOME`` unset, the root ``dagster.yaml``) is the run ``make demo`` / ``make ui`` see
in ``$SYNC_DATA_DIR/dagster_home``, and the other way round."""

from __future__ import annotations

import tempfile
import uuid

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRun

from sync_pipelines.instance import PROJECT_DAGSTER_YAML, prepare_dagster_home


def _cli_instance(scratch: str) -> DagsterInstance:
    # What `dagster job execute` does without DAGSTER_HOME: a scratch home, the cwd's dagster.yaml.
    return DagsterInstance.from_ref(InstanceRef.from_dir(scratch, config_dir=str(PROJECT_DAGSTER_YAML.parent)))


def test_the_cli_and_the_demo_home_share_one_run_history(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("SYNC_DATA_DIR", str(data))
    for name in ("DAGSTER_HOME", "DAGSTER_PG_URL", "DAGSTER_PG_HOST"):
        monkeypatch.delenv(name, raising=False)
    home = data / "dagster_home"
    prepare_dagster_home(home)

    cli_run, demo_run = (DagsterRun(job_name="cars_sync_job", run_id=str(uuid.uuid4())) for _ in range(2))
    with tempfile.TemporaryDirectory() as scratch, _cli_instance(scratch) as cli:
        cli.add_run(cli_run)
    with DagsterInstance.from_config(str(home)) as demo:
        assert demo.get_run_by_id(cli_run.run_id) is not None
        demo.add_run(demo_run)
    with tempfile.TemporaryDirectory() as scratch, _cli_instance(scratch) as cli:
        assert cli.get_run_by_id(demo_run.run_id) is not None
    assert not any(home.glob("storage/history")), "a second SQLite history beside Dagster's own"
