"""Procore connections from the command line: ``connect``, ``disconnect``, ``list``, ``reencrypt``.

``python -m sync_pipelines procore <command>`` (the project CLI finds :func:`register`) or
``python -m sync_pipelines.procore <command>``. Nothing here ever prints a token.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from sync_pipelines import settings as shared_settings
from sync_pipelines.procore import settings
from sync_pipelines.procore.client import ProcoreClient, ProcoreOAuth, TokenAnswer
from sync_pipelines.procore.connections import ConnectionStore
from sync_pipelines.procore.resources import ProcoreResource
from sync_pipelines.warehouse import Warehouse


class _FixedToken:
    """The token source of a just-exchanged code: no refresh, it was minted a second ago."""

    def __init__(self, token: str):
        self.token = token

    def access_token(self) -> tuple[str, int]:
        return self.token, 0

    def refreshed(self, stale_version: int) -> tuple[str, int]:
        raise RuntimeError("a token minted a moment ago was refused: check the Procore app's permissions")


def _pick_company(client: ProcoreClient, asked: int | None) -> int | None:
    """The company asked for (checked), else the only one the user sees, else None (all of them)."""
    companies = [c for page in client.companies() for c in page]
    ids = [c["id"] for c in companies]
    if asked is not None:
        if asked not in ids:
            raise SystemExit(f"user does not belong to company {asked}; theirs: {ids}")
        return asked
    return ids[0] if len(ids) == 1 else None


def complete_connect(
    oauth: ProcoreOAuth, store: ConnectionStore, code: str, redirect_uri: str, company_id: int | None = None
) -> tuple[str, int | None]:
    """Exchange ``code``, find whose it is (``/me``), store the encrypted pair; (user id, company)."""
    answer: TokenAnswer = oauth.exchange_code(code, redirect_uri)
    with ProcoreClient(settings.api_url(), "(connecting)", _FixedToken(answer.access_token)) as client:
        me = client.me()
        company = _pick_company(client, company_id)
    user_id = str(me["id"])
    store.save_connected(user_id, answer, login=me.get("login"), company_id=company)
    return user_id, company


def _code_from(pasted: str) -> str:
    """The code itself, or the ``code`` parameter of a pasted redirect URL."""
    pasted = pasted.strip()
    if "code=" in pasted:
        found = parse_qs(urlsplit(pasted).query).get("code")
        if found:
            return found[0]
    return pasted


def _store() -> tuple[ProcoreResource, ConnectionStore]:
    resource = ProcoreResource()
    return resource, resource.store(Warehouse.for_url(shared_settings.database_url()))


def cmd_connect(args: argparse.Namespace, read: Callable[[str], str] = input) -> int:
    resource = ProcoreResource()
    oauth = resource.oauth()
    store = resource.store(Warehouse.for_url(shared_settings.database_url()))  # refuses early without a key
    print("Open this URL, sign in to Procore and authorize the app:")
    print(f"  {oauth.authorize_url(args.redirect_uri)}")
    code = _code_from(args.code or read("Paste the authorization code (or the whole redirect URL): "))
    user_id, company = complete_connect(oauth, store, code, args.redirect_uri, args.company_id)
    print(f"connected Procore user {user_id} (company {company if company is not None else 'all'}); "
          "procore_connections_sensor adds its partition, procore_sync_schedule syncs it every 10 minutes")
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    resource, store = _store()
    connection = store.get(args.user)
    oauth = resource.oauth()
    failed = None
    for token in (connection.refresh_token, connection.access_token):
        if token:
            try:
                oauth.revoke(token)
            except Exception as exc:  # still disconnect locally; say what Procore answered
                failed = exc
    store.disconnected(args.user)
    print(f"disconnected Procore user {args.user}: tokens forgotten, no more scheduled syncs; synced data kept")
    if failed is not None:
        print(f"warning: revoking at Procore failed ({failed}); revoke the app in Procore's settings", file=sys.stderr)
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _, store = _store()
    rows = store.summaries()
    print(f"{'user':10} {'login':28} {'company':>8} {'status':13} {'token expires (UTC)':20} {'last sync (UTC)':20}")
    for r in rows:
        expires = f"{r['expires_at']:%Y-%m-%d %H:%M:%S}" if r["expires_at"] else "-"
        synced = f"{r['last_sync_at']:%Y-%m-%d %H:%M:%S}" if r["last_sync_at"] else "never"
        company = str(r["company_id"]) if r["company_id"] is not None else "all"
        print(f"{r['user_id']:10} {(r['user_login'] or '-'):28} {company:>8} {r['status']:13} {expires:20} {synced:20}")
    if not rows:
        print("(no connections: `connect` adds one)")
    return 0


def cmd_reencrypt(args: argparse.Namespace) -> int:
    _, store = _store()
    rewritten, current = store.reencrypt()
    print(f"re-encrypted {rewritten} connection(s) with the newest key ({current} already were); "
          "older keys may now be dropped from SYNC_SECRET_KEY")
    return 0


def _add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="procore_command", required=True)
    connect = commands.add_parser("connect", help="authorize a Procore user and store the connection")
    connect.add_argument("--redirect-uri", default=settings.OOB_REDIRECT_URI,
                         help=f"the app's redirect URI (default out-of-band: {settings.OOB_REDIRECT_URI})")
    connect.add_argument("--code", help="the authorization code (asked for when left out)")
    connect.add_argument("--company-id", type=int, help="sync this company only (default: the user's only one, or all)")
    connect.set_defaults(func=cmd_connect)
    disconnect = commands.add_parser("disconnect", help="revoke at Procore and stop syncing (data is kept)")
    disconnect.add_argument("--user", required=True, help="Procore user id")
    disconnect.set_defaults(func=cmd_disconnect)
    commands.add_parser("list", help="connections: user, company, status, expiry, last sync").set_defaults(
        func=cmd_list)
    commands.add_parser("reencrypt", help="re-encrypt every stored token with the newest SYNC_SECRET_KEY").set_defaults(
        func=cmd_reencrypt)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``procore`` command group to the project CLI (each command sets ``func``)."""
    parser = subparsers.add_parser("procore", help="Procore connections (connect, disconnect, list, reencrypt)")
    _add_commands(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync_pipelines.procore", description=__doc__.splitlines()[0])
    _add_commands(parser)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
