"""Secrets never reach logs, exception messages or stored reasons in clear text."""

from __future__ import annotations

import logging

from sync_pipelines.redaction import (
    RedactingFilter,
    get_logger,
    redact,
    redact_mapping,
    redact_url,
    register_secret,
)
from sync_pipelines.warehouse.store import Warehouse


def test_known_secret_values_are_masked_anywhere():
    register_secret("tok-8f7e6d5c4b3a")
    assert redact("failed with tok-8f7e6d5c4b3a inside") == "failed with *** inside"


def test_secret_shapes_are_masked_without_registration():
    text = (
        'Authorization: Bearer abc.def.ghi123 {"access_token": "AAA111", "refresh_token":"BBB222"} '
        "password=hunter22&user=bob client_secret=xyz9876 postgresql://app:s3cr3t@db:5432/x"
    )
    out = redact(text)
    for secret in ("abc.def.ghi123", "AAA111", "BBB222", "hunter22", "xyz9876", "s3cr3t"):
        assert secret not in out
    assert "user=bob" in out and "app:***@db" in out


def test_urls_and_headers():
    assert redact_url("https://u:pw@host/p?api_key=K123&page=2") == "https://u:***@host/p?api_key=***&page=2"
    assert redact_mapping({"Authorization": "Bearer x", "Accept": "json", "X-Api-Key": "k"}) == {
        "Authorization": "***",
        "Accept": "json",
        "X-Api-Key": "***",
    }


def test_log_records_are_redacted(caplog):
    logger = get_logger("sync_pipelines.test")
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)
    assert any(isinstance(f, RedactingFilter) for f in logging.getLogger("urllib3.connectionpool").filters)
    with caplog.at_level(logging.INFO, logger="sync_pipelines.test"):
        logger.info("refreshing with refresh_token=%s", "RT-55555555")
    assert "RT-55555555" not in caplog.text
    assert "refresh_token=***" in caplog.text


def test_database_url_password_never_shown(tmp_path):
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert warehouse.location.endswith("x.sqlite")
    assert redact_url("postgresql+psycopg2://app:pa55word@db.internal:5432/sync") == (
        "postgresql+psycopg2://app:***@db.internal:5432/sync"
    )
