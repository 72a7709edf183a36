"""Canary secrets planted in every credential of a source, then clean runs and failing ones
(an HTML answer, refused or expired credentials): no canary in any destination table, in
Dagster's run storage and event log (every file of the instance's home), in stdout/stderr,
or in the runs' exception texts. The database password's canary is
``foundation/test_configuration_errors.py`` (it needs a password-auth server)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance

from sync_pipelines.sandbox.vendors import odoo as odoo_vendor
from sync_pipelines_tests.golioth.conftest import KEY_ENV, PROJECT

pytestmark = pytest.mark.timeout(240)


def canary(what: str) -> str:
    return f"canary-{what}-{uuid.uuid4().hex[:12]}"


def plant_cars(source, monkeypatch) -> list[str]:
    cookie = canary("kb-session")
    monkeypatch.setenv("KBCHACHACHA_COOKIE", f"JSESSIONID={cookie}")
    return [cookie]


def plant_odoo(source, monkeypatch) -> list[str]:
    key = canary("odoo-key")
    monkeypatch.setattr(odoo_vendor, "API_KEY", key)
    monkeypatch.setenv("ODOO_API_KEY", key)
    return [key]


def plant_procore(source, monkeypatch) -> list[str]:
    secret = canary("procore-client-secret")
    monkeypatch.setenv("PROCORE_CLIENT_SECRET", secret)
    source.harness.control("client_secret", value=secret)
    return [secret]  # + every token the sandbox issues, read after the runs


def plant_golioth(source, monkeypatch) -> list[str]:
    key = canary("golioth-key")
    source.harness.vendor.keys[PROJECT] = source.key = key
    monkeypatch.setenv(KEY_ENV, key)
    return [key]


PLANT = {"cars": plant_cars, "odoo": plant_odoo, "procore": plant_procore, "golioth": plant_golioth}


def table_text(warehouse) -> str:
    texts = []
    with warehouse.engine.connect() as conn:
        for name in sa.inspect(warehouse.engine).get_table_names():
            texts += [repr(tuple(row)) for row in conn.execute(sa.text(f'SELECT * FROM "{name}"'))]
    return "\n".join(texts)


def storage_text(home) -> str:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file()).decode("utf-8", "replace")


def event_text(instance) -> str:
    texts = []
    for run in instance.get_runs():
        texts += [repr(entry) for entry in instance.all_logs(run.run_id)]
        texts.append(repr(run.tags) + repr(run.run_config))
    return "\n".join(texts)


@pytest.mark.parametrize("name", list(PLANT))
def test_no_canary_secret_anywhere_after_clean_and_failing_runs(name, make_source, secret_key, monkeypatch,
                                                               tmp_path, capfd):
    source = make_source(name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    source.harness.instance = DagsterInstance.local_temp(str(home))
    canaries = [*PLANT[name](source, monkeypatch), secret_key]
    source.setup()
    failures = []
    outcomes = [source.run(source.first_mode)]
    source.add_fault("html", times=1)
    outcomes.append(source.run("incremental"))
    if hasattr(source, "expire_credentials"):
        source.expire_credentials()
        outcomes.append(source.run("incremental"))
    if hasattr(source, "revoke_credentials"):
        source.revoke_credentials()
        outcomes.append(source.run("incremental"))
    failures = [o.failure for o in outcomes if not o.success]
    assert outcomes[0].success and failures, "the case must see clean and failing runs"
    if name == "procore":
        canaries += source.harness.vendor.issued_tokens

    out, err = capfd.readouterr()
    places = {
        "destination tables": table_text(source.warehouse),
        "Dagster storage": storage_text(home),
        "Dagster event log and runs": event_text(source.harness.instance),
        "stdout/stderr": out + err,
        "exception texts": "\n".join(failures),
    }
    if name == "cars":
        assert canaries[0] in source.harness.kb.sessions  # the planted cookie was sent
    assert source.harness.instance.get_runs()[0].run_id in places["Dagster storage"]  # the search sees storage
    hits = [(where, c[:14]) for where, text in places.items() for c in canaries if c in text]
    assert hits == [], f"canary secrets found: {hits}"
