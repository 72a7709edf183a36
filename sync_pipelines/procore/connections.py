"""``procore_connections``: one row per user, tokens encrypted at rest, refreshed under a row lock.

:meth:`ConnectionStore.refresh` is the one write that must never be lost or doubled; how it
holds the row, skips a refresh done meanwhile and settles ``invalid_grant`` or a lost answer
is in the README ("Refresh that cannot lose a connection").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from sync_pipelines.http_client import VendorHTTPError
from sync_pipelines.procore.client import InvalidGrantError, TokenAnswer
from sync_pipelines.procore.settings import REFRESH_MARGIN_SECONDS
from sync_pipelines.secret_box import SecretBox
from sync_pipelines.warehouse import Warehouse, WarehouseTransaction, utcnow

TABLE = "procore_connections"
ACTIVE, NEEDS_REAUTH, DISCONNECTED = "active", "needs_reauth", "disconnected"
RECONNECT_HINT = "reconnect with `python -m sync_pipelines procore connect` (or `python -m sync_pipelines.procore connect`)"


class ProcoreConnectionError(RuntimeError):
    """Base of the connection errors below (none carries a token)."""


class ReauthRequiredError(ProcoreConnectionError):
    """The connection's refresh token was refused or it is not active: a person must reconnect."""

    def __init__(self, user_id: str, why: str):
        self.user_id = user_id
        super().__init__(f"Procore connection of user {user_id} needs re-authorization ({why}): {RECONNECT_HINT}")


class RefreshOutcomeUnknownError(ProcoreConnectionError):
    """A refresh call was sent but its answer lost: Procore may or may not have spent the token."""


class UnknownConnectionError(ProcoreConnectionError):
    pass


