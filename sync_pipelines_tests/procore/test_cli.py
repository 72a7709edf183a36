"""The procore CLI: connect (out-of-band code), list, disconnect, reencrypt and key rotation."""

from __future__ import annotations

import os
import subprocess
import sys

from cryptography.fernet import Fernet

from sync_pipelines.__main__ import main as project_cli
from sync_pipelines.procore.connections import ACTIVE, DISCONNECTED
from sync_pipelines_tests.procore.conftest import failure_text


def test_connect_with_an_out_of_band_code_then_list_shows_no_token(procore, capsys):
    code = procore.authorize("user2@sandbox.example")
    assert project_cli(["procore", "connect", "--code", code]) == 0
    out = capsys.readouterr().out
    assert "oauth/authorize?response_type=code" in out and "redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob" in out
    assert "connected Procore user 7002 (company 8002)" in out
    assert procore.store.get("7002").status == ACTIVE
    assert project_cli(["procore", "list"]) == 0
    listing = capsys.readouterr().out
    assert "7002" in listing and "user2@sandbox.example" in listing and "never" in listing
    for token in procore.vendor.issued_tokens:
        assert token not in out + listing


def test_disconnect_revokes_at_procore_stops_scheduling_and_keeps_the_data(procore, capsys):
    user = procore.connect()
    assert procore.sync(user).success
    projects = procore.ids("procore_projects")
    assert project_cli(["procore", "disconnect", "--user", user]) == 0
    assert procore.vendor.stats["revoke_calls"] == 2  # refresh and access token
    assert all(rec["used"] for rec in procore.vendor.refresh_tokens.values())
    stored = procore.store.get(user)
    assert stored.status == DISCONNECTED and stored.access_token is None and stored.refresh_token is None
    assert procore.ids("procore_projects") == projects
    assert "synced data kept" in capsys.readouterr().out


def test_rotating_the_key_keeps_every_connection_working_and_reencrypt_lets_the_old_key_go(
    procore, secret_key, monkeypatch, capsys
):
    users = [procore.connect(), procore.connect("7002")]
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("SYNC_SECRET_KEY", f"{new_key},{secret_key}")  # new first, old kept
    procore.control("expire_after_calls", user_id=users[0], calls=1)  # a refresh under the new key
    for user in users:
        run = procore.sync(user)
        assert run.success, failure_text(run)
    assert project_cli(["procore", "reencrypt"]) == 0
    # the refreshed connection was written under the new key already
    assert "re-encrypted 1 connection(s) with the newest key (1 already were)" in capsys.readouterr().out
    monkeypatch.setenv("SYNC_SECRET_KEY", new_key)  # the old key dropped
    procore.control("expire_access", user_id=users[1])
    for user in users:
        run = procore.sync(user)
        assert run.success, failure_text(run)
        assert procore.store.get(user).status == ACTIVE
    assert project_cli(["procore", "reencrypt"]) == 0
    assert "re-encrypted 0 connection(s) with the newest key (2 already were)" in capsys.readouterr().out


def test_the_module_entry_point_runs(tmp_path, secret_key):
    env = {**os.environ, "SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite'}"}
    result = subprocess.run([sys.executable, "-m", "sync_pipelines.procore", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no connections" in result.stdout


def test_connect_with_your_own_redirect_takes_the_code_from_the_pasted_url(procore, capsys):
    import argparse

    import requests

    from sync_pipelines.procore.cli import cmd_connect

    redirect = "https://example.invalid/procore/callback"
    url = procore.resource.oauth().authorize_url(redirect, state="s1") + "&login=user3@sandbox.example"
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    args = argparse.Namespace(redirect_uri=redirect, code=None, company_id=None)
    assert cmd_connect(args, read=lambda prompt: location) == 0
    assert procore.store.get("7003").status == ACTIVE
