"""Parsing and normalisation of vendor records (no network)."""

from __future__ import annotations

import datetime as dt

import pytest

from sync_pipelines.cars.kbchachacha_client import KBChallengeError, parse_cookie_header, parse_list_html
from sync_pipelines.cars.models import (
    RecordError,
    encar_status_from_detail,
    kb_mileage_km,
    kb_price_krw,
    kb_status_from_list,
    kb_year_month,
    korean_time,
    mileage_km,
    parse_encar_item,
    price_krw_from_man_won,
    year_month,
)
from sync_pipelines.http_client import VendorResponseError

ENCAR_ITEM = {
    "Id": "34777615", "Photo": "/carpicture07/pic3477/34772434_", "Manufacturer": "벤츠", "Model": "A-클래스 W177",
    "Badge": "A200d 세단", "Transmission": "오토", "FuelType": "디젤", "Year": 202108.0, "FormYear": "2021",
    "Mileage": 12292.0, "Price": 3199.0, "OfficeCityState": "경기", "ModifiedDate": "2023-05-08 21:46:07.000 +09",
}


def test_encar_item_is_normalised():
    car = parse_encar_item(ENCAR_ITEM)
    assert (car.source, car.source_id) == ("encar", "34777615")
    assert car.price_krw == 31_990_000 and isinstance(car.price_krw, int)
    assert car.mileage_km == 12_292 and car.year_month == 202108
    assert (car.manufacturer, car.model, car.badge) == ("벤츠", "A-클래스 W177", "A200d 세단")
    assert car.vendor_modified_at == dt.datetime(2023, 5, 8, 12, 46, 7, tzinfo=dt.timezone.utc)
    assert car.photo_url.endswith("/carpicture07/pic3477/34772434_001.jpg")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("Price", "not-a-number", "Price must be a number"),
        ("Price", None, "Price must be a number"),
        ("Price", -5, "Price must not be negative"),
        ("Mileage", True, "Mileage must be a number"),
        ("Year", 202113.0, "Year must be YYYYMM"),
        ("Id", None, "Id is missing"),
        ("Id", "abc", "Id must be digits"),
        ("ModifiedDate", "yesterday", "ModifiedDate is not a date-time"),
    ],
)
def test_wrong_typed_encar_fields_say_why(field, value, reason):
    with pytest.raises(RecordError, match=reason):
        parse_encar_item({**ENCAR_ITEM, field: value})


def test_numbers_and_times():
    assert price_krw_from_man_won(1234) == 12_340_000
    assert price_krw_from_man_won("1,234") == 12_340_000
    assert price_krw_from_man_won(0.5) == 5_000
    assert mileage_km(12292.4) == 12292
    assert year_month("2108") == 202108 and year_month(199912.0) == 199912
    # KB's yymm is zero-padded: "0903" is 2009-03 (a 4-character string is always YYMM)
    assert year_month("0903") == 200903 and year_month(" 0012 ") == 200012 and year_month("9911") == 199911
    assert year_month(903) == 200903 and year_month("200903") == 200903
    for bad in ("0913", "0900", "903x", "12345"):
        with pytest.raises(RecordError, match="must be YYYYMM|must be a number"):
            year_month(bad)
    assert korean_time("2024-01-01T00:30:00") == dt.datetime(2023, 12, 31, 15, 30, tzinfo=dt.timezone.utc)
    assert korean_time("2024-01-01 09:00:00.000 +09:00") == dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert korean_time(None) is None
    for offset in ("+09", "+0900", "+09:00", " +09"):  # Encar's forms of one offset
        assert korean_time(f"2024-01-01 09:00:00.000{offset}") == dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert korean_time("2024-01-01 09:00:00-0330").utcoffset() == -dt.timedelta(hours=3, minutes=30)
    for bad in ("2024-01-01 09:00:00 +25", "2024-02-30 09:00:00", "2024-01-01"):
        with pytest.raises(RecordError, match="ModifiedDate"):
            korean_time(bad, "ModifiedDate")
    with pytest.raises(RecordError):
        price_krw_from_man_won(float("nan"))


def test_kb_texts():
    assert kb_price_krw("1,234만원") == 12_340_000
    assert kb_price_krw(" 990 만원 ") == 9_900_000
    with pytest.raises(RecordError, match="price is not"):
        kb_price_krw("가격문의")
    assert kb_year_month("21/03식") == 202103
    assert kb_year_month("2019년 11월식(20년형)") == 201911
    assert kb_mileage_km("35,123km") == 35_123
    with pytest.raises(RecordError):
        kb_mileage_km("많음")


