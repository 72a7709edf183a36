"""Sandboxed KB Chachacha (CONTRACT.md section 2): the HTML list fragment and the per-car JSON.

Seeded, deterministic cars, newest ``orderDate`` first. The list fragment has the markup
of the vendor notes: ``div.generalRegist`` holding one ``div.area[data-car-seq]`` per car
(``div.thumnail img``, ``a.link``, ``strong.tit``, ``div.data-line span`` x 3, ``span.price``). ``evolve`` makes cars appear,
change price (re-ordered to the top, as a re-advertised car is), and get sold (they
leave the list; the per-car JSON answers an empty ``list``). Like the real site, the list
sets a session cookie and the per-car JSON answers a JavaScript challenge page to a
request without one.

Controls (``POST /_sandbox/kbchachacha/<action>`` or ``vendor.control(action, payload)``):
``sell`` {seq}, ``bump`` {seq, price?} (만원), ``add`` {count}, ``set_size`` {count},
``set_page_size`` {count}, ``challenge`` {times, on: all|list|json, status} (the next list
and/or per-car JSON answers are a script-only challenge page, served with HTTP ``status``:
200 by default, 403 or 503 as Cloudflare-style challenges are), ``expire_sessions``
{values?} (those session cookie values, default every one seen so far, are expired: the
per-car JSON answers them a challenge page, the list hands out a new cookie), ``corrupt``
{seq, field: price|year|mileage, value} (the card shows that text), ``ignore_car_seq``
{on} (the per-car JSON ignores ``carSeqVal`` and answers the newest listed car, whatever
was asked; its items carry ``carSeq``, so a client can tell), ``ids`` (listed seqs, page
order).
"""

from __future__ import annotations

import html
import random
import secrets
from typing import Any

from sync_pipelines.sandbox.core import (
    SandboxRequest,
    SandboxResponse,
    SandboxVendor,
    html_response,
    json_response,
    route,
)

DEFAULT_SIZE = 60
DEFAULT_PAGE_SIZE = 20
SESSION_COOKIES = ("cha-cid", "JSESSIONID")

MODELS = [
    ("현대", "그랜저", "그랜저 IG", ["2.4 프리미엄", "3.0 익스클루시브"]),
    ("현대", "쏘나타", "쏘나타 DN8", ["2.0 스마트", "1.6 터보 인스퍼레이션"]),
    ("기아", "K5", "더 뉴 K5 2세대", ["2.0 프레스티지", "1.6 터보 노블레스"]),
    ("기아", "카니발", "카니발 4세대", ["2.2 디젤 9인승 노블레스"]),
    ("제네시스", "GV80", "GV80", ["2.5T 가솔린 AWD", "3.0 디젤 AWD"]),
    ("르노코리아", "QM6", "더 뉴 QM6", ["2.0 LPe RE 시그니처"]),
]
REGIONS = ["서울", "경기", "인천", "부산", "울산", "경남"]

CHALLENGE_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title>"
    "<script>(function(){var t='sandbox-challenge';document.cookie='cf_chl='+t;"
    "setTimeout(function(){location.reload()},4000);})();</script></head><body></body></html>"
)