@dataclass(frozen=True)
class Connection:
    user_id: str
    status: str
    company_id: int | None
    user_login: str | None
    expires_at: dt.datetime | None
    token_version: int
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    status_reason: str | None = None
    last_sync_at: dt.datetime | None = None

    def expires_soon(self, now: dt.datetime, margin: float = REFRESH_MARGIN_SECONDS) -> bool:
        return self.expires_at is None or _aware(self.expires_at) <= now + dt.timedelta(seconds=margin)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _stamp(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


class ConnectionStore:
    """Reads and writes ``procore_connections`` through a :class:`SecretBox`."""

    def __init__(self, warehouse: Warehouse, box: SecretBox):
        self.warehouse = warehouse
        self.box = box

    @property
    def table(self) -> sa.Table:
        return self.warehouse.table(TABLE)

    def _decode(self, row: sa.Row | None, user_id: str) -> Connection:
        if row is None:
            raise UnknownConnectionError(f"no Procore connection for user {user_id}")
        m = row._mapping
        return Connection(
            user_id=m["user_id"], status=m["status"], company_id=m["company_id"], user_login=m["user_login"],
            expires_at=m["expires_at"], token_version=m["token_version"], status_reason=m["status_reason"],
            last_sync_at=m["last_sync_at"],
            access_token=self.box.decrypt(m["access_token_encrypted"]) if m["access_token_encrypted"] else None,
            refresh_token=self.box.decrypt(m["refresh_token_encrypted"]) if m["refresh_token_encrypted"] else None,
        )

    def get(self, user_id: str) -> Connection:
        with self.warehouse.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.user_id == user_id)).first()
        return self._decode(row, user_id)

    def summaries(self) -> list[dict]:
        """Every connection without its tokens (for ``list`` and the sensor)."""
        t = self.table
        columns = [t.c.user_id, t.c.user_login, t.c.company_id, t.c.status, t.c.status_reason, t.c.expires_at,
                   t.c.last_sync_at, t.c.connected_at]
        with self.warehouse.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(*columns).order_by(t.c.user_id))]

    def user_ids(self, *statuses: str) -> list[str]:
        t = self.table
        query = sa.select(t.c.user_id).order_by(t.c.user_id)
        if statuses:
            query = query.where(t.c.status.in_(statuses))
        with self.warehouse.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def save_connected(self, user_id: str, answer: TokenAnswer, *, login: str | None, company_id: int | None) -> None:
        """Store a fresh connection (``connect``), replacing any earlier one of the user."""
        now = utcnow()
        row = {
            "user_id": user_id, "user_login": login, "company_id": company_id, "status": ACTIVE, "status_reason": None,
            "access_token_encrypted": self.box.encrypt(answer.access_token),
            "refresh_token_encrypted": self.box.encrypt(answer.refresh_token),
            "expires_at": _stamp(answer.expires_at), "connected_at": now, "refreshed_at": now,
        }
        with self.warehouse.transaction() as tx:
            current = self._locked_row(tx, user_id)
            row["token_version"] = (current._mapping["token_version"] + 1) if current is not None else 1
            tx.upsert(TABLE, [row], key=("user_id",), now=now)

    def _locked_row(self, tx: WarehouseTransaction, user_id: str) -> sa.Row | None:
        # FOR UPDATE on Postgres; SQLite has no row locks, and its IMMEDIATE transaction
        # already holds the database's write lock (SQLAlchemy renders nothing there).
        query = sa.select(self.table).where(self.table.c.user_id == user_id).with_for_update()
        return tx.conn.execute(query).first()

    def refresh(self, user_id: str, stale_version: int | None, call: Callable[[str], TokenAnswer]) -> Connection:
        """A connection with a token newer than ``stale_version`` (None: whatever is current,
        refreshed if about to expire), making at most one token call, under the row lock."""
        failure: Exception | None = None
        with self.warehouse.transaction() as tx:
            current = self._decode(self._locked_row(tx, user_id), user_id)
            if current.status != ACTIVE:
                raise ReauthRequiredError(user_id, f"status {current.status}")
            fresh_enough = not current.expires_soon(utcnow())
            if fresh_enough and (stale_version is None or current.token_version > stale_version):
                return current  # someone refreshed while we waited for the lock: use theirs
            try:
                answer = call(current.refresh_token or "")
            except InvalidGrantError:
                self._set_status(tx, user_id, NEEDS_REAUTH, "Procore refused the refresh token (invalid_grant)")
                failure = ReauthRequiredError(user_id, "Procore refused the refresh token (invalid_grant)")
            except VendorHTTPError as exc:
                if exc.status is not None:
                    raise
                # Sent, answer lost: the stored token may be spent. Not retried here; the next
                # run tries it once, and Procore's answer (a pair, or invalid_grant) settles it.
                reason = f"refresh answer lost at {utcnow():%Y-%m-%d %H:%M:%S} UTC: {exc}"
                self._set_status(tx, user_id, ACTIVE, reason)
                failure = RefreshOutcomeUnknownError(f"Procore connection of user {user_id}: {reason}")
            else:
                return self._store_refreshed(tx, current, answer)
        raise failure

    def _store_refreshed(self, tx: WarehouseTransaction, current: Connection, answer: TokenAnswer) -> Connection:
        now = utcnow()
        version = current.token_version + 1
        tx.conn.execute(
            self.table.update().where(self.table.c.user_id == current.user_id).values(
                access_token_encrypted=self.box.encrypt(answer.access_token),
                refresh_token_encrypted=self.box.encrypt(answer.refresh_token),
                expires_at=_stamp(answer.expires_at), token_version=version, refreshed_at=now,
                status_reason=None, synced_at=now,
            )
        )
        return Connection(
            user_id=current.user_id, status=ACTIVE, company_id=current.company_id, user_login=current.user_login,
            expires_at=_stamp(answer.expires_at), token_version=version,
            access_token=answer.access_token, refresh_token=answer.refresh_token,
        )

    def _set_status(self, tx: WarehouseTransaction, user_id: str, status: str, reason: str | None) -> None:
        tx.conn.execute(
            self.table.update().where(self.table.c.user_id == user_id).values(
                status=status, status_reason=reason, synced_at=utcnow()
            )
        )

    def set_status(self, user_id: str, status: str, reason: str | None = None) -> None:
        with self.warehouse.transaction() as tx:
            self._set_status(tx, user_id, status, reason)

    def disconnected(self, user_id: str) -> None:
        """Forget the tokens (already revoked at Procore) and stop scheduling; data stays."""
        with self.warehouse.transaction() as tx:
            tx.conn.execute(
                self.table.update().where(self.table.c.user_id == user_id).values(
                    status=DISCONNECTED, status_reason="disconnected by the CLI", access_token_encrypted=None,
                    refresh_token_encrypted=None, synced_at=utcnow(),
                )
            )

    def note_sync(self, user_id: str, column: str, when: dt.datetime | None = None) -> None:
        """Stamp ``sync_started_at`` or ``last_sync_at``."""
        with self.warehouse.transaction() as tx:
            tx.conn.execute(self.table.update().where(self.table.c.user_id == user_id).values({column: when or utcnow()}))

    def reencrypt(self) -> tuple[int, int]:
        """Re-encrypt every stored token with the newest key; (rows rewritten, rows already current)."""
        t = self.table
        rewritten = current = 0
        with self.warehouse.transaction() as tx:
            rows = tx.conn.execute(sa.select(t.c.user_id, t.c.access_token_encrypted, t.c.refresh_token_encrypted)
                                   .with_for_update()).all()
            for user_id, access, refresh in rows:
                values = {name: self.box.rotate(token) for name, token in
                          (("access_token_encrypted", access), ("refresh_token_encrypted", refresh))
                          if token and not self.box.is_current(token)}
                if not values:
                    current += 1
                    continue
                tx.conn.execute(t.update().where(t.c.user_id == user_id).values(**values))
                rewritten += 1
        return rewritten, current


def connection_statuses(warehouse: Warehouse) -> dict[str, str]:
    """user id -> status of every connection (no tokens read: no key needed)."""
    t = warehouse.table(TABLE)
    with warehouse.engine.connect() as conn:
        return dict(conn.execute(sa.select(t.c.user_id, t.c.status).order_by(t.c.user_id)).all())


class StoredTokens:
    """The :class:`~sync_pipelines.procore.client.TokenSource` of one connection."""

    def __init__(self, store: ConnectionStore, user_id: str, refresh_call: Callable[[str], TokenAnswer]):
        self.store, self.user_id, self.refresh_call = store, user_id, refresh_call
        self.connection = store.get(user_id)
        self.refreshes = 0  # token calls this source made (for run metadata)

    def access_token(self) -> tuple[str, int]:
        if self.connection.status != ACTIVE:
            raise ReauthRequiredError(self.user_id, f"status {self.connection.status}")
        if self.connection.expires_soon(utcnow()) or not self.connection.access_token:
            self.connection = self.store.refresh(self.user_id, None, self._call)
        return self.connection.access_token or "", self.connection.token_version

    def refreshed(self, stale_version: int) -> tuple[str, int]:
        self.connection = self.store.refresh(self.user_id, stale_version, self._call)
        return self.connection.access_token or "", self.connection.token_version

    def _call(self, refresh_token: str) -> TokenAnswer:
        self.refreshes += 1
        return self.refresh_call(refresh_token)
