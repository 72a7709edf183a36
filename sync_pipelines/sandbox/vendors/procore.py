"""Sandboxed Procore: OAuth (``/procore/login``) and REST v1.0 (``/procore/api``), per user.

Login: ``GET /oauth/authorize`` (a code for the user named by the ``login`` query value, the
first sandbox user by default; redirects to ``redirect_uri`` or, for the out-of-band
``urn:ietf:wg:oauth:2.0:oob``, shows the code), ``POST /oauth/token`` (``authorization_code``
and ``refresh_token`` grants; codes and refresh tokens are single-use, a reused or unknown
one answers 400 ``invalid_grant``), ``POST /oauth/revoke``.

API: ``/rest/v1.0/me``, ``/rest/v1.0/companies``, ``/rest/v1.0/projects?company_id=`` and
``/rest/v1.0/projects/{id}/rfis``, bare JSON arrays paged by ``page``/``per_page`` with
``Total``, ``Per-Page`` and ``Link`` headers, ``filters[updated_at]=from...to``. Every call
but companies and me needs ``Procore-Company-Id`` (a company the user belongs to), as
Procore does. Access tokens expire (``expires_in``, 5400 s by default; 401 after), and each
user has an hourly and a 10-second spike window: every answer (4xx included) carries
``X-Rate-Limit-Limit/Remaining/Reset`` of whichever window is closer to running out, 429
when one is spent.

Controls (``POST /_sandbox/procore/<action>`` or ``vendor.control(action, payload)``):
``add_users`` {count}, ``rate_limits`` {hourly, spike}, ``reset_rate_windows``,
``expire_access`` {user_id} (its access token is expired now), ``expire_after_calls``
{user_id, calls} (expires after that many more API calls), ``spend_refresh`` {user_id} (its
refresh token is used up: the next refresh is ``invalid_grant``), ``token_delay`` {seconds},
``lose_token_answers`` {times} (the token endpoint applies a refresh, then drops the
connection), ``overload`` {times, retry_after} (503 with Retry-After), ``touch_rfi`` {id},
``touch_project`` {id}, ``add_rfi`` {project_id}, ``delete_rfi`` {id}, ``delete_project``
{id}, ``project_access`` {user_id, projects} (the user sees only these projects of its
companies; ``null``: all of them, the default), ``client_secret`` {value}, ``stats``,
``seed_connections`` {count, projects, rfis} (``count`` more users, each in a company of its
own with ``projects`` projects and ``rfis`` RFIs over them: the benchmarks' sizing).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from sync_pipelines.sandbox.core import (
    SandboxRequest,
    SandboxResponse,
    SandboxVendor,
    html_response,
    json_response,
    route,
)

CLIENT_ID = "sandbox-procore-client-id"
CLIENT_SECRET = "sandbox-procore-client-secret-7f1c"
OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
HOURLY_WINDOW = 3600
SPIKE_WINDOW = 10
DEFAULT_HOURLY_LIMIT = 3600
DEFAULT_SPIKE_LIMIT = 200
COMPANIES = [(8001, "Sandbox Builders Inc."), (8002, "Sandbox Civil Ltd."), (8003, "Sandbox Interiors LLC")]
RFI_STATUSES = ("draft", "open", "closed")


def fmt(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    text = text.strip()
    if len(text) == 10:
        text += "T00:00:00"
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


class ProcoreVendor(SandboxVendor):
    name = "procore"
    prefix = "/procore"

    # -- data ----------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        rng = random.Random(seed)
        now = self.clock.now().replace(microsecond=0)
        self.client_secret = CLIENT_SECRET
        self.users: dict[str, dict[str, Any]] = {}
        self.companies = {cid: {"id": cid, "name": name, "is_active": True} for cid, name in COMPANIES}
        self.projects: dict[int, dict[str, Any]] = {}
        self.rfis: dict[int, dict[str, Any]] = {}
        self.next_project_id, self.next_rfi_id = 50001, 900001
        for company_id in self.companies:
            for n in range(4):
                self._add_project(company_id, now - dt.timedelta(days=30 - n), rng)
        for project_id in list(self.projects):
            for _ in range(rng.randint(2, 5)):
                self._add_rfi(project_id, now - dt.timedelta(days=rng.randint(1, 25)), rng)
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}  # every refresh token ever issued
        self.issued_tokens: list[str] = []  # every token value, for tests that look for leaks
        self.expires_in = 5400
        self.hourly_limit, self.spike_limit = DEFAULT_HOURLY_LIMIT, DEFAULT_SPIKE_LIMIT
        self.windows: dict[tuple[str, str], list[float]] = {}  # (user, window) -> [start, used]
        self.token_delay = 0.0
        self.lose_token_answers = 0
        self.overload: dict[str, Any] = {"times": 0, "retry_after": 1}
        self.expire_after: dict[str, int] = {}
        self.stats = {"token_calls": 0, "refresh_calls": 0, "code_calls": 0, "revoke_calls": 0, "unauthorized": 0, "rate_limited": 0,
                      "api_calls": {}}
        self._add_users(3)

    def _add_users(self, count: int) -> list[str]:
        added = []
        for _ in range(count):
            n = len(self.users) + 1
            user_id = str(7000 + n)
            companies = [COMPANIES[(n - 1) % len(COMPANIES)][0]]
            if n % 4 == 0:  # some users belong to two companies
                companies.append(COMPANIES[n % len(COMPANIES)][0])
            self.users[user_id] = {"id": int(user_id), "login": f"user{n}@sandbox.example", "name": f"User {n}",
                                   "companies": companies, "projects": None}
            added.append(user_id)
        return added

    def _seed_connections(self, count: int, projects: int, rfis: int) -> list[str]:
        """Users in companies of their own (ids from 20001), each company with ``projects``
        projects and ``rfis`` RFIs dealt over them, stamped over the 30 days before now."""
        rng = random.Random(len(self.users))
        now = self.clock.now().replace(microsecond=0)
        added = self._add_users(count)
        for user_id in added:
            company_id = 20000 + len(self.companies) + 1
            self.companies[company_id] = {"id": company_id, "name": f"Company {company_id}", "is_active": True}
            self.users[user_id]["companies"] = [company_id]
            own = [self._add_project(company_id, now - dt.timedelta(days=30), rng)["id"] for _ in range(max(1, projects))]
            for n in range(rfis):
                self._add_rfi(own[n % len(own)], now - dt.timedelta(seconds=rng.randint(60, 30 * 86400)), rng)
        return added

    def _add_project(self, company_id: int, ts: dt.datetime, rng: random.Random) -> dict[str, Any]:
        pid = self.next_project_id
        self.next_project_id += 1
        project = {
            "id": pid, "company": {"id": company_id}, "name": f"Project {pid}", "display_name": f"{pid} Project {pid}",
            "project_number": f"P-{pid}", "active": True, "created_at": fmt(ts), "updated_at": fmt(ts),
        }
        self.projects[pid] = project
        return project

    def _add_rfi(self, project_id: int, ts: dt.datetime, rng: random.Random) -> dict[str, Any]:
        rid = self.next_rfi_id
        self.next_rfi_id += 1
        rfi = {
            "id": rid, "project_id": project_id, "number": str(rid - 900000), "subject": f"RFI {rid}: clarify detail",
            "status": rng.choice(RFI_STATUSES), "due_date": (ts + dt.timedelta(days=14)).date().isoformat(),
            "created_at": fmt(ts), "updated_at": fmt(ts),
        }
        self.rfis[rid] = rfi
        return rfi

    def _touch(self, record: dict[str, Any], **values: Any) -> dict[str, Any]:
        record.update(values)
        # a change always moves updated_at forward, even within one sandbox second
        stamp = max(self.clock.now().replace(microsecond=0), parse_time(record["updated_at"]) + dt.timedelta(seconds=1))
        record["updated_at"] = fmt(stamp)
        return record

    def insert_records(self, count: int) -> list[int]:
        rng = random.Random(len(self.rfis))
        now = self.clock.now().replace(microsecond=0)
        projects = sorted(self.projects)
        return [self._add_rfi(projects[i % len(projects)], now, rng)["id"] for i in range(count)]

    def evolve(self, rng: random.Random) -> dict[str, Any]:
        changed: dict[str, Any] = {"rfis_updated": [], "rfis_added": [], "projects_updated": []}
        for rid in rng.sample(sorted(self.rfis), k=min(3, len(self.rfis))):
            self._touch(self.rfis[rid], status=rng.choice(RFI_STATUSES))
            changed["rfis_updated"].append(rid)
        project_id = rng.choice(sorted(self.projects))
        changed["rfis_added"].append(self._add_rfi(project_id, self.clock.now().replace(microsecond=0), rng)["id"])
        pid = rng.choice(sorted(self.projects))
        self._touch(self.projects[pid], name=f"Project {pid} (rev {rng.randint(2, 99)})")
        changed["projects_updated"].append(pid)
        return changed

    def env_vars(self, base_url: str) -> dict[str, str]:
        return {
            "PROCORE_API_URL": base_url + "/api",
            "PROCORE_LOGIN_URL": base_url + "/login",
            "PROCORE_CLIENT_ID": CLIENT_ID,
            "PROCORE_CLIENT_SECRET": self.client_secret,
        }

    # -- controls -------------------------------------------------------------------------

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        user = payload.get("user_id")
        if action == "add_users":
            return self._add_users(int(payload.get("count", 1)))
        if action == "seed_connections":
            return self._seed_connections(int(payload["count"]), int(payload.get("projects", 1)),
                                          int(payload.get("rfis", 0)))
        if action == "rate_limits":
            self.hourly_limit = int(payload.get("hourly", self.hourly_limit))
            self.spike_limit = int(payload.get("spike", self.spike_limit))
            return {"hourly": self.hourly_limit, "spike": self.spike_limit}
        if action == "reset_rate_windows":
            self.windows.clear()
            return True
        if action == "expire_access":
            for token in self.access_tokens.values():
                if token["user_id"] == str(user):
                    token["expires_at"] = self.clock.now() - dt.timedelta(seconds=1)
            return True
        if action == "expire_after_calls":
            self.expire_after[str(user)] = int(payload["calls"])
            return True
        if action == "spend_refresh":
            for token in self.refresh_tokens.values():
                if token["user_id"] == str(user):
                    token["used"] = True
            return True
        if action == "token_delay":
            self.token_delay = float(payload.get("seconds", 0))
            return True
        if action == "lose_token_answers":
            self.lose_token_answers = int(payload.get("times", 1))
            return True
        if action == "overload":
            self.overload = {"times": int(payload.get("times", 1)), "retry_after": payload.get("retry_after", 1)}
            return True
        if action == "client_secret":
            self.client_secret = str(payload["value"])
            return True
        if action == "stats":
            return self.stats
        if action == "project_access":
            visible = payload.get("projects")
            self.users[str(payload["user_id"])]["projects"] = None if visible is None else {int(p) for p in visible}
            return True
        return self._data_control(action, payload)

    def _data_control(self, action: str, payload: dict[str, Any]) -> Any:
        rng = random.Random(len(self.rfis))
        if action == "touch_rfi":
            return self._touch(self.rfis[int(payload["id"])], subject=payload.get("subject", "changed"))
        if action == "touch_project":
            return self._touch(self.projects[int(payload["id"])], name=payload.get("name", "changed"))
        if action == "add_rfi":
            return self._add_rfi(int(payload["project_id"]), self.clock.now().replace(microsecond=0), rng)
        if action == "delete_rfi":
            return self.rfis.pop(int(payload["id"]), None) is not None
        if action == "delete_project":
            pid = int(payload["id"])
            for rid in [r for r, rfi in self.rfis.items() if rfi["project_id"] == pid]:
                del self.rfis[rid]
            return self.projects.pop(pid, None) is not None
        raise KeyError(action)

    # -- OAuth ------------------------------------------------------------------------------

    @route("GET", r"/login/oauth/authorize")
    def authorize(self, request: SandboxRequest) -> SandboxResponse:
        query = request.query
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            return json_response({"error": "invalid_request", "error_description": "unknown client or response_type"}, 400)
        login = query.get("login")
        user = next((u for u in self.users.values() if login in (None, u["login"], str(u["id"]))), None)
        if user is None:
            return json_response({"error": "access_denied", "error_description": "no such sandbox user"}, 400)
        code = "sbx-code-" + secrets.token_hex(12)
        redirect_uri = query.get("redirect_uri", OOB_REDIRECT)
        self.codes[code] = {"user_id": str(user["id"]), "redirect_uri": redirect_uri,
                            "expires_at": self.clock.now() + dt.timedelta(minutes=10)}
        if redirect_uri == OOB_REDIRECT:
            return html_response(f"<html><body><p>Authorization code:</p><code id='code'>{code}</code></body></html>")
        params = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        return SandboxResponse(302, b"", {"Location": f"{redirect_uri}?{urlencode(params)}"}, "text/plain")

    @route("POST", r"/login/oauth/token")
    def token(self, request: SandboxRequest) -> SandboxResponse | None:
        self.stats["token_calls"] += 1
        form = request.form
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != self.client_secret:
            return json_response({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            self.stats["code_calls"] += 1
            code = self.codes.pop(form.get("code", ""), None)
            if code is None or code["expires_at"] < self.clock.now() or code["redirect_uri"] != form.get("redirect_uri"):
                return _invalid_grant("The authorization code is invalid, expired, or was issued to another redirect URI")
            return json_response(self._issue(code["user_id"]))
        if grant == "refresh_token":
            self.stats["refresh_calls"] += 1
            return self._refresh(form.get("refresh_token", ""))
        return json_response({"error": "unsupported_grant_type", "error_description": f"grant_type {grant}"}, 400)

    def _refresh(self, refresh_token: str) -> SandboxResponse | None:
        record = self.refresh_tokens.get(refresh_token)
        if record is None or record["used"]:
            return _invalid_grant("The refresh token is invalid")
        record["used"] = True
        if self.token_delay:
            # Let a second refresher arrive while this one is in flight (the lock test).
            self.lock.release()
            try:
                time.sleep(self.token_delay)
            finally:
                self.lock.acquire()
        answer = self._issue(record["user_id"])
        if self.lose_token_answers > 0:
            self.lose_token_answers -= 1
            return None  # applied at Procore, but the answer never arrives
        return json_response(answer)

    def _issue(self, user_id: str) -> dict[str, Any]:
        access, refresh = "sbx-at-" + secrets.token_hex(16), "sbx-rt-" + secrets.token_hex(16)
        now = self.clock.now()
        for old in self.access_tokens.values():  # Procore keeps one live access token per grant
            if old["user_id"] == user_id:
                old["revoked"] = True
        self.access_tokens[access] = {"user_id": user_id, "expires_at": now + dt.timedelta(seconds=self.expires_in),
                                      "revoked": False}
        self.refresh_tokens[refresh] = {"user_id": user_id, "used": False}
        self.issued_tokens += [access, refresh]
        return {"access_token": access, "token_type": "bearer", "expires_in": self.expires_in,
                "refresh_token": refresh, "created_at": int(now.timestamp())}

    @route("POST", r"/login/oauth/revoke")
    def revoke(self, request: SandboxRequest) -> SandboxResponse:
        self.stats["revoke_calls"] += 1
        form = request.form
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != self.client_secret:
            return json_response({"error": "invalid_client"}, 401)
        token = form.get("token", "")
        user_id = (self.access_tokens.get(token) or self.refresh_tokens.get(token) or {}).get("user_id")
        for record in [*self.access_tokens.values(), *self.refresh_tokens.values()]:
            if user_id is not None and record["user_id"] == user_id:
                record["revoked"] = record["used"] = True
        return json_response({})

    # -- REST API ---------------------------------------------------------------------------

    def _authenticate(self, request: SandboxRequest) -> tuple[str | None, SandboxResponse | None]:
        header = request.header("Authorization") or ""
        token = self.access_tokens.get(header[7:] if header.lower().startswith("bearer ") else "")
        if token is None or token["revoked"] or token["expires_at"] <= self.clock.now():
            return None, json_response({"message": "401 Unauthorized: the access token is invalid or expired"}, 401)
        user_id = token["user_id"]
        left = self.expire_after.get(user_id)
        if left is not None:
            if left <= 0:
                del self.expire_after[user_id]
                token["expires_at"] = self.clock.now()
                return None, json_response({"message": "401 Unauthorized: the access token expired"}, 401)
            self.expire_after[user_id] = left - 1
        return user_id, None

    def _rate(self, user_id: str) -> tuple[dict[str, str], bool]:
        """Count one call in both windows; the headers of the tighter one, and whether it is over."""
        now = self.clock.now().timestamp()
        report = None
        over = False
        for window, length, limit in (("hourly", HOURLY_WINDOW, self.hourly_limit),
                                      ("spike", SPIKE_WINDOW, self.spike_limit)):
            state = self.windows.get((user_id, window))
            if state is None or now >= state[0] + length:
                state = self.windows[(user_id, window)] = [now, 0]
            state[1] += 1
            remaining = limit - state[1]
            over = over or remaining < 0
            candidate = (max(0, remaining) / limit, max(0, remaining), limit, math.ceil(state[0] + length))
            if report is None or candidate[0] < report[0]:
                report = candidate
        _, remaining, limit, reset = report
        headers = {"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining),
                   "X-Rate-Limit-Reset": str(reset)}
        return headers, over

    def _gate(self, request: SandboxRequest, name: str, company_required: bool):
        """(user, company id, rate headers, refusal): what every API call goes through first."""
        user_id, refused = self._authenticate(request)
        if refused is not None:
            self.stats["unauthorized"] += 1
            return None, None, {}, refused
        calls = self.stats["api_calls"]
        calls[name] = calls.get(name, 0) + 1
        headers, over = self._rate(user_id)
        if over:
            self.stats["rate_limited"] += 1
            return None, None, headers, json_response({"message": "Rate limit exceeded"}, 429, **headers)
        if self.overload["times"] > 0:
            self.overload["times"] -= 1
            retry_after = {"Retry-After": str(self.overload["retry_after"])}
            return None, None, headers, json_response({"message": "Service Unavailable"}, 503, **headers, **retry_after)
        user = self.users[user_id]
        company = request.header("Procore-Company-Id")
        if company_required and not company:
            return None, None, headers, json_response({"message": "Missing Procore-Company-Id header!"}, 400, **headers)
        if company_required and (not company.isdigit() or int(company) not in user["companies"]):
            refusal = json_response({"message": "App is not connected to this company"}, 403, **headers)
            return None, None, headers, refusal
        return user, int(company) if company else None, headers, None

    def _page(self, request: SandboxRequest, records: list[dict[str, Any]], headers: dict[str, str]) -> SandboxResponse:
        window = request.query.get("filters[updated_at]")
        if window:
            start, _, end = window.partition("...")
            low, high = parse_time(start), parse_time(end) if end else None
            records = [r for r in records if parse_time(r["updated_at"]) >= low
                       and (high is None or parse_time(r["updated_at"]) <= high)]
        records = sorted(records, key=lambda r: r["id"])
        page = max(1, int(request.query.get("page", 1)))
        per_page = min(10_000, max(1, int(request.query.get("per_page", 100))))
        total = len(records)
        last = max(1, math.ceil(total / per_page))
        links = []
        base = {k: v for k, v in request.query.items() if k != "page"}
        for rel, number in (("first", 1), ("prev", page - 1), ("next", page + 1), ("last", last)):
            if (rel in ("first", "prev") and page > 1) or (rel == "next" and page < last) or rel == "last":
                links.append(f'<{request.path}?{urlencode({**base, "page": number})}>; rel="{rel}"')
        headers = {**headers, "Total": str(total), "Per-Page": str(per_page), "Link": ", ".join(links)}
        body = [dict(r) for r in records[(page - 1) * per_page : page * per_page]]
        return json_response(body, 200, **headers)

    @route("GET", r"/api/rest/v1\.0/me")
    def me(self, request: SandboxRequest) -> SandboxResponse:
        user, _, headers, refused = self._gate(request, "me", False)
        return refused or json_response({k: user[k] for k in ("id", "login", "name")}, 200, **headers)

    @route("GET", r"/api/rest/v1\.0/companies")
    def list_companies(self, request: SandboxRequest) -> SandboxResponse:
        user, _, headers, refused = self._gate(request, "companies", False)
        return refused or self._page(request, [self.companies[c] for c in user["companies"]], headers)

    @route("GET", r"/api/rest/v1\.0/projects")
    def list_projects(self, request: SandboxRequest) -> SandboxResponse:
        user, company, headers, refused = self._gate(request, "projects", True)
        if refused:
            return refused
        if request.query.get("company_id") != str(company):
            return json_response({"message": "company_id must match Procore-Company-Id"}, 400, **headers)
        return self._page(request, [p for p in self.projects.values()
                                    if p["company"]["id"] == company and _may_see(user, p["id"])], headers)

    @route("GET", r"/api/rest/v1\.0/projects/(?P<project_id>\d+)/rfis")
    def list_rfis(self, request: SandboxRequest, project_id: str) -> SandboxResponse:
        user, company, headers, refused = self._gate(request, "rfis", True)
        if refused:
            return refused
        project = self.projects.get(int(project_id))
        if project is None or project["company"]["id"] != company or not _may_see(user, project["id"]):
            return json_response({"message": "404 Not Found"}, 404, **headers)
        return self._page(request, [r for r in self.rfis.values() if r["project_id"] == int(project_id)], headers)


def _may_see(user: dict[str, Any], project_id: int) -> bool:
    """Procore lists only the projects a user has permission on."""
    return user["projects"] is None or project_id in user["projects"]


def _invalid_grant(description: str) -> SandboxResponse:
    return json_response({"error": "invalid_grant", "error_description": description}, 400)


VENDOR = ProcoreVendor