class KBChachachaVendor(SandboxVendor):
    name = "kbchachacha"
    prefix = "/kbchachacha"

    def reset(self, seed: int) -> None:
        self.size = getattr(self, "size", DEFAULT_SIZE)
        self.page_size = getattr(self, "page_size", DEFAULT_PAGE_SIZE)
        self._build(seed, self.size)

    def _build(self, seed: int, size: int) -> None:
        self.rng = random.Random(f"kbchachacha-{seed}")
        self.cars: dict[str, dict[str, Any]] = {}
        self.order_seq = 0
        self.challenges = 0
        self.challenge_on = "all"  # which answers the challenge control replaces: all, list or json
        self.challenge_status = 200  # HTTP status of the challenge page (Cloudflare serves 403/503 too)
        self.ignore_car_seq = False  # the per-car JSON answers the newest car whatever carSeqVal says
        self.sessions: set[str] = set()  # session cookie values handed out or presented
        self.expired: set[str] = set()
        self._order: list[str] | None = None
        for _ in range(size):
            self._new_car()

    def _new_car(self) -> dict[str, Any]:
        rng = self.rng
        maker, class_name, model, grades = rng.choice(MODELS)
        self.order_seq += 1
        seq = str(26_000_000 + self.order_seq * 13 + rng.randint(0, 12))
        year = rng.randint(2013, 2024)
        car = {
            "seq": seq,
            "maker": maker,
            "class": class_name,
            "model": model,
            "grade": rng.choice(grades),
            "yymm": (year % 100) * 100 + rng.randint(1, 12),
            "km": rng.randint(500, 210_000),
            "price": rng.randint(500, 8_900),
            "region": rng.choice(REGIONS),
            "order": self.order_seq,
            "sold": False,
            "shown": {},  # field -> text overrides (the ``corrupt`` control)
        }
        self.cars[seq] = car
        self._order = None
        return car

    def listed_ids(self) -> list[str]:
        if self._order is None:
            listed = sorted((c for c in self.cars.values() if not c["sold"]), key=lambda c: c["order"], reverse=True)
            self._order = [c["seq"] for c in listed]
        return self._order

    def _car(self, seq: Any) -> dict[str, Any]:
        car = self.cars.get(str(seq))
        if car is None:
            raise KeyError(f"no kbchachacha car {seq}")
        return car

    # state changes ---------------------------------------------------------------------------

    def sell(self, seq: Any) -> str:
        car = self._car(seq)
        car["sold"] = True
        self._order = None
        return car["seq"]

    def bump(self, seq: Any, price: int | None = None) -> str:
        car = self._car(seq)
        car["price"] = int(price) if price is not None else max(100, car["price"] - self.rng.randint(10, 150))
        self.order_seq += 1
        car["order"] = self.order_seq
        self._order = None
        return car["seq"]

    def add(self, count: int = 1) -> list[str]:
        return [self._new_car()["seq"] for _ in range(count)]

    def insert_records(self, count: int) -> list[str]:
        return self.add(count)

    def evolve(self, rng: random.Random) -> dict[str, Any]:
        listed = list(self.listed_ids())
        changes: dict[str, Any] = {"added": self.add(rng.randint(1, 2)), "price_changed": [], "sold": []}
        if len(listed) > 10:
            changes["price_changed"].append(self.bump(rng.choice(listed)))
            changes["sold"].append(self.sell(rng.choice([i for i in listed if i not in changes["price_changed"]])))
        return changes

    def control(self, action: str, payload: dict[str, Any]) -> Any:
        with self.lock:
            if action == "sell":
                return self.sell(payload["seq"])
            if action == "bump":
                return self.bump(payload["seq"], payload.get("price"))
            if action == "add":
                return self.add(int(payload.get("count", 1)))
            if action == "set_size":
                self.size = int(payload["count"])
                self._build(self.sandbox.seed, self.size)
                return self.size
            if action == "set_page_size":
                self.page_size = int(payload["count"])
                return self.page_size
            if action == "challenge":
                on = payload.get("on", "all")
                if on not in ("all", "list", "json"):
                    raise ValueError(f"challenge 'on' must be all, list or json, got {on!r}")
                self.challenges, self.challenge_on = int(payload.get("times", 1)), on
                self.challenge_status = int(payload.get("status", 200))
                return self.challenges
            if action == "ignore_car_seq":
                self.ignore_car_seq = bool(payload.get("on", True))
                return self.ignore_car_seq
            if action == "expire_sessions":
                values = payload.get("values")
                self.expired |= set(values) if values is not None else set(self.sessions)
                return len(self.expired)
            if action == "corrupt":
                car = self._car(payload["seq"])
                car["shown"][payload.get("field", "price")] = str(payload.get("value", "가격문의"))
                return car["seq"]
            if action == "ids":
                return list(self.listed_ids())
        raise KeyError(action)

    def env_vars(self, base_url: str) -> dict[str, str]:
        return {"KBCHACHACHA_URL": base_url, "KBCHACHACHA_REQUESTS_PER_SECOND": "0"}

    # rendering ------------------------------------------------------------------------------

    def _card(self, car: dict[str, Any]) -> str:
        shown = car["shown"]
        yy, mm = divmod(car["yymm"], 100)
        title = f"{car['maker']} {car['model']} {car['grade']}"
        year = shown.get("year", f"{yy:02d}/{mm:02d}식")
        mileage = shown.get("mileage", f"{car['km']:,}km")
        price = shown.get("price", f"{car['price']:,}만원")
        href = f"/public/car/detail.kbc?carSeq={car['seq']}"
        e = html.escape
        return (
            f'<div class="area" data-car-seq="{car["seq"]}">'
            f'<div class="thumnail"><a class="link" href="{href}"><img src="/img/{car["seq"]}.jpg" alt=""></a></div>'
            f'<div class="con"><a class="link" href="{href}"><strong class="tit">{e(title)}</strong></a>'
            f'<div class="data-line"><span>{e(year)}</span><span>{e(mileage)}</span><span>{e(car["region"])}</span></div>'
            f'<div class="pay"><span class="price">{e(price)}</span></div></div></div>'
        )

    def _challenge(self, kind: str) -> SandboxResponse | None:
        if self.challenges > 0 and self.challenge_on in ("all", kind):
            self.challenges -= 1
            return html_response(CHALLENGE_PAGE, self.challenge_status)
        return None

    def _has_session(self, request: SandboxRequest) -> bool:
        """A session cookie that is not expired (any value the site has not expired is accepted,
        e.g. one copied from a browser into KBCHACHACHA_COOKIE)."""
        cookie_header = request.header("Cookie") or ""
        values = []
        for part in cookie_header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name in SESSION_COOKIES:
                values.append(value)
        self.sessions.update(values)
        return any(value not in self.expired for value in values)

    # routes ---------------------------------------------------------------------------------

    @route("GET", r"/public/search/list.empty")
    def search_list(self, request: SandboxRequest) -> SandboxResponse:
        # The fragment is served to the site's own XHR (vendor notes): without the header or a
        # sort the request is refused, never answered with an unsorted or full page.
        problems = []
        if request.header("X-Requested-With") != "XMLHttpRequest":
            problems.append("the X-Requested-With: XMLHttpRequest header")
        if not request.query.get("sort"):
            problems.append("a sort parameter (e.g. sort=-orderDate)")
        if problems:
            return html_response(
                f"<html><body><p>400 Bad Request: list.empty needs {' and '.join(problems)}</p></body></html>", 400
            )
        challenge = self._challenge("list")
        if challenge is not None:
            return challenge
        try:
            page = max(1, int(request.query.get("page", "1")))
        except ValueError:
            return html_response("<p>bad page</p>", 400)
        order = self.listed_ids()
        start = (page - 1) * self.page_size
        cards = "".join(self._card(self.cars[s]) for s in order[start : start + self.page_size])
        body = f'<div class="generalRegist"><div class="list-in">{cards}</div></div>'
        headers = {}
        if not self._has_session(request):
            session = secrets.token_hex(8)
            self.sessions.add(session)
            headers["Set-Cookie"] = f"cha-cid={session}; Path=/; HttpOnly"
        return html_response(body, 200, **headers)

    @route("POST", r"/public/car/common/recent/car/list.json")
    def car_list_json(self, request: SandboxRequest) -> SandboxResponse:
        challenge = self._challenge("json")
        if challenge is not None:
            return challenge
        if not self._has_session(request):
            return html_response(CHALLENGE_PAGE, 200)
        seq = request.form.get("carSeqVal", "")
        if self.ignore_car_seq and self.listed_ids():
            seq = self.listed_ids()[0]
        car = self.cars.get(seq)
        if car is None or car["sold"]:
            return json_response({"list": []})
        return json_response(
            {
                "list": [
                    {
                        "carSeq": int(car["seq"]),
                        "makerName": car["maker"],
                        "className": car["class"],
                        "modelName": car["model"],
                        "gradeName": car["grade"],
                        "yymm": f"{car['yymm']:04d}",
                        "km": car["km"],
                        "sellAmt": car["price"],
                    }
                ]
            }
        )


VENDOR = KBChachachaVendor
