"""Sandboxed Encar (CONTRACT.md section 2): the ``ModifiedDate``-sorted list and the vehicle detail.

Seeded, deterministic cars. ``evolve`` makes cars appear, change price (their ModifiedDate
moves to now, so they jump to page 1), get reserved (detail ``salesStatus: CONTRACT``) and
get sold (they leave the list; the detail answers ``status: SOLD`` or 404).

Controls (``POST /_sandbox/encar/<action>`` with a JSON body, or ``vendor.control(action,
payload)`` from Python): ``sell`` {id, how: "status"|"404", still_listed?} (with
``still_listed`` the list keeps showing the sold car, as a lagging search index does, until
it is sold again without it), ``reserve`` {id},
``unreserve`` {id}, ``relist`` {id} (a sold or removed car advertised again under its
id), ``bump`` {id, price?} (price in 만원), ``add`` {count},
``set_size`` {count} (re-seed with that many cars), ``corrupt`` {id, field, value?, drop?}
(the list item shows ``value`` in ``field``, or lacks the field with ``drop``; the detail
is unchanged), ``repair`` {id} (undo ``corrupt``), ``on_page`` {page, action, id}
(apply a control when that list page is served: a change in the middle of paging), ``ids``
(listed ids, page order).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sync_pipelines.sandbox.core import SandboxRequest, SandboxResponse, SandboxVendor, json_response, route

KST = dt.timezone(dt.timedelta(hours=9))
DEFAULT_SIZE = 120
MAX_COUNT = 1000

MODELS = [
    ("현대", "그랜저 IG", ["2.4 프리미엄", "3.0 익스클루시브", "하이브리드 프리미엄"]),
    ("현대", "아반떼 (CN7)", ["1.6 스마트", "1.6 인스퍼레이션"]),
    ("기아", "더 뉴 K5 2세대", ["2.0 프레스티지", "1.6 터보 노블레스"]),
    ("기아", "쏘렌토 4세대", ["2.2 디젤 시그니처", "1.6 HEV 노블레스"]),
    ("제네시스", "G80 (RG3)", ["2.5T AWD", "3.5T AWD 스포츠"]),
    ("벤츠", "A-클래스 W177", ["A200d 세단", "A220 해치백"]),
    ("BMW", "5시리즈 (G30)", ["520i M 스포츠", "530e 럭셔리"]),
    ("쉐보레", "트레일블레이저", ["1.3 RS", "1.2 LT"]),
]
REGIONS = ["서울", "경기", "인천", "부산", "대구", "대전", "광주"]
FUELS = ["가솔린", "디젤", "하이브리드", "전기"]


def fmt_modified(ts: dt.datetime) -> str:
    """Encar's list timestamp: ``"2023-05-08 21:46:07.000 +09"``."""
    return ts.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S.000 +09")


def fmt_kst_naive(ts: dt.datetime) -> str:
    """The detail's ``manage`` timestamps: Korean local time, no zone."""
    return ts.astimezone(KST).strftime("%Y-%m-%dT%H:%M:%S")


