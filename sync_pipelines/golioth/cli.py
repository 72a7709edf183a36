"""``golioth`` CLI group: manage integrations, backfill telemetry, start the webhook receiver.

The top-level CLI finds :func:`register`; every command is ``args.func(args) -> exit code``,
and a bad value is refused with one message, changing nothing. Usage: README "Integrations".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from sync_pipelines import settings as shared_settings
from sync_pipelines.golioth import integrations as store
from sync_pipelines.golioth.integrations import Integration, IntegrationError
from sync_pipelines.golioth.partitions import add_partition, remove_partition
from sync_pipelines.warehouse import Warehouse


def _warehouse() -> Warehouse:
    return Warehouse.for_url(shared_settings.database_url())


def _add(args: argparse.Namespace) -> int:
    tags = [t for t in (args.tags or "").split(",") if t]
    device_filter = {k: v for k, v in (("tags", tags), ("name_pattern", args.name_pattern)) if v}
    integration = Integration(
        id=args.id or args.project, project_id=args.project, api_key_env=args.api_key_env,
        enabled=not args.disabled, frequency_minutes=args.frequency, time_window_start=args.window_start,
        time_window_end=args.window_end, timezone=args.timezone, device_filter=device_filter,
    )
    store.add(_warehouse(), integration)
    print(f"added golioth integration {integration.id} (project {integration.project_id}, key in ${integration.api_key_env})")
    print(_change_partition(add_partition, integration.id, "added"))
    return 0


def _change_partition(change, integration_id: str, done: str) -> str:
    """Add or remove the integration's backfill partition in the Dagster instance, now; the
    sentence to print. An unreachable instance is no error: the sensor catches up."""
    from sync_pipelines.instance import operator_instance

    try:
        with operator_instance() as instance:
            changed = change(instance, integration_id)
    except (Exception, SystemExit) as exc:  # only the type: a storage error may quote its URL
        return (f"Dagster instance not reachable ({type(exc).__name__}): golioth_integrations_sensor will "
                f"bring the golioth_telemetry partition {integration_id!r} in step")
    return f"golioth_telemetry partition {integration_id!r} {done if changed else 'already ' + done}"


def _list(args: argparse.Namespace) -> int:
    rows = store.load(_warehouse())
    if args.json:
        print(json.dumps([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in i.as_row().items()}
                          for i in rows], indent=2))
        return 0
    if not rows:
        print("no golioth integrations")
    for i in rows:
        state = "enabled" if i.enabled else "disabled"
        window = f", window {i.window}" if i.window else ""
        print(f"{i.id}: project {i.project_id}, key in ${i.api_key_env}, {state}, {i.status}, every {i.frequency_minutes} min"
              f"{window}, filter {i.device_filter or '-'}, next run {i.next_run_at or 'at the next tick'}"
              f"{', last error: ' + i.last_error if i.last_error else ''}")
    return 0


def _set_enabled(enabled: bool):
    def command(args: argparse.Namespace) -> int:
        store.update(_warehouse(), args.id, enabled=enabled)
        print(f"golioth integration {args.id} {'enabled' if enabled else 'disabled'}")
        return 0

    return command


def _set(args: argparse.Namespace) -> int:
    values = {name: getattr(args, name) for name in
              ("project_id", "api_key_env", "frequency_minutes", "time_window_start", "time_window_end", "timezone",
               "status") if getattr(args, name) is not None}
    if args.no_window:
        values.update(time_window_start=None, time_window_end=None)
    if args.tags is not None or args.name_pattern is not None:
        tags = [t for t in (args.tags or "").split(",") if t]
        values["device_filter"] = {k: v for k, v in (("tags", tags), ("name_pattern", args.name_pattern)) if v}
    if not values:
        raise IntegrationError("nothing to change: give at least one option (see --help)")
    store.update(_warehouse(), args.id, **values)
    print(f"golioth integration {args.id} updated: {', '.join(sorted(values))}")
    return 0


def _set_parser(commands) -> None:
    edit = commands.add_parser("set", help="change an integration (validated as a whole; nothing changes on error)")
    edit.add_argument("id")
    edit.add_argument("--project", dest="project_id")
    edit.add_argument("--api-key-env")
    edit.add_argument("--frequency", dest="frequency_minutes", type=int)
    edit.add_argument("--window-start", dest="time_window_start")
    edit.add_argument("--window-end", dest="time_window_end")
    edit.add_argument("--no-window", action="store_true", help="drop the time window")
    edit.add_argument("--timezone")
    edit.add_argument("--status", choices=store.STATUSES, help="paused: kept, enabled or not, but never scheduled")
    edit.add_argument("--tags", help="comma-separated tag ids ('' for none)")
    edit.add_argument("--name-pattern")
    edit.set_defaults(func=_guarded(_set))


def _remove(args: argparse.Namespace) -> int:
    store.remove(_warehouse(), args.id)
    print(f"removed golioth integration {args.id} (its telemetry stays)")
    print(_change_partition(remove_partition, args.id, "removed"))
    return 0


def _backfill(args: argparse.Namespace) -> int:
    from sync_pipelines.golioth import backfill
    from sync_pipelines.instance import operator_instance

    with operator_instance() as instance:
        slices = backfill.plan(_warehouse(), instance, args.first, args.last, args.integrations)
        runs = backfill.launch(instance, args.first, args.last, slices)
    for run in runs:
        state = "succeeded" if run.success else "FAILED"
        print(f"golioth_telemetry backfill {args.first}..{args.last} x {', '.join(run.integrations)}: "
              f"run {run.run_id} {state}")
    return 0 if all(r.success for r in runs) else 1


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {value!r}") from None


def _backfill_parser(groups) -> None:
    backfill = groups.add_parser(
        "backfill", help="backfill golioth_telemetry over UTC days (end included): one Dagster run per range",
        description="Backfill the telemetry of the given UTC days (--to included) for the given integrations "
        "(default: every enabled one) as single-run backfills of golioth_telemetry, in Dagster's run history. "
        "Never moves the live cursor.",
    )
    backfill.add_argument("--from", dest="first", type=_day, required=True, metavar="YYYY-MM-DD")
    backfill.add_argument("--to", dest="last", type=_day, required=True, metavar="YYYY-MM-DD")
    backfill.add_argument("--integration", dest="integrations", action="append", default=[], metavar="ID",
                          help="an integration to backfill (repeatable; default: every enabled one)")
    backfill.set_defaults(func=_guarded(_backfill))


def _receiver(args: argparse.Namespace) -> int:
    from sync_pipelines.golioth.receiver import serve, serve_alongside

    # --embedded: the demo's destination (it ignores SYNC_DATABASE_URL, so must the receiver)
    url = shared_settings.default_database_url() if args.embedded else None
    if args.command_alongside:
        return serve_alongside(args.command_alongside, args.host, args.port, url)
    serve(args.host, args.port, url)
    return 0


def _guarded(handler):
    """``args -> int`` for ``set_defaults(func=...)``: a refused value is a message and exit code 2."""

    def command(args: argparse.Namespace) -> int:
        from sync_pipelines.golioth.receiver import ReceiverConfigError

        try:
            return handler(args)
        except (IntegrationError, ReceiverConfigError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return command


def _add_parser(commands) -> None:
    add = commands.add_parser("add", help="add an integration (its API key stays in the environment)")
    add.add_argument("--project", required=True, help="Golioth project id")
    add.add_argument("--api-key-env", required=True, help="NAME of the environment variable holding the API key")
    add.add_argument("--id", help="integration id (default: the project id)")
    add.add_argument("--frequency", type=int, default=5, help="minutes between pulls (>= 1; default 5)")
    add.add_argument("--window-start", help="HH:MM local time the window opens (with --window-end; may cross midnight)")
    add.add_argument("--window-end", help="HH:MM local time the window closes")
    add.add_argument("--timezone", default="UTC", help="IANA time zone of the window (default UTC)")
    add.add_argument("--tags", help="comma-separated tag ids: only devices with one of them")
    add.add_argument("--name-pattern", help="glob on device names, e.g. 'C25*'")
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    add.set_defaults(func=_guarded(_add))


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``golioth`` group to a top-level CLI's subparsers."""
    golioth = subparsers.add_parser("golioth", help="Golioth integrations, backfills and webhook receiver")
    groups = golioth.add_subparsers(dest="golioth_command", required=True)
    manage = groups.add_parser("integrations", help="add, list, set, enable, disable, remove integrations")
    commands = manage.add_subparsers(dest="integrations_command", required=True)
    _add_parser(commands)
    _set_parser(commands)
    listing = commands.add_parser("list", help="list integrations")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_guarded(_list))
    for name, handler in (("enable", _set_enabled(True)), ("disable", _set_enabled(False)), ("remove", _remove)):
        sub = commands.add_parser(name, help=f"{name} an integration")
        sub.add_argument("id")
        sub.set_defaults(func=_guarded(handler))
    _backfill_parser(groups)
    receiver = groups.add_parser("receiver", help="start the webhook receiver (needs GOLIOTH_WEBHOOK_TOKEN)")
    receiver.add_argument("--host", default="127.0.0.1")
    receiver.add_argument("--port", type=int, default=8787)
    receiver.add_argument("--embedded", action="store_true", help="write to the embedded SQLite default")
    receiver.add_argument("--with", dest="command_alongside", nargs=argparse.REMAINDER,
                          help="run this command with the receiver beside it (no token: the command alone)")
    receiver.set_defaults(func=_guarded(_receiver))
    return golioth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync_pipelines.golioth")
    sub = parser.add_subparsers(dest="command", required=True)
    golioth = register(sub)
    # `python -m sync_pipelines.golioth integrations ...`: the group without its name
    args = parser.parse_args(["golioth", *(sys.argv[1:] if argv is None else argv)])
    del golioth
    return args.func(args)
