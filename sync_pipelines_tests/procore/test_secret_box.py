"""Tokens at rest: Fernet keys from SYNC_SECRET_KEY (newest first), the local key file, refusals."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from cryptography.fernet import Fernet

from sync_pipelines.redaction import redact
from sync_pipelines.secret_box import SecretBox, SecretKeyError, key_file_path, parse_keys, secret_box_for

PG = "postgresql+psycopg2://sync:pw@127.0.0.1:5432/warehouse"
SQLITE = "sqlite:////tmp/x/warehouse.sqlite"


def test_first_key_encrypts_every_key_decrypts_and_rotate_moves_to_the_newest(monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("SYNC_SECRET_KEY", old)
    written_under_old = secret_box_for(PG).encrypt("sbx-rt-canary")
    monkeypatch.setenv("SYNC_SECRET_KEY", f"{new}, {old}")
    box = secret_box_for(PG)
    assert box.decrypt(written_under_old) == "sbx-rt-canary"
    assert not box.is_current(written_under_old)
    rotated = box.rotate(written_under_old)
    assert box.is_current(rotated) and box.is_current(box.encrypt("x"))
    monkeypatch.setenv("SYNC_SECRET_KEY", new)  # the old key dropped
    assert secret_box_for(PG).decrypt(rotated) == "sbx-rt-canary"
    with pytest.raises(SecretKeyError, match="cannot be decrypted") as caught:
        secret_box_for(PG).decrypt(written_under_old)
    assert old not in str(caught.value) and new not in str(caught.value)


def test_keys_are_masked_wherever_they_show_and_a_bad_key_is_named_by_position(monkeypatch):
    good = Fernet.generate_key().decode()
    box = SecretBox(parse_keys(good), "test")
    assert good not in redact(f"key={good} in a log line") and box.keys
    with pytest.raises(SecretKeyError, match="key 2 is not a Fernet key") as caught:
        parse_keys(f"{good},not-a-key-but-secret-text")
    assert "not-a-key-but-secret-text" not in str(caught.value)


def test_postgres_destination_without_a_key_refuses_to_store_tokens(monkeypatch):
    monkeypatch.delenv("SYNC_SECRET_KEY", raising=False)
    with pytest.raises(SecretKeyError, match="refusing to store tokens.*SYNC_SECRET_KEY"):
        secret_box_for(PG)
    assert not key_file_path().exists()


def test_embedded_default_creates_a_local_key_file_once_and_says_where(monkeypatch, caplog):
    monkeypatch.delenv("SYNC_SECRET_KEY", raising=False)
    caplog.set_level(logging.WARNING, logger="sync_pipelines.secret_box")
    first = secret_box_for(SQLITE)
    path = key_file_path()
    assert path.exists() and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert any(str(path) in record.getMessage() for record in caplog.records)
    caplog.clear()
    second = secret_box_for(SQLITE)
    assert second.keys == first.keys and not caplog.records  # announced once, on creation
    assert second.decrypt(first.encrypt("token")) == "token"
    assert path.read_text().strip() not in caplog.text
