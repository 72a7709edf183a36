"""Keep secrets out of logs, run metadata, exceptions and tables.

Two layers: values known to be secret (registered when a client is built from the
environment) are replaced wherever they appear, and well-known secret shapes (bearer
tokens, ``password=...``, ``"access_token": "..."``, URL user-info) are masked even when
nobody registered them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

MASK = "***"

# Names whose values are secret wherever they appear: headers, query strings, JSON keys.
SENSITIVE_NAMES = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api_key",
    "apikey",
    "api-key",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "passwd",
    "secret",
    "token",
    "session_id",
    "jsessionid",
)

_known_secrets: set[str] = set()
_lock = threading.Lock()

_name_alt = "|".join(re.escape(n) for n in sorted(SENSITIVE_NAMES, key=len, reverse=True))
# A header (or any ``name: value``) whose name is, or ends in, a sensitive name:
# ``x-api-key``, ``X-Auth-Token``, ``Procore-Api-Key``...
_header_name = rf"(?<![\w-])(?:[A-Za-z0-9]+[-_])*(?:{_name_alt})"
# One unquoted value: up to whitespace, a quote, a comma or a semicolon.
_value_char = r"[^\s\"',;]"
# A value shaped like a credential (a key, token, session id or password), not a word of an
# error message ("Invalid token: expired", "session_id: unknown"): 16 characters or more, or
# 8 or more with a digit in them. Shorter secrets are masked when registered.
_credential = rf"(?:(?={_value_char}*\d){_value_char}{{8,}}|{_value_char}{{16,}})(?!{_value_char})"
# The schemes an Authorization header names before its credentials. Only these are taken
# as a scheme, so "Authorization: insufficient scope" is an error message, not a header.
_auth_scheme = r"(?:Bearer|Basic|Token|Digest|Api-Key|Negotiate|OAuth)"
_PATTERNS = [
    # Authorization: <scheme> <credentials> (whatever follows a known scheme is credentials),
    # or Authorization: <a credential-shaped value> without a scheme
    (
        re.compile(
            r"(?i)(?<![\w-])((?:proxy-)?authorization[\"']?[ \t]*:[ \t]*)(?![\"'])"
            rf"(?:{_auth_scheme}[ \t]+{_value_char}+|{_credential})"
        ),
        r"\1" + MASK,
    ),
    # Cookie: a=1; b=2 (every cookie of the header, to the end of the line)
    (re.compile(r"(?i)(?<![\w-])((?:set-)?cookie[ \t]*:[ \t]*)(?![\"'\s])[^\r\n\"']+"), r"\1" + MASK),
    # x-api-key: <value> (unquoted header text; quoted JSON values are the pattern below),
    # when the value is credential-shaped
    (re.compile(rf"(?i)({_header_name}[ \t]*:[ \t]*)(?![\"'\s]|\*\*\*){_credential}"), r"\1" + MASK),
    # Bearer <token> / Basic <creds>, also without the header name
    (re.compile(r"(?i)\b(bearer|basic)[ \t]+(?!\*\*\*)[A-Za-z0-9\-._~+/=]{6,}"), r"\1 " + MASK),
    # Api-Key <key> without the header name, when a key follows: "api-key" is prose too
    (re.compile(rf"(?i)\b(api-key)[ \t]+(?!\*\*\*){_credential}"), r"\1 " + MASK),
    # "access_token": "value"  /  'password': 'value'
    (re.compile(rf"(?i)([\"']?(?:{_name_alt})[\"']?\s*:\s*[\"'])[^\"']*([\"'])"), r"\1" + MASK + r"\2"),
    # access_token=value (query strings, form bodies, cookies)
    (re.compile(rf"(?i)\b((?:{_name_alt})=)[^&\s;,\"']+"), r"\1" + MASK),
    # scheme://user:password@host, to the last "@" of the word: a password holding an
    # unencoded "@", "/", "#" or ":" is masked whole (parsers split such URLs elsewhere)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/\s]*:)(?!\*\*\*@)\S*@"), r"\1" + MASK + "@"),
]


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` masks it wherever it shows up."""
    if value and len(value) >= 4:
        with _lock:
            _known_secrets.add(value)


def is_sensitive_name(name: str) -> bool:
    lowered = name.lower()
    return any(n == lowered or lowered.endswith("_" + n) or lowered.endswith("-" + n) for n in SENSITIVE_NAMES)


def redact(text: Any, extra_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` as a string with every known secret and secret-shaped value masked."""
    out = str(text)
    with _lock:
        secrets = sorted(set(_known_secrets) | {s for s in extra_secrets if s}, key=len, reverse=True)
    for secret in secrets:
        out = out.replace(secret, MASK)
    for pattern, repl in _PATTERNS:
        out = pattern.sub(repl, out)
    return out


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like document fit to store: the values of secret-looking keys masked
    (``password``, ``api_key``, ``token``, ``cookie``...), every string leaf redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and is_sensitive_name(k) and v not in (None, "") else redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def redact_mapping(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of headers/params with sensitive names masked and other values redacted
    (:func:`redact_value` of them)."""
    return redact_value(values) if values else {}


def redact_url(url: str) -> str:
    """A URL without user-info password and with sensitive query parameters masked.

    Only those two parts are rewritten; the rest stays as written (``urlunsplit`` would
    turn ``sqlite:////tmp/x`` into ``sqlite://tmp/x``, a different file). The user-info
    ends at the last "@" (a password may hold an unencoded "@", "#", "/" or "?"), unless a
    "/" comes before any ":" (then that "@" is in the path).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return redact(url)
    at = rest.rfind("@")
    userinfo = rest[:at] if at >= 0 else ""
    colon, slash = userinfo.find(":"), userinfo.find("/")
    if at >= 0 and (slash == -1 or -1 < colon < slash):
        user = userinfo.split(":", 1)[0]
        rest = (f"{user}:{MASK}@" if colon >= 0 else f"{user}@") + rest[at + 1:]
    rest, hash_sign, fragment = rest.partition("#")
    head, question_mark, query = rest.partition("?")
    if query:
        query = urlencode(
            [(k, MASK if is_sensitive_name(k) else v) for k, v in parse_qsl(query, keep_blank_values=True)],
            safe="|()._-:",
        )
    return redact(scheme + sep + head + question_mark + query + hash_sign + fragment)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the rendered message of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the log line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True


# urllib3 logs full request URLs (query strings included) at DEBUG.
THIRD_PARTY_LOGGERS = ("urllib3.connectionpool", "requests")


def install_log_redaction(logger_names: Iterable[str] = THIRD_PARTY_LOGGERS) -> None:
    """Attach :class:`RedactingFilter` to the named loggers (idempotent).

    A logger's filters apply only to records logged on that very logger (not its
    children), so every module logger of ours comes from :func:`get_logger`.
    """
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def get_logger(name: str) -> logging.Logger:
    """A module logger whose records are redacted, plus redaction on third-party HTTP loggers."""
    install_log_redaction((name, *THIRD_PARTY_LOGGERS))
    return logging.getLogger(name)
