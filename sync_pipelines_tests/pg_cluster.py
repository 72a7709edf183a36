"""A throwaway PostgreSQL cluster of a test's own (initdb, own port, password auth), for tests
that need what the shared trust-auth server cannot give: refused passwords, a stopped server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

PG_BIN = next(
    (Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True) if (Path(p) / "initdb").exists()),
    Path(shutil.which("initdb") or "/usr/local/bin/initdb").parent,
)


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, root: Path, port: int, password: str):
        self.root, self.port, self.password = root, port, password

    def url(self, password: str | None = None, database: str = "postgres", user: str = "postgres") -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server (again, after ``stop``) and wait until it accepts connections."""
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w",
                          "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
            check=True, capture_output=True, timeout=120,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)


@contextmanager
def throwaway_cluster(password: str = "Right-Pass-4417") -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="sync_pg_cluster_"))
    os.chmod(root, 0o777)
    (root / "pw").write_text(password)
    os.chmod(root / "pw", 0o644)
    port = _free_port()
    cluster = Cluster(root, port, password)
    try:
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=scram-sha-256",
                          f"--pwfile={root / 'pw'}", "--no-sync"]),
            check=True, capture_output=True, timeout=120,
        )
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
