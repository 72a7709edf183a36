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
    # one walk for headers, params and stored payloads alike: nested values too, numbers kept
    assert redact_mapping({"page": 2, "filter": {"token": "t_1", "q": "Bearer abcdef123456"}, "Cookie": "a=1"}) == {
        "page": 2,
        "filter": {"token": "***", "q": "Bearer ***"},
        "Cookie": "***",
    }
    assert redact_mapping(None) == {} and redact_mapping({}) == {}


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


def test_unregistered_header_text_is_masked():
    text = (
        "request headers: x-api-key: gk_live_11112222 Accept: application/json\n"
        "Authorization: Token 9f8e7d6c5b4a3210\n"
        "Authorization: Api-Key ak_33334444\n"
        "proxy-authorization: Digest dg_55556666\n"
        "X-Auth-Token: xt_77778888 (then HTTP 403)\n"
        "Cookie: JSESSIONID=js_99990000; theme=dark\n"
        "Api-Key ak_bare_12121212"
    )
    out = redact(text)
    for secret in ("gk_live_11112222", "9f8e7d6c5b4a3210", "ak_33334444", "dg_55556666", "xt_77778888",
                   "js_99990000", "theme=dark", "ak_bare_12121212"):
        assert secret not in out, (secret, out)
    # only the values go: the names, other headers and the rest of the line stay readable
    assert "x-api-key: ***" in out and "Accept: application/json" in out
    assert "Authorization: ***\n" in out and "X-Auth-Token: *** (then HTTP 403)" in out
    assert "Cookie: ***\n" in out and "Api-Key ***" in out


def test_sqlite_urls_keep_their_slashes():
    assert redact_url("sqlite:////tmp/x") == "sqlite:////tmp/x"  # absolute path
    assert redact_url("sqlite:///relative/x.sqlite") == "sqlite:///relative/x.sqlite"
    assert redact_url("sqlite://") == "sqlite://"
    assert redact_url("https://u:pw@host/p?api_key=K123&page=2#top") == "https://u:***@host/p?api_key=***&page=2#top"
    warehouse = Warehouse("sqlite:////tmp/sync_pipelines_redaction_test.sqlite")
    assert warehouse.safe_url == "sqlite:////tmp/sync_pipelines_redaction_test.sqlite"
    warehouse.dispose()


def test_reject_payloads_are_stored_redacted(warehouse: Warehouse):
    register_secret("reg-secret-5a5a5a5a")
    payload = {
        "id": 7,
        "name": "widget",
        "password": "hunter2",
        "api_key": "ak_unregistered_1",
        "Cookie": "sid=abc",
        "nested": {"access_token": "at_2", "note": "echoed reg-secret-5a5a5a5a back", "token": None},
        "lines": [{"x-api-key": "k_3"}, "Bearer abcdef123456", 4.5],
    }
    with warehouse.transaction() as tx:
        tx.reject("test", "items", 7, "bad price (key reg-secret-5a5a5a5a)", payload)
        tx.reject("test", "items", 8, "bad", "x-api-key: gk_plain_text_1")
    stored = {r["record_key"]: r for r in warehouse.rejects("test", "items")}
    assert stored["7"]["payload"] == {
        "id": 7,
        "name": "widget",
        "password": "***",
        "api_key": "***",
        "Cookie": "***",
        "nested": {"access_token": "***", "note": "echoed *** back", "token": None},
        "lines": [{"x-api-key": "***"}, "Bearer ***", 4.5],
    }
    assert "reg-secret-5a5a5a5a" not in stored["7"]["reason"]
    assert stored["8"]["payload"] == "x-api-key: ***"
    assert payload["password"] == "hunter2"  # the caller's record is not modified


def test_error_text_after_a_sensitive_name_stays_readable():
    # words of an error message, not credentials: nothing to hide, and they say what went wrong
    for text in (
        "Invalid token: expired",
        "Authorization: insufficient scope",
        "refresh_token: revoked by user",
        "session_id: unknown",
        "api-key rotation due",
        "X-Api-Key: missing",
    ):
        assert redact(text) == text


def test_an_unquoted_value_is_masked_when_it_is_credential_shaped():
    # 16 characters or more; or 8 or more with a digit
    assert redact("token: abcdefghijklmnop") == "token: ***"
    assert redact("token: abcdefghijklmno") == "token: abcdefghijklmno"  # 15, no digit
    assert redact("session_id: abcdefg1 (stale)") == "session_id: *** (stale)"
    assert redact("session_id: abcdef1") == "session_id: abcdef1"  # 7, even with a digit
    assert redact("Authorization: 9f8e7d6c5b4a3210") == "Authorization: ***"  # no scheme, a credential
    assert redact("api-key gk_live_11112222 rotated") == "api-key *** rotated"
    # after a scheme an Authorization header holds credentials, however short
    for scheme in ("Bearer", "Basic", "Token", "Digest", "Api-Key", "Negotiate", "OAuth"):
        assert redact(f"Authorization: {scheme} dTpw\n") == "Authorization: ***\n", scheme
    # a registered secret is masked wherever it is, however short or plain
    register_secret("plainpw")
    assert redact("password: plainpw") == "password: ***"
    assert redact("token: expired, was plainpw") == "token: expired, was ***"