def test_kb_prices_in_eok_and_mileage_in_man():
    # 억 = 100,000,000 KRW, 만 = 10,000: an expensive car is written in 억, never rejected for it
    assert kb_price_krw("1억 2,000만원") == 120_000_000
    assert kb_price_krw("1억2000만원") == 120_000_000
    assert kb_price_krw("1억원") == 100_000_000
    assert kb_price_krw("1억") == 100_000_000
    assert kb_price_krw("2억 5만원") == 200_050_000
    assert kb_price_krw("1.5억원") == 150_000_000
    assert kb_price_krw("12억 3,456만원") == 1_234_560_000
    assert kb_price_krw("9,999만원") == 99_990_000
    assert kb_mileage_km("3.5만km") == 35_000
    assert kb_mileage_km("1.2만 km") == 12_000
    assert kb_mileage_km("12만km") == 120_000
    assert kb_mileage_km("0.05만km") == 500
    assert kb_price_krw("1,000만") == 10_000_000  # 원 may be left out
    for bad in ("원", "억원", "만원", "1억 2,000", "가격문의", ""):  # no number, or a number without its unit
        with pytest.raises(RecordError, match="price is not"):
            kb_price_krw(bad)
    for bad in ("만km", "3.5km", "1.2만", "km"):
        with pytest.raises(RecordError, match="mileage is not"):
            kb_mileage_km(bad)


@pytest.mark.parametrize(
    ("man", "krw"),
    [("0.00005", 1), ("0.00015", 2), ("0.00025", 3), ("0.00035", 4), ("1.00005", 10_001), ("3,199.00005", 31_990_001)],
)
def test_a_price_rounds_the_same_with_or_without_eok(man, krw):
    """Every price goes through one conversion and one rounding rule (a half won up): adding
    1억 to a price adds exactly 100,000,000 KRW, whatever its fraction of a won; the same
    amount from Encar (a JSON number) gives the same KRW. Halves are where rules differ."""
    assert kb_price_krw(f"{man}만원") == krw  # x.5 KRW: the half won rounds up
    assert kb_price_krw(f"1억 {man}만원") == kb_price_krw(f"1억{man}만원") == krw + 100_000_000
    assert price_krw_from_man_won(float(man.replace(",", ""))) == krw


def test_mileage_rounds_one_way_whether_in_km_or_man_km():
    assert kb_mileage_km("0.00005만km") == mileage_km(0.5) == mileage_km("0.5") == 1
    assert kb_mileage_km("1.23455만km") == mileage_km(12345.5) == 12_346
    assert mileage_km(12292.4) == 12292 and kb_mileage_km("12,292km") == 12292


def test_a_kb_card_priced_in_eok_lands_with_its_price():
    html = '<div class="generalRegist">' + CARD.format(seq=7, price="1억 2,000만원") + "</div>"
    [card] = parse_list_html(html, "", page=1, endpoint="e")
    assert card.error is None and card.record.price_krw == 120_000_000


def test_status_rules():
    assert encar_status_from_detail(404, None).status == "sold"
    assert encar_status_from_detail(200, {"advertisement": {"status": "SOLD"}}).status == "sold"
    assert encar_status_from_detail(200, {"advertisement": {"status": "ADVERTISE", "salesStatus": "CONTRACT"}}).status == "reserved"
    assert encar_status_from_detail(200, {"advertisement": {"status": "ADVERTISE", "salesStatus": None}}).status == "active"
    with pytest.raises(RecordError):
        encar_status_from_detail(200, {"vehicleId": 1})
    assert kb_status_from_list({"list": []}).status == "sold"
    assert kb_status_from_list({"list": [{"sellAmt": 1}]}).status == "active"
    with pytest.raises(RecordError):
        kb_status_from_list({"result": []})


