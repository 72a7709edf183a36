"""KB Chachacha client: the HTML list fragment (parsed with BeautifulSoup + lxml) and the
per-car JSON used to confirm a sale.

The public site binds the JSON calls to a session cookie, which the client keeps in its
``requests`` cookie jar (seeded from ``KBCHACHACHA_COOKIE`` when given). The site sometimes
answers with a JavaScript challenge page instead of the list: that is a
:class:`KBChallengeError`, never "zero cars".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

import requests
from bs4 import BeautifulSoup

from sync_pipelines.cars.models import (
    CarRecord,
    RecordError,
    StatusAnswer,
    kb_status_from_list,
    parse_kb_card,
    unkeyed_record_key,
)
from sync_pipelines.cars.settings import KB_CAR_STATUS_PATH, KB_LIST_PATH, KB_LIST_SORT, KBCHACHACHA
from sync_pipelines.http_client import (
    RetryPolicy,
    VendorClient,
    VendorError,
    VendorHTTPClient,
    VendorResponseError,
)
from sync_pipelines.kit import PageRepeatGuard
from sync_pipelines.redaction import register_secret

# The cars of the list (vendor notes): one div.area[data-car-seq] per car, inside the list
# container div.generalRegist. Cards elsewhere on the page (other blocks) are not the list.
CARD_SELECTOR = "div.generalRegist div.area[data-car-seq]"
# Markup that is present on a genuine list answer even when it holds no car.
LIST_CONTAINER_SELECTORS = ("div.generalRegist", "div.list-empty", "div.nodata")
AJAX_HEADERS = {"X-Requested-With": "XMLHttpRequest"}
# The site's session cookies (vendor notes): dropped and fetched anew when the per-car JSON
# answers a challenge page; other cookies (e.g. from KBCHACHACHA_COOKIE) are kept.
SESSION_COOKIE_NAMES = ("cha-cid", "JSESSIONID")
# Challenge pages also come as 403/503, which the shared layer would call refused credentials
# or an outage: their body is judged first (``check`` hook); a 200 by what it must hold.
CHALLENGE_STATUSES = (403, 503)
# Text of challenge pages (Cloudflare "Just a moment...", cf-chl scripts, captcha walls); a
# 403/503 HTML page with a script counts too (an error page has no reason to run JavaScript).
CHALLENGE_MARKERS = (
    "just a moment", "cf-chl", "cf_chl", "challenge-platform", "jschl", "captcha", "checking your browser",
    "attention required", "enable javascript",
)


# A list answer cut short (200, body truncated) is usually transient: ask again this many
# times, then fail the run. It is never read as a shorter page (its missing cards would be lost).
MALFORMED_PAGE_ATTEMPTS = 3


class KBChallengeError(VendorError):
    """KB Chachacha answered with a page that is not the list (a JavaScript/bot challenge)."""


@dataclass
class CardResult:
    """A parsed card, or why it could not be parsed (``record`` None, ``error`` set)."""

    key: str
    record: CarRecord | None
    error: str | None
    html: str


@dataclass
class KBListPage:
    number: int
    cards: list[CardResult]
    last: bool


def is_challenge_page(response: requests.Response) -> bool:
    """An HTML answer that is a bot/JavaScript challenge rather than an error page."""
    text = response.text[:20_000]
    if "html" not in response.headers.get("Content-Type", "") and not text.lstrip().startswith("<"):
        return False
    lowered = text.lower()
    return "<script" in lowered or any(marker in lowered for marker in CHALLENGE_MARKERS)


def raise_on_challenge_page(response: requests.Response) -> None:
    """The shared HTTP layer's ``check`` for every KB call: a 403/503 challenge page is a
    :class:`KBChallengeError` at once (retried as an outage it would only fetch the same page
    again; it is not refused credentials either). Other answers go on to the shared layer."""
    status = response.status_code
    if status in CHALLENGE_STATUSES and is_challenge_page(response):
        raise KBChallengeError(
            KBCHACHACHA, f"{response.request.method} {urlsplit(response.url).path}",
            f"HTTP {status} with a challenge page, not an answer (likely a JavaScript challenge, "
            "Cloudflare-style). Not treating it as zero cars or as sold; retry later or set KBCHACHACHA_COOKIE "
            "to a browser session cookie",
            status=status,
        )


def parse_cookie_header(value: str) -> dict[str, str]:
    """``"cha-cid=abc; JSESSIONID=x"`` -> ``{"cha-cid": "abc", "JSESSIONID": "x"}``."""
    cookies = {}
    for part in value.split(";"):
        name, sep, val = part.strip().partition("=")
        if sep and name:
            cookies[name.strip()] = val.strip()
    return cookies


class _ListCloseFinder(HTMLParser):
    """Follows ``div`` nesting to see whether the first ``div.generalRegist`` is closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.depth, self.list_depth, self.list_closed = 0, None, False

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag != "div":
            return
        self.depth += 1
        classes = (dict(attrs).get("class") or "").split()
        if self.list_depth is None and "generalRegist" in classes:
            self.list_depth = self.depth

    def handle_endtag(self, tag: str) -> None:
        if tag != "div" or self.depth == 0:
            return
        if self.depth == self.list_depth:
            self.list_closed = True
        self.depth -= 1


