"""The sandbox, sized for the benchmarks, in a process of its own (so it never shares a core's
GIL with the code being timed), with a request log and an answer cache.

    python bench/sandbox_server.py --encar 25000 --odoo-invoices 100000 --golioth-points 1000000
    python bench/sandbox_server.py --procore-connections 100 --procore-rfis 50 --procore-projects 5

Prints one JSON line (``base_url``, ``env``) once it serves. Every vendor request is logged
(``GET /_bench/log?since=N``). Answers are cached by (method, path and query, body) once
encoded: the first sync of a run pays for the sandbox's Python (Odoo's domain evaluation
over every record, per call), the timed runs after it and their baselines are served the
same bytes at the speed of a static server, so the ratios measure the client side.
Any control call (``/_sandbox/...``, ``/_bench/odoo-change``) empties the cache.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

from sync_pipelines.sandbox import Sandbox, SandboxResponse, json_response
from sync_pipelines.sandbox.vendors.golioth import PERIOD

GOLIOTH_PROJECT = "sandbox-project"
# Points per device and day of the sandboxed devices (an env point every 20 minutes, a battery
# one every third report, some devices post both at once): measured, about 96.
GOLIOTH_POINTS_PER_DEVICE_DAY = 96
GOLIOTH_DEVICES = 20


class BenchSandbox(Sandbox):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log: list[dict] = []
        self.cache: dict[tuple, SandboxResponse] = {}
        self.lock = threading.Lock()
        self.procore_users: list[str] = []  # seeded by --procore-connections

    def handle(self, method, raw_path, headers, body):
        if raw_path.startswith("/_bench/"):
            return self._bench(method, raw_path, body)
        if raw_path.startswith("/_sandbox/"):
            self.cache.clear()
            return super().handle(method, raw_path, headers, body)
        key = (method, raw_path, body, headers.get("x-api-key"), headers.get("Authorization"))
        with self.lock:
            self.log.append({"method": method, "path": raw_path, "body": body.decode("utf-8", "replace"),
                             "headers": _replayed_headers(headers)})
            hit = self.cache.get(key)
        if hit is not None:
            return hit
        answer = super().handle(method, raw_path, headers, body)
        if answer is not None and answer.status == 200:
            answer = SandboxResponse(answer.status, answer.encoded(), answer.headers, answer.content_type)
            with self.lock:
                self.cache[key] = answer
        return answer

    def _bench(self, method: str, raw_path: str, body: bytes) -> SandboxResponse:
        parts = urlsplit(raw_path)
        action = parts.path[len("/_bench/"):]
        if action == "log":
            since = int(parse_qs(parts.query).get("since", ["0"])[0])
            with self.lock:
                return json_response({"count": len(self.log), "requests": self.log[since:]})
        if action == "truth":
            return json_response(truth(self))
        if action == "odoo-change":
            self.cache.clear()
            return json_response(change_invoices(self, json.loads(body or b"{}").get("every", 100)))
        return json_response({"error": f"unknown bench action {action}"}, 404)


def _replayed_headers(headers) -> dict[str, str]:
    keep = ("x-api-key", "authorization", "content-type", "x-requested-with", "procore-company-id", "cookie")
    return {k: v for k, v in headers.items() if k.lower() in keep}


def seed_invoices(sandbox: Sandbox, count: int) -> None:
    """``count`` more customer invoices and vendor bills, spread over the 20 days before now."""
    vendor = sandbox.vendors["odoo"]
    rng = random.Random(14)
    now = vendor.clock.now().replace(microsecond=0)
    start = now - dt.timedelta(days=20)
    step = dt.timedelta(days=20) / max(count, 1)
    companies = vendor_companies()
    for i in range(count):
        ts = start + step * i
        move_type = ("out_invoice", "in_invoice", "out_refund")[i % 3]
        vendor._create_invoice(ts, move_type, "posted" if i % 7 else "draft", companies[i % 2], rng)


def vendor_companies():
    from sync_pipelines.sandbox.vendors.odoo import COMPANIES

    return COMPANIES


def change_invoices(sandbox: Sandbox, every: int) -> dict:
    """Change every ``every``-th invoice (its ref): one write each, as a user's edit would be."""
    vendor = sandbox.vendors["odoo"]
    ids = sorted(vendor.records["account.move"])[::every]
    for rid in ids:
        vendor.write("account.move", rid, {"ref": f"CHANGED-{rid}"})
    return {"changed": len(ids)}