def test_kb_per_car_answer_must_be_about_the_car_asked():
    assert kb_status_from_list({"list": [{"carSeq": 26000013, "sellAmt": 1}]}, "26000013").status == "active"
    assert kb_status_from_list({"list": [{"carSeq": "26000013"}]}, "26000013").status == "active"
    assert kb_status_from_list({"list": [{"carSeq": 26000013.0}]}, "26000013").status == "active"
    assert kb_status_from_list({"list": [{"carSeq": 1}, {"carSeq": 26000013}]}, "26000013").status == "active"
    # the endpoint ignored carSeqVal and answered another car: malformed, not "on sale"
    with pytest.raises(RecordError, match="per-car answer for carSeq 26000013 is about carSeq 26000099"):
        kb_status_from_list({"list": [{"carSeq": 26000099, "sellAmt": 1}]}, "26000013")
    # items without any id field are taken as the car asked (the vendor notes show none)
    assert kb_status_from_list({"list": [{"makerName": "현대", "sellAmt": 1}]}, "26000013").status == "active"
    assert kb_status_from_list({"list": []}, "26000013").status == "sold"


CARD = (
    '<div class="area" data-car-seq="{seq}"><a class="link" href="/public/car/detail.kbc?carSeq={seq}">'
    '<strong class="tit">현대 그랜저 IG 2.4 프리미엄</strong></a><div class="data-line"><span>19/05식</span>'
    '<span>58,000km</span><span>서울</span></div><span class="price">{price}</span></div>'
)


def test_kb_list_html_is_parsed_card_by_card():
    html = '<div class="generalRegist">' + CARD.format(seq=1, price="2,450만원") + CARD.format(seq=2, price="상담") + "</div>"
    ok, bad = parse_list_html(html, "https://www.kbchachacha.com", page=1, endpoint="GET /list")
    assert ok.record.price_krw == 24_500_000 and ok.record.year_month == 201905 and ok.record.mileage_km == 58_000
    assert (ok.record.manufacturer, ok.record.model, ok.record.region) == ("현대", "그랜저 IG 2.4 프리미엄", "서울")
    assert ok.record.url == "https://www.kbchachacha.com/public/car/detail.kbc?carSeq=1"
    assert bad.record is None and bad.key == "2" and "price is not" in bad.error


def test_kb_cards_are_read_only_inside_the_general_regist_list():
    other = '<div class="recommend">' + CARD.format(seq=9, price="1,000만원") + "</div>"
    html = other + '<div class="generalRegist"><div class="list-in">' + CARD.format(seq=1, price="2,450만원") + "</div></div>"
    assert [c.key for c in parse_list_html(html, "", page=1, endpoint="e")] == ["1"]
    # cards but no list container: the markup changed, neither zero cars nor a challenge
    with pytest.raises(VendorResponseError, match="no div.generalRegist list container: the list markup changed"):
        parse_list_html(other, "", page=1, endpoint="e")


def test_a_kb_list_cut_short_is_malformed_not_a_shorter_page():
    html = '<div class="generalRegist"><div class="list-in">' + CARD.format(seq=1, price="2,450만원") * 2 + "</div></div>"
    assert len(parse_list_html(html, "", page=2, endpoint="e")) == 2
    for cut in (len(html) - 6, len(html) // 2, 40):  # after the last card, mid-card, in the first
        with pytest.raises(VendorResponseError, match="page 2 is malformed: the answer ends before"):
            parse_list_html(html[:cut], "", page=2, endpoint="e")


def test_kb_empty_list_is_empty_but_a_script_only_page_is_a_challenge():
    assert parse_list_html('<div class="generalRegist"><div class="list-in"></div></div>', "", page=9, endpoint="e") == []
    challenge = "<html><head><script>document.cookie='x';location.reload()</script></head><body></body></html>"
    with pytest.raises(KBChallengeError, match="likely a JavaScript challenge"):
        parse_list_html(challenge, "", page=1, endpoint="GET /public/search/list.empty")
    with pytest.raises(KBChallengeError):
        parse_list_html("", "", page=1, endpoint="e")


def test_cookie_header_parsing():
    assert parse_cookie_header("cha-cid=abc; JSESSIONID=x=y; junk") == {"cha-cid": "abc", "JSESSIONID": "x=y"}


def test_a_record_without_id_has_a_stable_reject_key():
    from sync_pipelines.cars.models import encar_record_key

    no_id = {k: v for k, v in ENCAR_ITEM.items() if k != "Id"}
    key = encar_record_key(no_id)
    assert key.startswith("noid-") and key == encar_record_key(dict(reversed(list(no_id.items()))))
    assert key != encar_record_key({**no_id, "Price": 1.0})
    assert encar_record_key(ENCAR_ITEM) == "34777615" and encar_record_key({"Id": ""}).startswith("noid-")