class EncarVendor(SandboxVendor):
    name = "encar"
    prefix = "/encar"

    def reset(self, seed: int) -> None:
        self.size = getattr(self, "size", DEFAULT_SIZE)
        self._build(seed, self.size)

    def _build(self, seed: int, size: int) -> None:
        self.rng = random.Random(f"encar-{seed}")
        self.cars: dict[str, dict[str, Any]] = {}
        self.seq = 0
        self.hooks: list[dict[str, Any]] = []
        self._order: list[str] | None = None
        now = self.clock.now()
        for i in range(size):
            # oldest first, so the newest seeded car has the highest seq (page 1)
            self._new_car(now - dt.timedelta(minutes=7 * (size - i)))

    # data -----------------------------------------------------------------------------------

    def _new_car(self, when: dt.datetime) -> dict[str, Any]:
        rng = self.rng
        maker, model, badges = rng.choice(MODELS)
        year = rng.randint(2012, 2024)
        self.seq += 1
        car_id = str(30_000_000 + self.seq * 7 + rng.randint(0, 6))
        car = {
            "Id": car_id,
            "Manufacturer": maker,
            "Model": model,
            "Badge": rng.choice(badges),
            "BadgeDetail": rng.choice(["", "기본형", "풀옵션"]),
            "Transmission": "오토",
            "FuelType": rng.choice(FUELS),
            "Year": float(year * 100 + rng.randint(1, 12)),
            "FormYear": str(year + rng.choice([0, 0, 1])),
            "Mileage": float(rng.randint(1_000, 220_000)),
            "Price": float(rng.randint(450, 9_800)),
            "OfficeCityState": rng.choice(REGIONS),
            "Photo": f"/carpicture07/pic{car_id[:4]}/{car_id}_",
            "SellType": "일반",
            # not in the list answer:
            "_seq": self.seq,
            "_modified": when,
            "_registered": when,
            "_status": "ADVERTISE",
            "_sales_status": None,
            "_removed": False,
            "_still_listed": False,  # listed although sold (a lagging search index); `sell` still_listed
            "_shown": {},  # field -> value the list item shows instead (None: field dropped); `corrupt`
        }
        self.cars[car_id] = car
        self._order = None
        return car

    def _touch(self, car: dict[str, Any]) -> None:
        self.seq += 1
        car["_seq"] = self.seq
        car["_modified"] = self.clock.now()
        self._order = None

    def listed_ids(self) -> list[str]:
        """Advertised cars, newest ModifiedDate first (the order of ``sr=|ModifiedDate|``)."""
        if self._order is None:
            listed = [
                c for c in self.cars.values()
                if (c["_status"] == "ADVERTISE" and not c["_removed"]) or c["_still_listed"]
            ]
            listed.sort(key=lambda c: c["_seq"], reverse=True)
            self._order = [c["Id"] for c in listed]
        return self._order

    def _car(self, car_id: Any) -> dict[str, Any]:
        car = self.cars.get(str(car_id))
        if car is None:
            raise KeyError(f"no encar car {car_id}")
        return car

    def list_item(self, car: dict[str, Any]) -> dict[str, Any]:
        item = {k: v for k, v in car.items() if not k.startswith("_")}
        item["ModifiedDate"] = fmt_modified(car["_modified"])
        item["Photos"] = [
            {"type": "001", "location": f"{car['Photo']}001.jpg", "updatedDate": car["_modified"].strftime(
                "%Y-%m-%dT%H:%M:%SZ"), "ordering": 1.0}
        ]
        for name, value in car["_shown"].items():
            if value is None:
                item.pop(name, None)
            else:
                item[name] = value
        return item

    # state changes ---------------------------------------------------------------------------

    def sell(self, car_id: Any, how: str = "status", still_listed: bool = False) -> str:
        car = self._car(car_id)
        if how == "404":
            car["_removed"] = True
        else:
            car["_status"] = "SOLD"
        car["_still_listed"] = bool(still_listed)
        self._order = None
        return car["Id"]

    def reserve(self, car_id: Any, on: bool = True) -> str:
        car = self._car(car_id)
        car["_sales_status"] = "CONTRACT" if on else None
        return car["Id"]

    def relist(self, car_id: Any) -> str:
        car = self._car(car_id)
        car.update(_status="ADVERTISE", _sales_status=None, _removed=False, _still_listed=False)
        self._touch(car)
        return car["Id"]

    def bump(self, car_id: Any, price: float | None = None) -> str:
        car = self._car(car_id)
        car["Price"] = float(price) if price is not None else max(100.0, car["Price"] - self.rng.randint(10, 200))
        self._touch(car)
        return car["Id"]

    def add(self, count: int = 1) -> list[str]:
        return [self._new_car(self.clock.now())["Id"] for _ in range(count)]

    def insert_records(self, count: int) -> list[str]:
        return self.add(count)  # newest ModifiedDate: at the head of the listing

    def evolve(self, rng: random.Random) -> dict[str, Any]:
        listed = list(self.listed_ids())
        changes: dict[str, Any] = {"added": self.add(rng.randint(1, 3)), "price_changed": [], "reserved": [], "sold": []}
        if len(listed) > 10:
            for car_id in rng.sample(listed, 2):
                changes["price_changed"].append(self.bump(car_id))
            free = [i for i in listed if self.cars[i]["_sales_status"] is None and i not in changes["price_changed"]]
            changes["reserved"].append(self.reserve(rng.choice(free)))
            candidates = [i for i in listed if i not in changes["reserved"]]
            changes["sold"].append(self.sell(rng.choice(candidates), how=rng.choice(["status", "404"])))
        return changes

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        with self.lock:
            if action == "sell":
                return self.sell(payload["id"], payload.get("how", "status"), bool(payload.get("still_listed")))
            if action == "reserve":
                return self.reserve(payload["id"])
            if action == "unreserve":
                return self.reserve(payload["id"], on=False)
            if action == "relist":
                return self.relist(payload["id"])
            if action == "bump":
                return self.bump(payload["id"], payload.get("price"))
            if action == "add":
                return self.add(int(payload.get("count", 1)))
            if action == "set_size":
                self.size = int(payload["count"])
                self._build(self.sandbox.seed, self.size)
                return self.size
            if action == "on_page":
                self.hooks.append({"page": int(payload["page"]), "action": payload["action"], "id": payload["id"]})
                return len(self.hooks)
            if action == "corrupt":
                car = self._car(payload["id"])
                car["_shown"][payload["field"]] = None if payload.get("drop") else payload.get("value")
                return car["Id"]
            if action == "repair":
                car = self._car(payload["id"])
                car["_shown"].clear()
                return car["Id"]
            if action == "ids":
                return list(self.listed_ids())
        raise KeyError(action)

    def env_vars(self, base_url: str) -> dict[str, str]:
        # loopback: no politeness throttle needed
        return {"ENCAR_API_URL": base_url, "ENCAR_REQUESTS_PER_SECOND": "0"}

    # routes ---------------------------------------------------------------------------------

    @route("GET", r"/search/car/list/general")
    def search(self, request: SandboxRequest) -> SandboxResponse:
        # The request shape of the contract / vendor notes: count=true&q=(...)&sr=|Sort|offset|count.
        # A malformed request is refused, as the real API would, never answered as if fine.
        missing = [name for name in ("q", "count", "sr") if not request.query.get(name)]
        if missing:
            return json_response(
                {"message": f"missing query parameter(s) {', '.join(missing)}; expected "
                 "count=true&q=(And.Hidden.N._.CarType.A.)&sr=|ModifiedDate|{offset}|{count}"},
                400,
            )
        if request.query["count"] not in ("true", "false"):
            return json_response({"message": f"count must be true or false, got {request.query['count']!r}"}, 400)
        if not (request.query["q"].startswith("(") and request.query["q"].endswith(")")):
            return json_response({"message": f"q must be a (...) query expression, got {request.query['q']!r}"}, 400)
        parts = (request.query.get("sr") or "").split("|")
        if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
            return json_response({"message": "bad sr, expected |Sort|offset|count"}, 400)
        offset, count = int(parts[2]), min(int(parts[3]), MAX_COUNT)
        page = offset // count + 1 if count else 1
        for hook in [h for h in self.hooks if h["page"] == page]:
            self.hooks.remove(hook)
            self.control(hook["action"], {"id": hook["id"]})
        order = self.listed_ids()
        items = [self.list_item(self.cars[i]) for i in order[offset : offset + count]]
        body: dict[str, Any] = {"SearchResults": items}
        if request.query.get("count") == "true":
            body = {"Count": len(order), **body}
        return json_response(body)

    @route("GET", r"/v1/readside/vehicle/(?P<car_id>\d+)")
    def detail(self, request: SandboxRequest, car_id: str) -> SandboxResponse:
        car = self.cars.get(car_id)
        if car is None or car["_removed"]:
            return json_response({"message": "vehicle not found"}, 404)
        year_month = int(car["Year"])
        return json_response(
            {
                "vehicleId": int(car["Id"]),
                "vehicleNo": f"{car['_seq'] % 100}가{car['_seq'] % 10000:04d}",
                "category": {
                    "manufacturerName": car["Manufacturer"],
                    "modelName": car["Model"],
                    "gradeName": car["Badge"],
                    "formYear": car["FormYear"],
                    "yearMonth": str(year_month),
                },
                "advertisement": {
                    "price": int(car["Price"]),
                    "status": car["_status"],
                    "salesStatus": car["_sales_status"],
                },
                "spec": {
                    "mileage": int(car["Mileage"]),
                    "fuelName": car["FuelType"],
                    "transmissionName": car["Transmission"],
                    "colorName": "흰색",
                },
                "manage": {
                    "registDateTime": fmt_kst_naive(car["_registered"]),
                    "firstAdvertisedDateTime": fmt_kst_naive(car["_registered"]),
                    "modifyDateTime": fmt_kst_naive(car["_modified"]),
                },
            }
        )


VENDOR = EncarVendor
