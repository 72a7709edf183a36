"""Sandboxed Odoo: the external JSON-RPC API (``POST /odoo/jsonrpc``) over five seeded models.

Serves ``common.login`` / ``common.version`` and ``object.execute_kw`` with ``search_read``,
``search_count`` and ``read`` for ``account.move`` (every move type and state, drafts named
``/``), ``purchase.order``, ``purchase.order.line`` (``qty_received``), ``sale.order``,
``product.product`` (archived ones hidden unless ``context.active_test`` is false) and
``stock.quant``. Like Odoo: many2one values are ``[id, "name"]``, empty values ``false``,
datetimes ``"YYYY-MM-DD HH:MM:SS"`` UTC, every write bumps ``write_date`` from the sandbox
clock (several records can share a second), domains are Polish-notation lists evaluated
here, and faults are HTTP 200 with a JSON-RPC ``error`` member (debug traceback included,
as the real server does, so clients are tested on not showing it).

``write_date`` behaves as in Odoo's database: it is kept with microseconds (one value per
write, i.e. per transaction), domains compare against that value and ``order`` sorts by it,
but answers carry whole seconds. So ``('write_date', '=', S)`` matches only a write at S.000000,
``('write_date', '>', S)`` includes the rest of second S, and within one second records come
in the order they were written, not by id. ``vendor.records[model][id]["write_date"]`` is the
served (whole-second) value; the precise one is ``vendor.precise_write_date(model, id)``.

Controls (``POST /_sandbox/odoo/<action>`` or ``vendor.control(action, payload)``):
``write`` {model, id, values}, ``set_qty_received`` {line_id, qty}, ``cancel_invoice`` {id},
``delete`` {model, id} (hard delete), ``touch`` {model, ids, values, write_date?, microseconds?}
(one write: every record gets the same instant; with ``microseconds`` (one per id) separate
writes within one second, e.g. in an order unlike the ids'),
``bump_after_calls`` {model, id, after} (a write after N search_read calls on the model),
``duplicate_invoice_name`` {id} (a new invoice reusing that invoice's name),
``wrong_type`` {model, id, field, value}, ``fault`` {code, name, message, times} (the next
execute_kw calls answer that JSON-RPC fault), ``access_denied`` {on}, ``evolve`` {steps}, ``stats``.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

from sync_pipelines.sandbox.core import SandboxRequest, SandboxResponse, SandboxVendor, json_response, route

DB = "sandbox"
USERNAME = "sync@example.com"
API_KEY = "sandbox-odoo-api-key-0d00"
UID = 2
# Odoo 19: the first version with the JSON-2 API (served below) that still has JSON-RPC.
SERVER_VERSION = "19.0"
SERVER_VERSION_INFO = (19, 0, 0, "final", 0, "")

COMPANIES = [[1, "Sandbox Trading Inc."], [2, "Sandbox Trading GmbH"]]
CURRENCIES = {1: [1, "USD"], 2: [2, "EUR"]}
PARTNERS = [
    [10, "Azure Interior"], [11, "Deco Addict"], [12, "Gemini Furniture"], [13, "Lumber Inc"],
    [14, "Ready Mat"], [15, "Wood Corner"], [16, "Acme Supplies"], [17, "Northwind Traders"],
]
CATEGORIES = [[1, "All"], [2, "All / Saleable"], [3, "All / Office"]]
UOMS = [[1, "Units"], [12, "kg"]]
LOCATIONS = [[8, "WH/Stock"], [9, "WH/Stock/Shelf 1"], [18, "SHOP/Stock"]]

INVOICE_PREFIX = {
    "out_invoice": "INV", "out_refund": "RINV", "in_invoice": "BILL", "in_refund": "RBILL",
    "out_receipt": "RCPT", "in_receipt": "RRCPT", "entry": "MISC",
}
MODELS = ("account.move", "purchase.order", "purchase.order.line", "sale.order", "product.product", "stock.quant")


def fmt(ts: dt.datetime) -> str:
    """A datetime as Odoo serves it: UTC, whole seconds (microseconds cut off)."""
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def parse_datetime(value: str) -> dt.datetime:
    """A domain's datetime value (``YYYY-MM-DD[ HH:MM:SS[.ffffff]]``, UTC) as Odoo's ORM reads it."""
    text = value.strip()
    parsed = dt.datetime.fromisoformat(text) if len(text) > 10 else dt.datetime.fromisoformat(text + " 00:00:00")
    return parsed.replace(tzinfo=dt.timezone.utc) if parsed.tzinfo is None else parsed.astimezone(dt.timezone.utc)


class OdooFault(Exception):
    def __init__(self, code: int, message: str, name: str, data_message: str):
        super().__init__(data_message)
        self.code, self.message, self.name, self.data_message = code, message, name, data_message


def access_denied() -> OdooFault:
    return OdooFault(200, "Odoo Server Error", "odoo.exceptions.AccessDenied", "Access Denied")


class OdooVendor(SandboxVendor):
    name = "odoo"
    prefix = "/odoo"

    # -- data ----------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        rng = random.Random(seed)
        self.records: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in MODELS}
        # write_date as Odoo's database keeps it (microseconds); records hold the served value
        self.write_instants: dict[str, dict[int, dt.datetime]] = {m: {} for m in MODELS}
        self.next_id = {m: 1 for m in MODELS}
        self.search_read_calls = {m: 0 for m in MODELS}
        self.hooks: list[dict[str, Any]] = []
        self.access_denied_mode = False
        self.pending_faults: list[dict[str, Any]] = []
        self.sequence: dict[tuple, int] = {}
        now = self.clock.now().replace(microsecond=0)
        # Seeded history: records spread from about 60 to 25 days ago (so some cancelled
        # ones are past the archive's 30-day retention), in groups of three that share a
        # second (Odoo stamps a whole transaction with one write_date).
        base = now - dt.timedelta(days=60)
        # Each group is one write at some microsecond of its second.
        stamps = iter(
            base + dt.timedelta(minutes=16 * 60 + 7) * (i // 3) + dt.timedelta(microseconds=(i // 3) * 7919 % 1_000_000)
            for i in range(10_000)
        )

        for i in range(24):
            self._create("product.product", next(stamps), {
                "name": f"Product {i + 1:02d}",
                "default_code": f"P{i + 1:04d}",
                "barcode": f"400000{i + 1:06d}" if i % 3 else False,
                "active": i % 6 != 5,  # every sixth product is archived
                "list_price": round(rng.uniform(5, 500), 2),
                "standard_price": round(rng.uniform(2, 300), 2),
                "categ_id": list(rng.choice(CATEGORIES)),
                "uom_id": list(UOMS[0] if i % 5 else UOMS[1]),
                "company_id": False,
            })
        products = sorted(self.records["product.product"])
        for i in range(14):
            state = ["draft", "sent", "purchase", "purchase", "done", "cancel", "purchase"][i % 7]
            company = COMPANIES[i % 2]
            ts = next(stamps)
            order = self._create("purchase.order", ts, {
                "name": f"P{i + 1:05d}",
                "state": state,
                "partner_id": list(rng.choice(PARTNERS)),
                "date_order": fmt(ts - dt.timedelta(hours=2)),
                "date_approve": fmt(ts) if state in ("purchase", "done") else False,
                "currency_id": list(CURRENCIES[company[0]]),
                "company_id": list(company),
                "amount_untaxed": 0.0,
                "amount_total": 0.0,
            })
            total = 0.0
            for _ in range(rng.randint(1, 4)):
                pid = rng.choice(products)
                qty = float(rng.randint(1, 40))
                price = round(rng.uniform(3, 120), 2)
                received = qty if state == "done" else (float(rng.randint(0, int(qty))) if state == "purchase" else 0.0)
                self._create("purchase.order.line", ts, {
                    "order_id": [order["id"], order["name"]],
                    "product_id": [pid, self.records["product.product"][pid]["name"]],
                    "name": self.records["product.product"][pid]["name"],
                    "product_qty": qty,
                    "qty_received": received,
                    "qty_invoiced": received if state == "done" else 0.0,
                    "price_unit": price,
                    "price_subtotal": round(qty * price, 2),
                    "date_planned": fmt(ts + dt.timedelta(days=7)),
                    "state": state,
                    "company_id": list(company),
                })
                total += round(qty * price, 2)
            order["amount_untaxed"] = round(total, 2)
            order["amount_total"] = round(total * 1.15, 2)
        for i in range(18):
            state = ["draft", "sent", "sale", "sale", "cancel", "sale"][i % 6]
            company = COMPANIES[i % 2]
            ts = next(stamps)
            untaxed = round(rng.uniform(50, 5000), 2)
            self._create("sale.order", ts, {
                "name": f"S{i + 1:05d}",
                "state": state,
                "partner_id": list(rng.choice(PARTNERS)),
                "date_order": fmt(ts - dt.timedelta(hours=1)),
                "invoice_status": "invoiced" if state == "sale" and i % 2 else ("to invoice" if state == "sale" else "no"),
                "amount_untaxed": untaxed,
                "amount_total": round(untaxed * 1.15, 2),
                "currency_id": list(CURRENCIES[company[0]]),
                "company_id": list(company),
            })
        move_types = list(INVOICE_PREFIX)
        for i in range(48):
            move_type = move_types[i % len(move_types)]
            state = ["posted", "posted", "draft", "posted", "cancel", "posted"][i % 6]
            self._create_invoice(next(stamps), move_type, state, COMPANIES[i % 2], rng)
        for i in range(30):
            pid = products[i % len(products)]
            location = LOCATIONS[i % len(LOCATIONS)]
            self._create("stock.quant", next(stamps), {
                "product_id": [pid, self.records["product.product"][pid]["name"]],
                "location_id": list(location),
                "lot_id": [100 + i, f"LOT-{100 + i}"] if i % 4 == 0 else False,
                "quantity": float(rng.randint(0, 200)),
                "reserved_quantity": float(rng.randint(0, 5)),
                "company_id": list(COMPANIES[0]),
            })

    def _create(self, model: str, ts: dt.datetime, values: dict[str, Any]) -> dict[str, Any]:
        rid = self.next_id[model]
        self.next_id[model] += 1
        record = {"id": rid, **values, "create_date": fmt(ts), "write_date": fmt(ts)}
        self.records[model][rid] = record
        self.write_instants[model][rid] = ts
        return record

    def precise_write_date(self, model: str, rid: int) -> dt.datetime:
        """The record's write_date with microseconds (what Odoo's domains compare and order by)."""
        record = self.records[model][rid]
        instant = self.write_instants[model].get(rid)
        if instant is None or fmt(instant) != record.get("write_date"):
            # set from outside (a test restoring a record dict): whole seconds
            instant = parse_datetime(record["write_date"])
        return instant

    def _create_invoice(self, ts: dt.datetime, move_type: str, state: str, company: list, rng: random.Random,
                        name: str | None = None) -> dict[str, Any]:
        if name is None:
            if state == "draft":
                name = "/"  # drafts have no number yet in Odoo
            else:
                key = (company[0], move_type)
                self.sequence[key] = self.sequence.get(key, 0) + 1
                name = f"{INVOICE_PREFIX[move_type]}/{ts.year}/{self.sequence[key]:05d}"
        untaxed = round(rng.uniform(20, 9000), 2)
        tax = round(untaxed * 0.15, 2)
        posted = state == "posted"
        paid = posted and rng.random() < 0.5
        return self._create("account.move", ts, {
            "name": name,
            "move_type": move_type,
            "state": state,
            "payment_state": ("paid" if paid else "not_paid") if move_type != "entry" else False,
            "partner_id": list(rng.choice(PARTNERS)) if move_type != "entry" else False,
            "invoice_date": (ts.date().isoformat() if state != "draft" else False),
            "invoice_date_due": ((ts + dt.timedelta(days=30)).date().isoformat() if state != "draft" else False),
            "ref": f"REF-{rng.randint(1000, 9999)}" if rng.random() < 0.4 else False,
            "invoice_origin": False,
            "amount_untaxed": untaxed,
            "amount_tax": tax,
            "amount_total": round(untaxed + tax, 2),
            "amount_residual": 0.0 if paid else round(untaxed + tax, 2),
            "currency_id": list(CURRENCIES[company[0]]),
            "company_id": list(company),
        })

    def write(
        self, model: str, rid: int, values: dict[str, Any], *, stamp: str | dt.datetime | None = None
    ) -> dict[str, Any]:
        """One write: ``values`` and a new write_date (the sandbox clock's now, or ``stamp``)."""
        with self.lock:
            record = self._record(model, rid)
            record.update(values)
            instant = parse_datetime(stamp) if isinstance(stamp, str) else (stamp or self.clock.now())
            self.write_instants[model][record["id"]] = instant
            record["write_date"] = fmt(instant)  # Odoo serves whole seconds
            return copy.deepcopy(record)

    def _record(self, model: str, rid: int) -> dict[str, Any]:
        try:
            return self.records[model][int(rid)]
        except KeyError:
            raise KeyError(f"{model} record {rid} does not exist") from None

    def insert_records(self, count: int) -> list[int]:
        rng = random.Random(len(self.records["account.move"]))
        now = self.clock.now()
        return [self._create_invoice(now, "out_invoice", "posted", COMPANIES[0], rng)["id"] for _ in range(count)]

    def evolve(self, rng: random.Random) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        now = self.clock.now()
        inv = self._create_invoice(now, rng.choice(["out_invoice", "in_invoice"]), "posted", COMPANIES[0], rng)
        changes["invoice_created"] = inv["id"]
        drafts = [r for r in self.records["account.move"].values() if r["state"] == "draft"]
        if drafts:
            draft = rng.choice(drafts)
            key = (draft["company_id"][0], draft["move_type"])
            self.sequence[key] = self.sequence.get(key, 0) + 1
            name = f"{INVOICE_PREFIX[draft['move_type']]}/{now.year}/{self.sequence[key]:05d}"
            self.write("account.move", draft["id"], {"state": "posted", "name": name})
            changes["invoice_posted"] = draft["id"]
        lines = [r for r in self.records["purchase.order.line"].values() if r["qty_received"] < r["product_qty"]]
        if lines:
            line = rng.choice(lines)
            self.write("purchase.order.line", line["id"], {"qty_received": line["qty_received"] + 1})
            changes["line_received"] = line["id"]
        quant = rng.choice(list(self.records["stock.quant"].values()))
        self.write("stock.quant", quant["id"], {"quantity": quant["quantity"] + rng.randint(-3, 10)})
        changes["quant_changed"] = quant["id"]
        return changes

    # -- controls -------------------------------------------------------------------------

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        with self.lock:
            if action == "write":
                return self.write(payload["model"], payload["id"], payload.get("values", {}))
            if action == "set_qty_received":
                return self.write("purchase.order.line", payload["line_id"], {"qty_received": float(payload["qty"])})
            if action == "cancel_invoice":
                return self.write("account.move", payload["id"], {"state": "cancel"})
            if action == "delete":
                model = payload.get("model", "account.move")
                self.write_instants[model].pop(int(payload["id"]), None)
                return self.records[model].pop(int(payload["id"]), None) is not None
            if action == "touch":
                given = payload.get("write_date")
                instant = parse_datetime(given) if given else self.clock.now()
                spread = payload.get("microseconds")
                if spread is not None and len(spread) != len(payload["ids"]):
                    raise ValueError("touch: one microsecond value per id")
                for n, rid in enumerate(payload["ids"]):
                    at = instant.replace(microsecond=int(spread[n])) if spread is not None else instant
                    self.write(payload["model"], rid, payload.get("values", {}), stamp=at)
                return fmt(instant)
            if action == "bump_after_calls":
                self.hooks.append({**payload, "after": int(payload["after"]), "done": False})
                return len(self.hooks)
            if action == "duplicate_invoice_name":
                original = self._record("account.move", payload["id"])
                clone = {k: copy.deepcopy(v) for k, v in original.items() if k not in ("id", "create_date", "write_date")}
                return self._create("account.move", self.clock.now(), clone)["id"]
            if action == "wrong_type":
                return self.write(payload["model"], payload["id"], {payload["field"]: payload.get("value", "not-a-number")})
            if action == "fault":
                # the next `times` execute_kw calls answer this JSON-RPC fault, e.g.
                # {"code": 100, "name": "odoo.http.SessionExpiredException", "message": "Session expired"}
                self.pending_faults.append({"code": 200, "times": 1, **payload})
                return len(self.pending_faults)
            if action == "access_denied":
                self.access_denied_mode = bool(payload.get("on", True))
                return self.access_denied_mode
            if action == "evolve":
                rng = random.Random(payload.get("seed", 0))
                return [self.evolve(rng) for _ in range(int(payload.get("steps", 1)))]
            if action == "stats":
                return {"search_read_calls": dict(self.search_read_calls),
                        "counts": {m: len(r) for m, r in self.records.items()}}
        raise KeyError(action)

    def corrupt_record(self, body: Any, field_name: str | None) -> Any:
        """The ``wrong_type`` fault: a non-key numeric field of the first record becomes text."""
        records = body.get("result") if isinstance(body, dict) else None
        if isinstance(records, list) and records and isinstance(records[0], dict):
            record = records[0]
            name = field_name or next(
                (k for k, v in record.items()
                 if k != "id" and isinstance(v, (int, float)) and not isinstance(v, bool)),
                None,
            )
            if name:
                record[name] = "not-a-number"
        return body

    def env_vars(self, base_url: str) -> dict[str, str]:
        return {"ODOO_URL": base_url, "ODOO_DB": DB, "ODOO_USERNAME": USERNAME, "ODOO_API_KEY": API_KEY}

    # -- JSON-RPC -------------------------------------------------------------------------

    @route("GET", r"/web/version")
    def web_version(self, request: SandboxRequest) -> SandboxResponse:
        return json_response({"version_info": list(SERVER_VERSION_INFO), "version": SERVER_VERSION})

    @route("POST", r"/json/2/(?P<model>[\w.]+)/(?P<method>\w+)")
    def json2(self, request: SandboxRequest, model: str, method: str) -> SandboxResponse:
        """Odoo 19's JSON-2 API: named arguments, bearer API key, real HTTP error statuses."""
        auth = request.header("Authorization") or ""
        key = auth[7:] if auth.lower().startswith("bearer ") else None
        if self.access_denied_mode or key != API_KEY:
            return json_response({"name": "werkzeug.exceptions.Unauthorized", "message": "Invalid apikey",
                                  "arguments": [], "context": {}, "debug": ""}, 401)
        if model not in self.records:
            return json_response({"name": "werkzeug.exceptions.NotFound", "message": f"Model {model!r} not found",
                                  "arguments": [], "context": {}, "debug": ""}, 404)
        try:
            body = request.json() or {}
            return json_response(self._execute(model, method, [], body))
        except OdooFault as fault:
            return json_response({"name": fault.name, "message": fault.data_message, "arguments": [],
                                  "context": {}, "debug": "Traceback ..."}, 422)

    @route("POST", r"/jsonrpc")
    def jsonrpc(self, request: SandboxRequest) -> SandboxResponse:
        try:
            body = request.json()
        except ValueError:
            return self._fault(None, OdooFault(200, "Odoo Server Error", "werkzeug.exceptions.BadRequest",
                                               "Invalid JSON data"))
        call_id = body.get("id") if isinstance(body, dict) else None
        try:
            params = body["params"]
            result = self._call(params["service"], params["method"], list(params.get("args") or []))
        except OdooFault as fault:
            return self._fault(call_id, fault, body)
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            return self._fault(call_id, OdooFault(200, "Odoo Server Error", f"builtins.{type(exc).__name__}",
                                                  str(exc)), body)
        return json_response({"jsonrpc": "2.0", "id": call_id, "result": result})

    def _fault(self, call_id: Any, fault: OdooFault, body: Any = None) -> SandboxResponse:
        # Like Odoo, the debug member holds a server traceback; it can show call arguments,
        # which is why clients must never display it.
        debug = f"Traceback (most recent call last):\n  ...\n{fault.name}: {fault.data_message}\nrequest: {body!r}"
        return json_response({
            "jsonrpc": "2.0",
            "id": call_id,
            "error": {
                "code": fault.code,
                "message": fault.message,
                "data": {"name": fault.name, "debug": debug, "message": fault.data_message,
                         "arguments": [fault.data_message], "context": {}},
            },
        })

    def _call(self, service: str, method: str, args: list) -> Any:
        if service == "common" and method == "version":
            return {"server_version": SERVER_VERSION, "server_version_info": list(SERVER_VERSION_INFO),
                    "protocol_version": 1}
        if service == "common" and method in ("login", "authenticate"):
            db, login, key = args[:3]
            if self.access_denied_mode or db != DB or login != USERNAME or key != API_KEY:
                return False
            return UID
        if service == "object" and method == "execute_kw":
            db, uid, key, model, model_method = args[:5]
            call_args = args[5] if len(args) > 5 else []
            kwargs = args[6] if len(args) > 6 else {}
            if self.access_denied_mode or db != DB or uid != UID or key != API_KEY:
                raise access_denied()
            for fault in self.pending_faults:
                if fault["times"] > 0:
                    fault["times"] -= 1
                    message = "Odoo Session Expired" if fault["code"] == 100 else "Odoo Server Error"
                    raise OdooFault(fault["code"], message, fault.get("name", "odoo.exceptions.UserError"),
                                    fault.get("message", "sandbox fault"))
            if model not in self.records:
                # odoo/service/model.py execute_cr (Odoo 16 to 19), word for word
                raise OdooFault(200, "Odoo Server Error", "odoo.exceptions.UserError", f"Object {model} doesn't exist")
            return self._execute(model, model_method, call_args, kwargs or {})
        raise OdooFault(200, "Odoo Server Error", "builtins.NameError", f"service/method {service}.{method} unknown")

    def _execute(self, model: str, method: str, args: list, kwargs: dict) -> Any:
        context = kwargs.get("context") or {}
        if method == "search_count":
            domain = kwargs.get("domain", args[0] if args else [])
            return len(self._search(model, domain, context))
        if method == "search_read":
            domain = kwargs.get("domain", args[0] if args else [])
            fields = kwargs.get("fields", args[1] if len(args) > 1 else None)
            found = self._search(model, domain, context, kwargs.get("order"))
            offset = int(kwargs.get("offset") or 0)
            limit = kwargs.get("limit")
            found = found[offset: offset + int(limit)] if limit else found[offset:]
            result = [self._project(model, r, fields) for r in found]
            self.search_read_calls[model] += 1
            self._run_hooks(model)
            return result
        if method == "read":
            ids = args[0] if args else kwargs.get("ids", [])
            return [self._project(model, self.records[model][i], kwargs.get("fields")) for i in ids
                    if i in self.records[model]]
        raise OdooFault(200, "Odoo Server Error", "builtins.AttributeError",
                        f"The method '{method}' does not exist on the model '{model}'")

    def _run_hooks(self, model: str) -> None:
        for hook in self.hooks:
            if not hook["done"] and hook["model"] == model and self.search_read_calls[model] >= hook["after"]:
                hook["done"] = True
                self.write(model, hook["id"], hook.get("values", {}))

    def _project(self, model: str, record: dict, fields: list | None) -> dict:
        if not fields:
            return copy.deepcopy(record)
        out = {"id": record["id"]}
        for name in fields:
            if name not in record:
                raise OdooFault(200, "Odoo Server Error", "builtins.ValueError",
                                f"Invalid field '{name}' on model '{model}'")
            out[name] = copy.deepcopy(record[name])
        return out

    # -- domains and ordering --------------------------------------------------------------

    def _search(self, model: str, domain: list, context: dict, order: str | None = None) -> list[dict]:
        domain = list(domain or [])
        if (
            "active" in next(iter(self.records[model].values()), {})
            and context.get("active_test", True)
            and not any(isinstance(t, (list, tuple)) and t and t[0] == "active" for t in domain)
        ):
            domain = ["&", ("active", "=", True), *domain] if domain else [("active", "=", True)]
        # Domains and order see write_date as the database holds it (microseconds).
        views = {rid: {**r, "write_date": self.precise_write_date(model, rid)} for rid, r in self.records[model].items()}
        found = [views[r["id"]] for r in self.records[model].values() if self._matches(views[r["id"]], domain)]
        for name, descending in reversed(_parse_order(order or "id")):
            found.sort(key=lambda r, n=name: _sort_key(r.get(n)), reverse=descending)
        return [self.records[model][r["id"]] for r in found]

    def _matches(self, record: dict, domain: list) -> bool:
        if not domain:
            return True
        stack: list[bool] = []
        for item in reversed(domain):
            if item == "&":
                a, b = stack.pop(), stack.pop()
                stack.append(a and b)
            elif item == "|":
                a, b = stack.pop(), stack.pop()
                stack.append(a or b)
            elif item == "!":
                stack.append(not stack.pop())
            else:
                stack.append(_term(record, item))
        return all(stack)  # implicit AND between top-level terms


def _parse_order(order: str) -> list[tuple[str, bool]]:
    out = []
    for part in order.split(","):
        bits = part.strip().split()
        if bits:
            out.append((bits[0], len(bits) > 1 and bits[1].lower() == "desc"))
    return out


def _sort_key(value: Any) -> tuple:
    if value is False or value is None:
        return (0, "")
    if isinstance(value, list):
        value = value[0]
    return (1, value)


def _term(record: dict, term: Any) -> bool:
    if not isinstance(term, (list, tuple)) or len(term) != 3:
        raise OdooFault(200, "Odoo Server Error", "builtins.ValueError", f"Invalid leaf {term!r}")
    field, op, value = term
    if field not in record:
        raise OdooFault(200, "Odoo Server Error", "builtins.ValueError", f"Invalid field {field!r} in leaf {term!r}")
    actual = record[field]
    if isinstance(actual, list):  # many2one compares by id
        actual = actual[0]
    if isinstance(actual, dt.datetime) and isinstance(value, str):
        try:  # Odoo converts the domain's text to a timestamp, then compares in SQL
            value = parse_datetime(value)
        except ValueError:
            raise OdooFault(200, "Odoo Server Error", "builtins.ValueError",
                            f"Invalid datetime {value!r} in leaf {term!r}") from None
    if op == "=":
        return actual == value if value is not False else actual in (False, None)
    if op == "!=":
        return actual != value
    if op in ("in", "not in"):
        inside = actual in list(value)
        return inside if op == "in" else not inside
    if op in ("like", "ilike"):
        return isinstance(actual, str) and str(value).lower() in actual.lower()
    if actual is False or actual is None:
        return False
    try:
        if op == ">":
            return actual > value
        if op == ">=":
            return actual >= value
        if op == "<":
            return actual < value
        if op == "<=":
            return actual <= value
    except TypeError:
        return False
    raise OdooFault(200, "Odoo Server Error", "builtins.ValueError", f"Invalid operator {op!r}")


VENDOR = OdooVendor
