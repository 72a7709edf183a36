"""``python -m sync_pipelines.sandbox``: serve every sandboxed vendor on a loopback port.

Prints the environment variables that point the project at it. Control it over HTTP:
``POST /_sandbox/faults`` (``{"kind": "status", "vendor": "encar", "status": 429,
"retry_after": 2, "times": 3}``), ``DELETE /_sandbox/faults``, ``POST /_sandbox/evolve``,
``POST /_sandbox/clock`` (``{"advance_seconds": 691200}``), ``POST /_sandbox/reset``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import time

from sync_pipelines.sandbox.core import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync_pipelines.sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--evolve-every", type=float, default=0, help="seconds between data evolutions (0: never)")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the sandbox serves loopback only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sandbox = Sandbox(seed=args.seed)
    sandbox.start(args.host, args.port)
    print(f"sandbox serving {', '.join(sorted(sandbox.vendors))} at {sandbox.base_url}", flush=True)
    for key, value in sorted(sandbox.env().items()):
        print(f"export {key}={shlex.quote(value)}", flush=True)
    try:
        while True:
            time.sleep(args.evolve_every or 3600)
            if args.evolve_every:
                sandbox.evolve()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