def list_container_closed(html: str) -> bool:
    """Whether the answer closes its ``div.generalRegist`` list: a body cut short does not
    (lxml would close it silently and the page would read as a shorter one)."""
    finder = _ListCloseFinder()
    finder.feed(html)
    finder.close()
    return finder.list_closed


def parse_list_html(html: str, base_url: str, *, page: int, endpoint: str) -> list[CardResult]:
    """Cards (``CARD_SELECTOR``) of one list fragment. Raises :class:`KBChallengeError` when
    the page holds no card and no list container (a challenge or error page, not an empty
    result), and ``VendorResponseError`` when it holds cards but no ``div.generalRegist``
    (the markup changed: reading it could mistake another block for the list) or when the
    list container is not closed (the answer was cut short)."""
    soup = BeautifulSoup(html, "lxml")
    if soup.select_one("div.generalRegist") is not None and not list_container_closed(html):
        raise VendorResponseError(
            KBCHACHACHA,
            endpoint,
            f"page {page} is malformed: the answer ends before its div.generalRegist list is closed (cut short, "
            f"{len(html)} characters); not reading it as a shorter page",
        )
    areas = soup.select(CARD_SELECTOR)
    if not areas:
        if any(soup.select_one(selector) for selector in LIST_CONTAINER_SELECTORS):
            return []
        stray = soup.select("div.area[data-car-seq]")
        if stray:
            raise VendorResponseError(
                KBCHACHACHA,
                endpoint,
                f"page {page} has {len(stray)} div.area[data-car-seq] card(s) but no div.generalRegist list "
                "container: the list markup changed; not reading it as the list",
            )
        scripts = len(soup.find_all("script"))
        raise KBChallengeError(
            KBCHACHACHA,
            endpoint,
            f"page {page} is not a car list (no {CARD_SELECTOR}, no list container; {scripts} script tag(s)): "
            "likely a JavaScript challenge. Not treating it as zero cars; retry later or set KBCHACHACHA_COOKIE "
            "to a browser session cookie",
        )
    cards = []
    for area in areas:
        seq = (area.get("data-car-seq") or "").strip()
        key = seq or unkeyed_record_key(str(area))
        title = area.select_one("strong.tit")
        price = area.select_one("span.price")
        link = area.select_one("a.link")
        data_line = [s.get_text(" ", strip=True) for s in area.select("div.data-line span")]
        try:
            record = parse_kb_card(
                seq,
                title.get_text(" ", strip=True) if title else None,
                data_line,
                price.get_text("", strip=True) if price else None,
                link.get("href") if link else None,
                base_url,
            )
            cards.append(CardResult(key, record, None, ""))
        except RecordError as exc:
            cards.append(CardResult(key, None, str(exc), str(area)[:2000]))
    return cards


