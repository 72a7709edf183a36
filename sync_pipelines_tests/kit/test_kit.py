"""The shared source kit: batch landing (SQLite and Postgres), report metadata, asset
ending and run tags, paging with repeated-page detection, the vendor client base."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from sync_pipelines.http_client import VendorHTTPClient
from sync_pipelines.kit import (
    SOURCE_TAG,
    Cursor,
    OpenRejectKeys,
    PageRepeatGuard,
    Reject,
    RepeatedPageError,
    SyncReport,
    VendorClient,
    finish_sync_asset,
    land_batch,
    metric,
    not_metric,
    open_rejects,
    paginate,
    run_tags,
)
from sync_pipelines.warehouse import UpsertCounts, Warehouse


@pytest.fixture
def things(warehouse: Warehouse) -> str:
    meta = sa.MetaData()
    sa.Table(
        "kit_things",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    )
    meta.create_all(warehouse.engine)
    return "kit_things"


def test_land_batch_upserts_sets_aside_resolves_and_moves_the_cursor_in_one_transaction(warehouse, things):
    with warehouse.transaction() as tx:
        tx.reject("kit", "things", "1", "was bad")
    with warehouse.transaction() as tx:
        landing = land_batch(
            tx, things, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], source="kit", entity="things",
            landed_keys=[1, 2], rejects=[Reject("3", "no name", {"id": 3})], cursor=Cursor("things", {"at": 2}),
            run_id="r1",
        )
    assert landing.counts == UpsertCounts(inserted=2) and (landing.rejected, landing.resolved) == (1, 1)
    assert [(r["record_key"], r["reason"], r["run_id"]) for r in warehouse.rejects("kit")] == [("3", "no name", "r1")]
    assert warehouse.get_cursor("kit", "things") == {"at": 2}


def test_land_batch_with_open_keys_resolves_only_what_may_be_open_and_keeps_a_superset(warehouse, things):
    with warehouse.transaction() as tx:
        tx.reject("kit", "things", "1", "was bad")
    keys = OpenRejectKeys.read(warehouse, "kit", "things")
    assert keys.among([1, 2, "1"]) == [1, "1"] and OpenRejectKeys().among([1]) == []
    with warehouse.transaction() as tx:  # 3 set aside: it joins the keys that may be open
        landing = land_batch(tx, things, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], source="kit",
                             entity="things", landed_keys=[1, 2], rejects=[Reject("3", "no name")], open_keys=keys)
    assert (landing.rejected, landing.resolved) == (1, 1) and keys.among([1, 2, 3]) == [1, 3]
    with pytest.raises(RuntimeError), warehouse.transaction() as tx:  # rolled back: 3 stays open
        land_batch(tx, things, [{"id": 3, "name": "c"}], source="kit", entity="things", landed_keys=[3], open_keys=keys)
        raise RuntimeError("the batch fails after landing")
    with warehouse.transaction() as tx:
        landing = land_batch(tx, things, [{"id": 3, "name": "c"}], source="kit", entity="things", landed_keys=[3],
                             open_keys=keys)
    assert landing.resolved == 1 and warehouse.rejects("kit") == []


def test_open_rejects_are_the_least_recently_seen_first_bounded_per_run(warehouse, things):
    for key in ("a1", "b1", "a2"):
        with warehouse.transaction() as tx:
            land_batch(tx, things, [], source="kit", entity="things", rejects=[Reject(key, "bad", {"k": key})])
    with warehouse.transaction() as tx:  # a1 is seen again: it goes behind the others
        land_batch(tx, things, [], source="kit", entity="things", rejects=[Reject("a1", "still bad")])
    assert [r.key for r in open_rejects(warehouse, "kit", "things")] == ["b1", "a2", "a1"]
    assert [r.key for r in open_rejects(warehouse, "kit", "things", limit=2, key_prefix="a")] == ["a2", "a1"]
    [first] = open_rejects(warehouse, "kit", "things", limit=1)
    assert first.payload == {"k": "b1"} and first.first_seen_at <= first.last_seen_at
    assert first.last_seen_at.tzinfo is not None and open_rejects(warehouse, "kit", "other") == []


def test_land_batch_rolls_back_with_its_transaction(warehouse, things):
    with pytest.raises(RuntimeError), warehouse.transaction() as tx:
        land_batch(
            tx, things, [{"id": 1, "name": "a"}], source="kit", entity="things",
            rejects=[Reject("2", "bad")], cursor=Cursor("things", 1),
        )
        raise RuntimeError("the batch fails after landing")
    assert warehouse.count(things) == 0 and warehouse.rejects("kit") == []
    assert warehouse.get_cursor("kit", "things") is None


def test_land_batch_passes_upsert_options(warehouse, things):
    with warehouse.transaction() as tx:
        land_batch(tx, things, [{"id": 1, "name": "a"}], source="kit", entity="things")
    with warehouse.transaction() as tx:
        landing = land_batch(
            tx, things, [{"id": 1, "name": "b"}], source="kit", entity="things",
            upsert_options={"insert_only": ("name",)},
        )
    assert landing.counts == UpsertCounts(unchanged=1)


@dataclass
class PagesReport(SyncReport):
    pages: int = 0
    listing_complete: bool = False
    left: int = field(default=0, metadata=metric("left_checked"))
    resolved: int = field(default=0, metadata=not_metric())
    seconds: float = 0.0
    position: tuple | None = field(default=None, metadata=metric("cursor", render=lambda p: str(p or "(none)")))
    totals: dict = field(default_factory=dict, metadata=metric(render=lambda t: {f"{k}_n": v for k, v in t.items()}))
    samples: list = field(default_factory=list)


def test_report_metadata_is_derived_from_its_fields():
    report = PagesReport("things", "full", fetched=5, counts=UpsertCounts(1, 2, 3), rejected=1, pages=2,
                         listing_complete=True, left=4, resolved=9, seconds=1.23456, totals={"a": 1})
    assert report.as_metadata() == {
        "fetched": 5, "inserted": 1, "updated": 2, "unchanged": 3, "rejected": 1, "pages": 2,
        "listing_complete": 1, "left_checked": 4, "seconds": 1.235, "cursor": "(none)", "a_n": 1,
    }


def test_reject_samples_keep_the_first_ones_up_to_the_limit():
    report = SyncReport("things", "incremental")
    report.add_reject_samples(["a", "b"], limit=3)
    report.add_reject_samples(["c", "d"], limit=3)
    assert report.reject_samples == ["a", "b", "c"]


def test_finish_sync_asset_logs_and_returns_metadata_with_reject_samples(caplog):
    report = SyncReport("things", "full", fetched=2, rejected=1, reject_samples=["3: no name"])
    logger = logging.getLogger("kit-test")
    with caplog.at_level(logging.INFO, "kit-test"):
        result = finish_sync_asset(logger, report, "things: 2 fetched", destination="db", metadata={"x_http": 1},
                                   notes=["one note"])
    assert [r.message for r in caplog.records] == ["things: 2 fetched", "one note"]
    assert result.metadata["destination"] == "db" and result.metadata["x_http"] == 1
    assert result.metadata["fetched"] == 2 and result.metadata["reject_samples"].value == "- 3: no name"


def test_run_tags():
    assert run_tags("cars") == {SOURCE_TAG: "cars"} == {"sync_pipelines/source": "cars"}
    assert run_tags("odoo", mode="full", trigger="odoo_sync_schedule") == {
        "sync_pipelines/source": "odoo", "sync_pipelines/mode": "full", "sync_pipelines/trigger": "odoo_sync_schedule",
    }


def test_paginate_reads_until_the_last_page_or_the_page_limit():
    pages = {1: [1, 2], 2: [3, 4], 3: [5]}
    read = list(paginate(pages.__getitem__, keys=list, is_last=lambda p: len(p) < 2, max_pages=10,
                         vendor="v", endpoint="GET /list"))
    assert read == [[1, 2], [3, 4], [5]]
    assert list(paginate(pages.__getitem__, keys=list, is_last=lambda p: False, max_pages=2,
                         vendor="v", endpoint="GET /list")) == [[1, 2], [3, 4]]


def test_paginate_fails_clearly_on_a_vendor_serving_one_page_again():
    fetched = []

    def fetch(number):
        fetched.append(number)
        return [1, 2]

    with pytest.raises(RepeatedPageError, match=r"v GET /list: page 2 repeats the previous page"):
        list(paginate(fetch, keys=list, is_last=lambda p: False, max_pages=500, vendor="v", endpoint="GET /list"))
    assert fetched == [1, 2]


def test_repeat_guard_empty_pages_and_new_pagings_never_repeat():
    guard = PageRepeatGuard("v", "GET /list")
    assert not guard.repeats([]) and not guard.repeats([])
    assert not guard.repeats(["a"]) and guard.repeats(["a"])
    assert not guard.repeats(["a"], first=True)
    guard.check(["b"])
    with pytest.raises(RepeatedPageError):
        guard.check(["b"], page=7)


class ThingClient(VendorClient):
    def __init__(self):
        self.http = VendorHTTPClient(vendor="kit-thing", base_url="http://127.0.0.1:9")


def test_vendor_client_base_gives_stats_close_and_with():
    with ThingClient() as client:
        assert client.stats is client.http.stats and client.stats.requests == 0
        closed = []
        client.http.session.close = lambda: closed.append(True)
    assert closed == [True]
