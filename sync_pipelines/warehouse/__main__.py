"""``python -m sync_pipelines.warehouse upgrade|current|head``: manage the destination schema."""

from __future__ import annotations

import argparse
import sys

from sync_pipelines import settings
from sync_pipelines.settings import ConfigurationError
from sync_pipelines.warehouse import migrate
from sync_pipelines.warehouse.store import Warehouse, WarehouseUnavailableError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync_pipelines.warehouse")
    parser.add_argument("command", choices=["upgrade", "current", "head"])
    parser.add_argument("--revision", default="heads")
    args = parser.parse_args(argv)
    if args.command == "head":
        print(" ".join(migrate.head_revisions()))
        return 0
    try:
        warehouse = Warehouse(settings.database_url())
        with warehouse._wrap_errors(f"running {args.command}"):
            if args.command == "upgrade":
                print(f"{warehouse.location}: {' '.join(migrate.upgrade(warehouse.engine, args.revision))}")
            else:
                print(f"{warehouse.location}: {' '.join(migrate.current_revisions(warehouse.engine))}")
    except (ConfigurationError, WarehouseUnavailableError) as exc:  # the message says it all
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