@dataclass
class KBChachachaClient(VendorClient):
    base_url: str
    cookie: str | None = None
    requests_per_second: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        self.http = VendorHTTPClient(
            vendor=KBCHACHACHA,
            base_url=self.base_url,
            timeout=(5.0, 30.0),
            retry=self.retry,
            rate_limit_per_second=self.requests_per_second,
            headers={"Referer": f"{self.base_url}/public/search/main.kbc"},
            secrets=[self.cookie] if self.cookie else [],
        )
        if self.cookie:
            for name, value in parse_cookie_header(self.cookie).items():
                register_secret(value)
                self.http.session.cookies.set(name, value)
        self.page_size: int | None = None
        self._repeats = PageRepeatGuard(KBCHACHACHA, f"GET {KB_LIST_PATH}")
        self.session_refreshes = 0  # counted for metadata
        self.malformed_retries = 0  # counted for metadata

    def list_page(self, number: int) -> KBListPage:
        """Page ``number`` (1-based). The URL sets no page size, so the first page's size is
        the page size: a shorter or empty page is the last; so is a page that repeats the
        previous one (some sites serve the last page again past the end)."""
        cards = self._list_cards(number)
        keys = [c.key for c in cards]
        if number == 1 or self.page_size is None:
            self.page_size = len(cards)
        if self._repeats.repeats(keys, first=number == 1):  # served again past the end
            return KBListPage(number=number, cards=[], last=True)
        return KBListPage(number=number, cards=cards, last=not cards or len(cards) < self.page_size)

    def _list_cards(self, number: int) -> list[CardResult]:
        """Page ``number``'s cards; a malformed (cut short) answer is asked for again."""
        endpoint = f"GET {KB_LIST_PATH}"
        for _ in range(MALFORMED_PAGE_ATTEMPTS - 1):
            try:
                return parse_list_html(self._get_list(number).text, self.base_url, page=number, endpoint=endpoint)
            except VendorResponseError:
                self.malformed_retries += 1
        return parse_list_html(self._get_list(number).text, self.base_url, page=number, endpoint=endpoint)

    def ensure_session(self) -> None:
        """The per-car JSON wants the site's session cookie: get one from the list if needed."""
        if not self.http.session.cookies:
            self._get_list(1)

    def refresh_session(self) -> None:
        """Drop the session cookies and get new ones from the list (after a challenge on the
        per-car JSON: the session expired, or the site wants a fresh one)."""
        self.session_refreshes += 1
        for cookie in list(self.http.session.cookies):
            if cookie.name in SESSION_COOKIE_NAMES:
                self.http.session.cookies.clear(cookie.domain, cookie.path, cookie.name)
        endpoint = f"GET {KB_LIST_PATH}"
        status = None
        try:
            response = self._get_list(1)
            status = response.status_code
            parse_list_html(response.text, self.base_url, page=1, endpoint=endpoint)
        except KBChallengeError as exc:
            raise KBChallengeError(
                KBCHACHACHA, endpoint,
                "refreshing the session after a challenge on the per-car JSON: the list answered a challenge "
                "page too (likely a JavaScript challenge). Not treating any car as sold; retry later or set "
                "KBCHACHACHA_COOKIE to a browser session cookie",
                status=exc.status or status,
            ) from exc

    def car_status(self, car_seq: str) -> StatusAnswer:
        """Whether the per-car JSON still has the car. A challenge page instead of JSON gets one
        session refresh and a second try; a second challenge is a :class:`KBChallengeError`."""
        self.ensure_session()
        try:
            return self._car_status(car_seq)
        except KBChallengeError:
            self.refresh_session()
        try:
            return self._car_status(car_seq)
        except KBChallengeError as exc:
            raise KBChallengeError(
                KBCHACHACHA, exc.endpoint,
                f"car {car_seq}: answered HTML instead of JSON again after a session refresh (likely a JavaScript "
                "challenge). Not treating it as sold; retry later or set KBCHACHACHA_COOKIE to a browser session "
                "cookie",
                status=exc.status,
            ) from exc

    def _car_status(self, car_seq: str) -> StatusAnswer:
        endpoint = f"POST {KB_CAR_STATUS_PATH}"
        response = self.http.post(
            KB_CAR_STATUS_PATH,
            check=raise_on_challenge_page,
            data={"gotoPage": "1", "pageSize": "1", "carSeqVal": car_seq},
            headers=AJAX_HEADERS,
        )
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type or response.text.lstrip().startswith("<"):
            raise KBChallengeError(
                KBCHACHACHA, endpoint,
                "answered HTML instead of JSON (likely a JavaScript challenge or an expired session); "
                "retry later or set KBCHACHACHA_COOKIE",
                status=response.status_code,
            )
        return kb_status_from_list(self.http.decode_json(response), car_seq)

    def _get_list(self, number: int) -> requests.Response:
        return self.http.get(
            KB_LIST_PATH, params={"page": number, "sort": KB_LIST_SORT}, headers=AJAX_HEADERS,
            check=raise_on_challenge_page,
        )
