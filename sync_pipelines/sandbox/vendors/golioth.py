"""Sandboxed Golioth (CONTRACT.md section 2): REST v1 devices and LightDB Stream, plus a Pipelines webhook sender.

Two seeded projects (``sandbox-project``: 20 devices, ``sandbox-project-2``: 3), each with
its own API key in ``x-api-key`` (a wrong key answers 403 ``{"code", "message"}``). Devices
report on their own clock (a skew of up to a minute, a period near 20 minutes): an ``env``
message every report, a ``battery`` one every third, and every fifth device posts both as
one message to the stream root. ``evolve`` moves the world to the sandbox clock's now:
devices report, go offline (no reports, ``lastReport`` ages), update firmware, get disabled
(no reports, ``enabled: false``) or deleted (gone from the list, stream 404); now and then a
device is added. ``status`` is ``"-"`` as Golioth often says.

Routes: ``GET /projects/{p}/devices?page&perPage`` (perPage 1..100, ``{"list", "page",
"perPage", "total"}``) and ``GET /projects/{p}/devices/{d}/stream?start&end&page&perPage``
(records with start <= time < end, oldest first, ``{"time", "deviceId", <path>: value}``).

Webhook sender (like a Pipelines webhook destination): every message created after
``webhook`` is configured is queued and POSTed on ``deliver`` to the receiver URL, raw JSON
body, headers ``Ce-Id``, ``Ce-Source`` (device), ``Ce-Subject`` (project), ``Ce-Time``
(nanoseconds, ``Z``), ``Ce-Type: io.golioth.data.v1/.s/{path}``, ``Ce-Specversion`` and the
configured ``Authorization: Bearer <token>``. ``drop_rate`` loses a share of deliveries
(listed in ``dropped``), ``redeliver_rate`` sends a share twice (same ``Ce-Id``),
``reorder`` shuffles a delivery batch, ``workers`` sends concurrently. A delivery answered
non-2xx stays queued and is sent again by the next ``deliver``.

Controls (``POST /_sandbox/golioth/<action>`` or ``vendor.control(action, payload)``):
``webhook`` {url, token?, drop_rate?, redeliver_rate?, reorder?, workers?, seed?, auto_deliver?}
(``auto_deliver``: deliver after every evolve, e.g. with ``--evolve-every``),
``deliver`` {}, ``emit`` {count, devices?, project?} (each of the first ``devices`` live
devices posts ``count`` messages now), ``offline`` {device, minutes}, ``firmware`` {device,
version}, ``disable`` {device}, ``delete`` {device}, ``configure`` {project, devices,
history_days?} (re-seed that project), ``revoke_key`` {project}, ``stats``, ``points``
{project?} (every point the stream holds, as (device, time, path)), ``evolve`` {steps}.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import datetime as dt
import hashlib
import json
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from sync_pipelines.sandbox.core import SandboxRequest, SandboxResponse, SandboxVendor, json_response, route

PROJECTS = {
    "sandbox-project": {"devices": 20, "key": "golioth-sandbox-key-0001-7f3a9c", "env": "GOLIOTH_SANDBOX_API_KEY"},
    "sandbox-project-2": {"devices": 3, "key": "golioth-sandbox-key-0002-b41e07", "env": "GOLIOTH_SANDBOX_API_KEY_2"},
}
HISTORY_DAYS = 8
PERIOD = dt.timedelta(minutes=20)
CE_TYPE = "io.golioth.data.v1/.s/{path}"


def fmt_stream_time(ts: dt.datetime) -> str:
    """The stream's time: ``2021-05-06T14:48:35.687416+00:00``."""
    return ts.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def fmt_ce_time(ts: dt.datetime) -> str:
    """A CloudEvents time with nanoseconds and ``Z``: the same instant, another spelling."""
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def fmt_api_time(ts: dt.datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_query_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


@dataclass
class Message:
    """One message a device posted to ``/.s/{path}`` (path "" is the stream root)."""

    device_id: str
    time: dt.datetime  # the device's own clock
    path: str
    body: Any
    event_id: str = ""

    def record(self) -> dict[str, Any]:
        data = self.body if not self.path else {self.path: self.body}
        return {"time": fmt_stream_time(self.time), "deviceId": self.device_id, **data}

    def points(self) -> list[tuple[str, str, str]]:
        paths = sorted(self.body) if not self.path else [self.path]
        return [(self.device_id, fmt_stream_time(self.time), p) for p in paths]


@dataclass
class Device:
    id: str
    name: str
    project: str
    created_at: dt.datetime
    skew: dt.timedelta
    period: dt.timedelta
    root_poster: bool
    next_report: dt.datetime
    tags: list[str] = field(default_factory=list)
    enabled: bool = True
    deleted: bool = False
    offline_until: dt.datetime | None = None
    last_report: dt.datetime | None = None
    last_online: dt.datetime | None = None
    firmware: str = "1.0.0"
    updated_at: dt.datetime | None = None
    reports: int = 0
    messages: list[Message] = field(default_factory=list)

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "hardwareIds": [f"hw-{self.name.lower()}"],
            "createdAt": fmt_api_time(self.created_at), "updatedAt": fmt_api_time(self.updated_at or self.created_at),
            "lastReport": fmt_api_time(self.last_report), "status": "-", "enabled": self.enabled,
            "tagIds": list(self.tags), "blueprintId": None,
            "metadata": {
                "lastSeenOnline": fmt_api_time(self.last_online), "lastSeenOffline": None,
                "lastReport": fmt_api_time(self.last_report),
                "update": {"main": {"package": "main", "version": self.firmware, "state": "IDLE"}},
            },
        }


