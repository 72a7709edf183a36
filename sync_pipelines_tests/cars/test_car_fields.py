"""KB cars get manufacturer, model and badge from the per-car JSON the status checks read,
new cars first, and a later listing never undoes them (SQLite and Postgres)."""

from __future__ import annotations

import pytest

from sync_pipelines.cars.models import kb_status_from_list

pytestmark = pytest.mark.timeout(300)

BUDGET = 35  # status checks per run: the sandbox's 60 KB cars take two runs


def _kb_fields(cars) -> dict[str, tuple]:
    return {k[1]: (v["manufacturer"], v["model"], v["badge"]) for k, v in cars.rows(source="kbchachacha").items()}


def _sandbox_fields(cars, seq: str) -> tuple:
    car = cars.kb.cars[seq]
    return car["maker"], car["model"], car["grade"]


def test_two_full_runs_give_every_kb_car_the_fields_of_its_per_car_json(cars):
    first = cars.sync("full", status_checks_per_run=BUDGET).meta("kbchachacha_listings")
    assert first["status_checked"] == BUDGET and first["car_fields_filled"] == BUDGET
    assert sum(badge is not None for _, _, badge in _kb_fields(cars).values()) == BUDGET

    second = cars.sync("full", status_checks_per_run=BUDGET).meta("kbchachacha_listings")
    assert second["car_fields_filled"] == 60 - BUDGET
    fields = _kb_fields(cars)
    assert len(fields) == 60 and fields == {seq: _sandbox_fields(cars, seq) for seq in fields}

    # nothing changed: the listing writes no row, the per-car answers no field
    for mode in ("full", "incremental"):
        again = cars.sync(mode, status_checks_per_run=BUDGET).meta("kbchachacha_listings")
        assert again["inserted"] == again["updated"] == 0 and again["car_fields_filled"] == 0
    assert _kb_fields(cars) == fields


def test_a_later_listing_does_not_undo_the_fields_from_the_json(cars):
    cars.sync("full")
    bumped = cars.kb.listed_ids()[40]
    cars.kb.bump(bumped, price=1234)  # the listing rewrites the car (price), title unchanged
    meta = cars.sync("full").meta("kbchachacha_listings")
    assert meta["updated"] == 1
    row = cars.rows(source="kbchachacha")[("kbchachacha", bumped)]
    assert row["price_krw"] == 12_340_000
    assert (row["manufacturer"], row["model"], row["badge"]) == _sandbox_fields(cars, bumped)
    assert row["title"] == " ".join(_sandbox_fields(cars, bumped))


def test_new_kb_cars_are_asked_first_though_the_listing_shows_them(cars):
    cars.sync("full")
    new = cars.kb.add(3)
    meta = cars.sync("incremental", status_checks_per_run=3).meta("kbchachacha_listings")
    assert meta["inserted"] == 3 and meta["car_fields_filled"] == 3
    fields = _kb_fields(cars)
    assert all(fields[seq] == _sandbox_fields(cars, seq) for seq in new)


def test_the_per_car_json_carries_maker_model_and_grade():
    item = {"carSeq": 26000013, "makerName": "현대", "className": "그랜저", "modelName": "그랜저 IG",
            "gradeName": "2.4 프리미엄"}
    answer = kb_status_from_list({"list": [item]}, "26000013")
    assert answer.status == "active"
    assert answer.car_fields == {"manufacturer": "현대", "model": "그랜저 IG", "badge": "2.4 프리미엄"}
    # className stands in for a missing modelName; a field that is not text is left out
    partial = kb_status_from_list({"list": [{**item, "modelName": None, "gradeName": 7}]}, "26000013")
    assert partial.car_fields == {"manufacturer": "현대", "model": "그랜저"}
    assert kb_status_from_list({"list": []}, "26000013").car_fields == {}
