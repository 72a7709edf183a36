"""Secrets at rest (OAuth tokens in tables): Fernet encryption with rotatable keys.

``SYNC_SECRET_KEY``: keys comma-separated, newest first (the first encrypts, all decrypt);
:func:`secret_box_for` refuses a Postgres destination without it. Rotation and the embedded
key file: ``sync_pipelines/procore/README.md``. ``python -m sync_pipelines.secret_box generate``.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from sync_pipelines import settings
from sync_pipelines.redaction import get_logger, register_secret

log = get_logger("sync_pipelines.secret_box")

KEY_VARIABLE = "SYNC_SECRET_KEY"
KEY_FILE_NAME = "secret.key"


class SecretKeyError(RuntimeError):
    """No usable key: missing where one is required, malformed, or unable to decrypt a value."""


@dataclass(frozen=True)
class SecretBox:
    """Encrypts and decrypts short text values (tokens) with the configured keys."""

    keys: tuple[bytes, ...]
    origin: str  # where the keys came from, for people: "SYNC_SECRET_KEY" or the key file path

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretKeyError(f"{KEY_VARIABLE} holds no key")
        for key in self.keys:
            register_secret(key.decode("ascii"))

    @functools.cached_property
    def _fernet(self) -> MultiFernet:
        # Built once per box (Fernet has no key derivation: the key is used as given).
        return MultiFernet([Fernet(key) for key in self.keys])

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            value = self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretKeyError(
                f"a stored secret cannot be decrypted with the keys of {self.origin}: was the key that "
                f"wrote it dropped from {KEY_VARIABLE}? Put it back (after the new one) and run the re-encrypt command"
            ) from None
        register_secret(value)
        return value

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the newest key (readable once older keys are dropped)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError(f"a stored secret cannot be decrypted with the keys of {self.origin}") from None

    def is_current(self, token: str) -> bool:
        """Whether ``token`` already decrypts with the newest key alone."""
        try:
            Fernet(self.keys[0]).decrypt(token.encode("ascii"))
            return True
        except InvalidToken:
            return False


def parse_keys(raw: str) -> tuple[bytes, ...]:
    """Comma-separated Fernet keys; a malformed one is named by its position, never shown."""
    keys = []
    for position, part in enumerate((p.strip() for p in raw.split(",")), start=1):
        if not part:
            continue
        register_secret(part)
        try:
            Fernet(part.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                f"{KEY_VARIABLE}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "generate one with `python -m sync_pipelines.secret_box generate`)"
            ) from None
        keys.append(part.encode("ascii"))
    return tuple(keys)


def key_file_path() -> Path:
    return settings.data_dir() / KEY_FILE_NAME


def _read_or_create_key_file(path: Path) -> bytes:
    """The key in ``path``, creating the file (mode 0600) on first use, once even under a race."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-key-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
            try:
                os.link(tmp, path)  # atomic: fails if another process created the file first
                log.warning(
                    "created a local secret key at %s (embedded default; it encrypts stored tokens: "
                    "keep it, or set %s)", path, KEY_VARIABLE,
                )
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    key = path.read_bytes().strip()
    keys = parse_keys(key.decode("ascii"))
    return keys[0]


def secret_box_for(database_url: str | None = None) -> SecretBox:
    """The box for the destination ``database_url`` (default ``SYNC_DATABASE_URL``).

    ``SYNC_SECRET_KEY`` when set; else a local key file on the embedded SQLite default;
    else (Postgres) a :class:`SecretKeyError` saying what to set.
    """
    raw = settings.env(KEY_VARIABLE)
    if raw:
        return SecretBox(parse_keys(raw), KEY_VARIABLE)
    url = database_url or settings.database_url()
    if make_url(url).get_backend_name() != "sqlite":
        raise SecretKeyError(
            f"refusing to store tokens: the destination is not the embedded SQLite default and {KEY_VARIABLE} "
            "is not set. Set it to a Fernet key (`python -m sync_pipelines.secret_box generate`), "
            "comma-separated with older keys after the newest when rotating"
        )
    path = key_file_path()
    return SecretBox((_read_or_create_key_file(path),), str(path))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["generate"]:
        print("usage: python -m sync_pipelines.secret_box generate   (prints a new Fernet key)", file=sys.stderr)
        return 2
    print(Fernet.generate_key().decode("ascii"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