@dataclass
class WebhookConfig:
    url: str
    token: str | None = None
    drop_rate: float = 0.0
    redeliver_rate: float = 0.0
    reorder: bool = False
    workers: int = 1
    seed: int = 0
    auto_deliver: bool = False  # deliver after every evolve (``--evolve-every``), in a thread


class GoliothVendor(SandboxVendor):
    name = "golioth"
    prefix = "/golioth/v1"

    # -- data ------------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        self.seed = seed
        self._stream_order: dict[str, tuple] = {}
        self.keys = {project: spec["key"] for project, spec in PROJECTS.items()}
        self.devices: dict[str, dict[str, Device]] = {}
        self.webhook: WebhookConfig | None = None
        self.outbox: list[Message] = []
        self.dropped: list[Message] = []
        self.messages_sent: list[Message] = []  # answered 2xx at least once
        self.delivered = 0
        self.delivery_statuses: dict[str, int] = {}
        for project, spec in PROJECTS.items():
            self._seed_project(project, spec["devices"], HISTORY_DAYS)

    def _seed_project(self, project: str, count: int, history_days: float) -> None:
        rng = random.Random(f"golioth/{project}/{self.seed}")
        self.devices[project] = {}
        start = self.clock.now() - dt.timedelta(days=history_days)
        for i in range(count):
            self._new_device(project, rng, start, index=i)
        self._advance(self.clock.now(), queue=False)

    def _new_device(self, project: str, rng: random.Random, start: dt.datetime, index: int) -> Device:
        digest = hashlib.sha1(f"{project}/{index}/{self.seed}".encode()).hexdigest()[:24]
        device = Device(
            id=digest, name=f"{project.upper()[-1] if project[-1].isdigit() else 'S'}{index:04d}-{digest[:4]}",
            project=project, created_at=start, skew=dt.timedelta(seconds=rng.uniform(-60, 60)),
            period=PERIOD + dt.timedelta(seconds=rng.uniform(-90, 90)), root_poster=index % 5 == 4,
            next_report=start + dt.timedelta(seconds=rng.uniform(0, PERIOD.total_seconds())),
            tags=["outdoor"] if index % 2 == 0 else ["indoor"],
        )
        self.devices[project][device.id] = device
        return device

    def _live(self, project: str | None = None) -> list[Device]:
        projects = [project] if project else list(self.devices)
        return [d for p in projects for d in self.devices.get(p, {}).values() if not d.deleted]

    def _report(self, device: Device, at: dt.datetime, queue: bool) -> None:
        """One report at true time ``at``: messages stamped by the device's own clock."""
        device.reports += 1
        stamp = at + device.skew
        n = device.reports
        env = {"temp": round(18 + (n * 37 % 100) / 10, 2), "hum": 40 + n * 13 % 30}
        battery = {"level": max(5, 100 - n // 10 % 95)}
        if device.root_poster:
            messages = [Message(device.id, stamp, "", {"env": env, "battery": battery})]
        else:
            messages = [Message(device.id, stamp, "env", env)]
            if n % 3 == 0:
                # a separate message a moment later on the device's clock
                messages.append(Message(device.id, stamp + dt.timedelta(milliseconds=250), "battery", battery))
        for message in messages:
            message.event_id = str(uuid.UUID(bytes=hashlib.md5(f"{device.id}{message.time}{message.path}".encode()).digest()))
            device.messages.append(message)
            if queue and self.webhook is not None:
                self.outbox.append(message)
        device.last_report = device.last_online = at

    def _advance(self, now: dt.datetime, queue: bool = True) -> int:
        reports = 0
        for device in self._live():
            while device.next_report <= now:
                at = device.next_report
                device.next_report = at + device.period
                offline = device.offline_until is not None and at < device.offline_until
                if device.enabled and not offline:
                    self._report(device, at, queue)
                    reports += 1
        return reports

    def insert_records(self, count: int) -> list[tuple[str, str, str]]:
        before = set(self.points())
        self.emit(count, devices=2)  # new points on two devices, stamped now
        return sorted(set(self.points()) - before)

    def evolve(self, rng: random.Random) -> dict[str, Any]:
        changes: dict[str, Any] = {"reports": self._advance(self.clock.now())}
        if self.webhook is not None and self.webhook.auto_deliver and self.outbox:
            threading.Thread(target=self.deliver, name="golioth-webhook", daemon=True).start()
        live = [d for d in self._live() if d.enabled]
        if len(live) > 4:
            now = self.clock.now()
            offline, updated = rng.sample(live, 2)
            offline.offline_until = now + dt.timedelta(hours=rng.uniform(1, 4))
            updated.firmware = f"1.{int(updated.firmware.split('.')[1]) + 1}.0"
            updated.updated_at = now
            changes.update(offline=offline.id, firmware=updated.id)
            if rng.random() < 0.2:
                changes["disabled"] = self.disable(rng.choice(live).id)
            if rng.random() < 0.1:
                changes["deleted"] = self.delete(rng.choice(live).id)
            if rng.random() < 0.3:
                project = rng.choice(list(self.devices))
                device = self._new_device(project, rng, now, index=len(self.devices[project]))
                changes["added"] = device.id
        return changes

    # -- controls --------------------------------------------------------------------------

    def _device(self, device_id: str) -> Device:
        for devices in self.devices.values():
            if device_id in devices:
                return devices[device_id]
        raise KeyError(device_id)

    def disable(self, device_id: str) -> str:
        device = self._device(device_id)
        device.enabled, device.updated_at = False, self.clock.now()
        return device_id

    def delete(self, device_id: str) -> str:
        self._device(device_id).deleted = True
        return device_id

    def emit(self, count: int, devices: int | None = None, project: str | None = None) -> int:
        """The first ``devices`` live devices each post ``count`` messages now (0.5 s apart)."""
        now = self.clock.now()
        chosen = [d for d in self._live(project) if d.enabled][: devices or None]
        for device in chosen:
            for i in range(count):
                self._report(device, now - dt.timedelta(seconds=0.5 * (count - i)), queue=True)
        return len(chosen) * count

    def configure_webhook(self, **options: Any) -> dict[str, Any]:
        self.webhook = WebhookConfig(**options)
        self._delivery_rng = random.Random(f"golioth-webhook/{self.seed}/{self.webhook.seed}")
        return {"url": self.webhook.url}

    def take_deliveries(self) -> list[Message]:
        """The batch the next delivery sends: drops set aside, redeliveries doubled, maybe shuffled."""
        config, rng = self.webhook, self._delivery_rng
        batch, self.outbox = self.outbox, []
        sends: list[Message] = []
        for message in batch:
            if rng.random() < config.drop_rate:
                self.dropped.append(message)
                continue
            sends.append(message)
            if rng.random() < config.redeliver_rate:
                sends.append(message)
        if config.reorder:
            rng.shuffle(sends)
        return sends

    def deliver(self) -> dict[str, Any]:
        """Send what is queued (outside the vendor lock: the receiver is not the sandbox)."""
        with self.lock:
            if self.webhook is None:
                raise KeyError("deliver: no webhook configured")
            config, sends = self.webhook, self.take_deliveries()
        with requests.Session() as session, concurrent.futures.ThreadPoolExecutor(max(1, config.workers)) as pool:
            statuses = list(pool.map(lambda m: self._post(session, config, m), sends))
        failed = [m for m, status in zip(sends, statuses, strict=True) if not 200 <= status < 300]
        with self.lock:
            self.outbox.extend(failed)  # answered non-2xx: sent again next time
            self.messages_sent.extend(m for m, status in zip(sends, statuses, strict=True) if 200 <= status < 300)
            self.delivered += len(sends) - len(failed)
            for status in statuses:
                self.delivery_statuses[str(status)] = self.delivery_statuses.get(str(status), 0) + 1
        return {"sent": len(sends), "failed": len(failed), "dropped": len(self.dropped), "statuses": statuses}

    def _post(self, session: requests.Session, config: WebhookConfig, message: Message) -> int:
        device = self._device(message.device_id)
        headers = {
            "Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": message.event_id,
            "Ce-Source": message.device_id, "Ce-Subject": device.project, "Ce-Time": fmt_ce_time(message.time),
            "Ce-Type": CE_TYPE.format(path=message.path),
        }
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        try:
            return session.post(config.url, data=json.dumps(message.body), headers=headers, timeout=30).status_code
        except requests.RequestException:
            return 0  # no answer: like a 5xx, sent again next time

    def points(self, project: str | None = None) -> list[tuple[str, str, str]]:
        """Every (device, stream time, path) the stream holds (deleted devices' too)."""
        projects = [project] if project else list(self.devices)
        return [p for pr in projects for d in self.devices[pr].values() for m in d.messages for p in m.points()]

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        if action == "deliver":
            return self.deliver()
        with self.lock:
            return self._control(action, payload)

    def _control(self, action: str, payload: dict[str, Any]) -> Any:
        if action == "webhook":
            return self.configure_webhook(**payload)
        if action == "emit":
            return self.emit(int(payload.get("count", 1)), payload.get("devices"), payload.get("project"))
        if action == "offline":
            device = self._device(payload["device"])
            device.offline_until = self.clock.now() + dt.timedelta(minutes=float(payload.get("minutes", 60)))
            return device.id
        if action == "firmware":
            device = self._device(payload["device"])
            device.firmware, device.updated_at = payload["version"], self.clock.now()
            return device.id
        if action == "disable":
            return self.disable(payload["device"])
        if action == "delete":
            return self.delete(payload["device"])
        if action == "configure":
            self._seed_project(payload["project"], int(payload["devices"]), float(payload.get("history_days", HISTORY_DAYS)))
            return len(self.devices[payload["project"]])
        if action == "revoke_key":
            self.keys[payload["project"]] = "revoked-" + uuid.uuid4().hex
            return payload["project"]
        if action == "stats":
            return {"devices": {p: len(self._live(p)) for p in self.devices}, "queued": len(self.outbox),
                    "dropped": len(self.dropped), "delivered": self.delivered, "statuses": self.delivery_statuses}
        if action == "points":
            return self.points(payload.get("project"))
        if action == "evolve":
            return [self.evolve(random.Random(i)) for i in range(int(payload.get("steps", 1)))]
        raise KeyError(action)

    def env_vars(self, base_url: str) -> dict[str, str]:
        keys = {spec["env"]: spec["key"] for spec in PROJECTS.values()}
        return {"GOLIOTH_API_URL": base_url, "GOLIOTH_REQUESTS_PER_SECOND": "0", **keys}

    # -- routes ----------------------------------------------------------------------------

    def _authorize(self, request: SandboxRequest, project: str) -> SandboxResponse | None:
        if project not in self.devices:
            return json_response({"code": 404, "message": f"project {project} not found"}, 404)
        if request.header("x-api-key") != self.keys[project]:
            return json_response({"code": 403, "message": "Forbidden"}, 403)
        return None

    @staticmethod
    def _paging(request: SandboxRequest) -> tuple[int, int] | SandboxResponse:
        try:
            page, per_page = int(request.query.get("page", 0)), int(request.query.get("perPage", 10))
        except ValueError:
            return json_response({"code": 400, "message": "page and perPage must be integers"}, 400)
        if page < 0 or not 1 <= per_page <= 100:
            return json_response({"code": 400, "message": "perPage must be 1..100 and page >= 0"}, 400)
        return page, per_page

    @staticmethod
    def _page(items: list[Any], page: int, per_page: int) -> dict[str, Any]:
        return {"list": items[page * per_page:(page + 1) * per_page], "page": page, "perPage": per_page,
                "total": len(items)}

    @route("GET", r"/projects/(?P<project>[\w-]+)/devices")
    def list_devices(self, request: SandboxRequest, project: str) -> SandboxResponse:
        refused = self._authorize(request, project)
        paging = self._paging(request)
        if refused or isinstance(paging, SandboxResponse):
            return refused or paging
        self._advance(self.clock.now())
        devices = sorted(self._live(project), key=lambda d: d.id)
        return json_response(self._page([d.as_api() for d in devices], *paging))

    @route("GET", r"/projects/(?P<project>[\w-]+)/devices/(?P<device>[\w-]+)/stream")
    def stream(self, request: SandboxRequest, project: str, device: str) -> SandboxResponse:
        refused = self._authorize(request, project)
        paging = self._paging(request)
        if refused or isinstance(paging, SandboxResponse):
            return refused or paging
        found = self.devices[project].get(device)
        if found is None or found.deleted:
            return json_response({"code": 404, "message": f"device {device} not found"}, 404)
        try:
            start, end = parse_query_time(request.query["start"]), parse_query_time(request.query["end"])
        except (KeyError, ValueError):
            return json_response({"code": 400, "message": "start and end (RFC3339) are required"}, 400)
        self._advance(self.clock.now())
        ordered, times = self._ordered_messages(found)
        window = ordered[bisect.bisect_left(times, start):bisect.bisect_left(times, end)]
        page, per_page = paging
        records = [m.record() for m in window[page * per_page:(page + 1) * per_page]]
        return json_response({"list": records, "page": page, "perPage": per_page, "total": len(window)})

    def _ordered_messages(self, device: Device) -> tuple[list[Message], list[dt.datetime]]:
        # Sorted once per change of the device's messages, so paging a long stream (the
        # benchmarks' 1,000,000 points) is not quadratic; same order as a stable sort.
        cache = self._stream_order
        key = (len(device.messages), id(device.messages[-1]) if device.messages else None)
        hit = cache.get(device.id)
        if hit is None or hit[0] != key:
            ordered = sorted(device.messages, key=lambda m: m.time)
            hit = cache[device.id] = (key, ordered, [m.time for m in ordered])
        return hit[1], hit[2]


VENDOR = GoliothVendor