def truth(sandbox: Sandbox) -> dict:
    """What a complete sync must hold: keys per source (and the Odoo invoices' refs)."""
    from sync_pipelines.odoo.settings import INVOICES

    odoo = sandbox.vendors["odoo"]
    invoices = odoo._search(INVOICES.model, list(INVOICES.domain), dict(INVOICES.context or {}))
    golioth = sandbox.vendors["golioth"]
    points = golioth.control("points", {"project": GOLIOTH_PROJECT})
    encar = sandbox.vendors["encar"]
    return {
        "encar": sorted(encar.cars),
        "odoo_invoices": {str(r["id"]): (r["ref"] or None) for r in invoices},
        "golioth_points": len(points),
        "golioth_devices": len(golioth.devices[GOLIOTH_PROJECT]),
        **procore_truth(sandbox),
    }


def procore_truth(sandbox: Sandbox) -> dict:
    """The seeded Procore users (``--procore-connections``) and what they see."""
    procore = sandbox.vendors["procore"]
    users = sandbox.procore_users
    companies = {c for u in users for c in procore.users[u]["companies"]}
    projects = {p for p, rec in procore.projects.items() if rec["company"]["id"] in companies}
    rfis = {r for r, rec in procore.rfis.items() if rec["project_id"] in projects}
    return {"procore_users": users, "procore_companies": sorted(companies), "procore_projects": sorted(projects),
            "procore_rfis": sorted(rfis)}


def build(args: argparse.Namespace) -> BenchSandbox:
    sandbox = BenchSandbox(seed=42, vendors=["encar", "odoo", "golioth", "procore"])
    sandbox.clock.freeze()  # the data must not move between a sync and its baseline
    if args.encar:
        sandbox.vendors["encar"].control("set_size", {"count": args.encar})
    if args.odoo_invoices:
        seed_invoices(sandbox, args.odoo_invoices)
    if args.golioth_points:
        days = args.golioth_points / (GOLIOTH_DEVICES * GOLIOTH_POINTS_PER_DEVICE_DAY)
        sandbox.vendors["golioth"].control(
            "configure", {"project": GOLIOTH_PROJECT, "devices": GOLIOTH_DEVICES, "history_days": days}
        )
    if args.procore_connections:
        procore = sandbox.vendors["procore"]
        sandbox.procore_users = procore.control("seed_connections", {
            "count": args.procore_connections, "projects": args.procore_projects,
            "rfis": args.procore_rfis})
        procore.control("rate_limits", {"hourly": 10**9, "spike": 10**9})  # politeness off, like the others
    return sandbox


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encar", type=int, default=0)
    parser.add_argument("--odoo-invoices", type=int, default=0)
    parser.add_argument("--golioth-points", type=int, default=0)
    parser.add_argument("--procore-connections", type=int, default=0, help="Procore users, a company each")
    parser.add_argument("--procore-rfis", type=int, default=50, help="RFIs per Procore user")
    parser.add_argument("--procore-projects", type=int, default=5, help="projects per Procore user")
    args = parser.parse_args()
    started = time.monotonic()
    sandbox = build(args)
    sandbox.start("127.0.0.1", 0)
    env = sandbox.env()
    env.update({"ENCAR_REQUESTS_PER_SECOND": "0", "KBCHACHACHA_REQUESTS_PER_SECOND": "0"})
    print(json.dumps({"base_url": sandbox.base_url, "env": env, "seeded_s": time.monotonic() - started,
                      "period_s": PERIOD.total_seconds()}), flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin (or exits)
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
