"""The sandbox's newer fault kinds, over real loopback HTTP: HTML, reset, shift."""

from __future__ import annotations

import pytest
import requests

from sync_pipelines.sandbox import Sandbox, SandboxVendor, json_response, route


class ListVendor(SandboxVendor):
    name = "listing"
    prefix = "/listing"

    def reset(self, seed: int) -> None:
        self.items = list(range(10))

    def insert_records(self, count: int) -> list[int]:
        new = list(range(100, 100 + count))
        self.items[:0] = new  # ahead of every page already served
        return new

    @route("GET", r"/items")
    def items_page(self, request):
        page = int(request.query.get("page", 0))
        return json_response({"items": self.items[page * 4: page * 4 + 4]})


@pytest.fixture
def listing():
    with Sandbox(vendors=[], extra_vendors=[ListVendor]) as sb:
        yield sb


def test_html_fault_answers_a_maintenance_page_with_status_200(listing):
    listing.faults.add("html", vendor="listing", times=1)
    page = requests.get(listing.url("listing") + "/items", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.text.startswith("<!DOCTYPE html>")
    assert requests.get(listing.url("listing") + "/items", timeout=5).json() == {"items": [0, 1, 2, 3]}


def test_reset_fault_aborts_the_connection_with_a_reset(listing):
    listing.faults.add("reset", vendor="listing", times=1)
    with pytest.raises(requests.ConnectionError, match="Connection reset by peer"):
        requests.get(listing.url("listing") + "/items", timeout=5)
    assert requests.get(listing.url("listing") + "/items", timeout=5).ok


def test_shift_fault_inserts_records_ahead_of_the_listing_then_answers(listing):
    url = listing.url("listing") + "/items"
    listing.faults.add("shift", vendor="listing", skip=1, records=2)
    assert requests.get(url, params={"page": 0}, timeout=5).json()["items"] == [0, 1, 2, 3]
    # two records land ahead: page 1 starts two places back (2 and 3 are served again)
    assert requests.get(url, params={"page": 1}, timeout=5).json()["items"] == [2, 3, 4, 5]
    assert listing.vendor("listing").items[:2] == [100, 101]
