"""The Kubernetes path as far as it can be checked without a cluster: every YAML under deploy/
parses, names only environment variables the READMEs document, refers only to secrets and
config maps it defines, and carries the root dagster.yaml's policies in the chart's keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sync_pipelines_tests.processes import ROOT

DEPLOY = ROOT / "deploy"
DOCS = [ROOT / "README.md", *sorted((ROOT / "sync_pipelines").glob("*/README.md"))]
# Variables of the tools themselves, not of the project.
TOOL_VARIABLES = re.compile(r"^(PYTHON|PIP_)")


def documented_variables() -> set[str]:
    """Every `UPPER_CASE` name the READMEs put in backticks; `DAGSTER_PG_HOST`/`_USER` forms expanded."""
    names: set[str] = set()
    for doc in DOCS:
        for group in re.findall(r"`[A-Z][A-Z0-9_]{2,}`(?:\s*/\s*`_[A-Z0-9_]+`)*", doc.read_text()):
            first, *suffixes = re.findall(r"`([A-Z0-9_]+)`", group)
            names.add(first)
            stem = first.rsplit("_", 1)[0]
            names.update(stem + suffix for suffix in suffixes)
    return names


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def walk(node, key=None):
    yield key, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def named_variables() -> dict[str, str]:
    """Variable name -> the file naming it: Secret/ConfigMap keys, container `env` names, Dockerfile ENV."""
    found = {}
    # the chart's storage password secret is read by key (postgresql-password), not as variables
    storage_secret = documents(DEPLOY / "values.yaml")[0]["global"]["postgresqlSecretName"]
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in documents(path):
            if doc.get("kind") in ("Secret", "ConfigMap") and doc["metadata"]["name"] != storage_secret:
                for section in ("data", "stringData"):
                    found.update(dict.fromkeys(doc.get(section) or {}, path.name))
            for key, value in walk(doc):
                if key == "env" and isinstance(value, list):
                    found.update({item["name"]: path.name for item in value if isinstance(item, dict)})
    dockerfile = (ROOT / "Dockerfile").read_text()
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", dockerfile, re.M):
        found.update(dict.fromkeys(re.findall(r"([A-Z][A-Z0-9_]+)=", block), "Dockerfile"))
    return {name: where for name, where in found.items() if not TOOL_VARIABLES.match(name)}


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.yaml")), ids=lambda p: p.name)
def test_every_deploy_file_parses(path):
    assert documents(path)


def test_only_documented_variables_are_named():
    names = named_variables()
    assert {"SYNC_DATABASE_URL", "SYNC_EXECUTOR", "SYNC_CELERY_BROKER_URL", "ODOO_API_KEY"} <= set(names)
    undocumented = {name: where for name, where in names.items() if name not in documented_variables()}
    assert undocumented == {}


def test_secret_and_config_map_references_resolve():
    defined = {(doc["kind"], doc["metadata"]["name"]) for doc in documents(DEPLOY / "secrets.example.yaml")}
    referenced = set()
    for path in (DEPLOY / "values.yaml", DEPLOY / "celery-workers.yaml"):
        for key, value in walk(documents(path)):
            if key in ("envSecrets", "envConfigMaps") and isinstance(value, list):
                kind = "Secret" if key == "envSecrets" else "ConfigMap"
                referenced.update((kind, item["name"]) for item in value)
            if key in ("secretRef", "secretKeyRef", "configMapRef") and isinstance(value, dict):
                referenced.add(("ConfigMap" if key == "configMapRef" else "Secret", value["name"]))
    values = documents(DEPLOY / "values.yaml")[0]
    referenced.add(("Secret", values["global"]["postgresqlSecretName"]))
    assert referenced and referenced <= defined, referenced - defined


def test_the_chart_values_carry_the_instance_policies_of_dagster_yaml():
    instance = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    values = documents(DEPLOY / "values.yaml")[0]
    daemon = values["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert values["additionalInstanceConfig"]["concurrency"]["pools"] == instance["concurrency"]["pools"]
    assert values["additionalInstanceConfig"]["instance_class"] == instance["instance_class"]
    camel = {"max_retries": "maxRetries", "retry_on_asset_or_op_failure": "retryOnAssetOrOpFailure", "enabled": "enabled"}
    assert {camel[k]: v for k, v in instance["run_retries"].items()} == daemon["runRetries"]
    for key, value in instance["run_monitoring"].items():
        assert daemon["runMonitoring"][re.sub(r"_(\w)", lambda m: m.group(1).upper(), key)] == value, key
    for kind in ("schedule", "sensor"):
        assert values["retention"][kind]["purgeAfterDays"] == instance["retention"][kind]["purge_after_days"]


def test_the_image_and_the_chart_serve_the_code_location_of_pyproject():
    module = re.search(r'module_name = "([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    [deployment] = documents(DEPLOY / "values.yaml")[0]["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    assert f'"-m", "{module}"' in (ROOT / "Dockerfile").read_text()
    [worker] = documents(DEPLOY / "celery-workers.yaml")[0]["spec"]["template"]["spec"]["containers"]
    assert worker["command"][:5] == ["python", "-m", "sync_pipelines", "celery", "worker"]
