"""Cars source constants: vendor paths, page sizes, defaults (CONTRACT.md sections 2-4).

Run-time knobs come from the environment through :func:`requests_per_second`, read when
a run starts, never at import time.
"""

from __future__ import annotations

import datetime as dt

from sync_pipelines.settings import env_number

SOURCE = "cars"  # the sync_rejects / sync_state source name
ENCAR = "encar"
KBCHACHACHA = "kbchachacha"
VENDORS = (ENCAR, KBCHACHACHA)

CARS_TABLE = "cars"
CARS_ARCHIVE_TABLE = "cars_archive"

SALE_STATUSES = ("active", "reserved", "sold")

# Korean local time (no DST) of the vendors' timestamps.
KST = dt.timezone(dt.timedelta(hours=9), "KST")

# -- Encar ------------------------------------------------------------------------------------
# Real vendor hosts (ENCAR_API_URL / KBCHACHACHA_URL unset); the sandbox serves the same paths.
ENCAR_DEFAULT_URL = "https://api.encar.com"
KBCHACHACHA_DEFAULT_URL = "https://www.kbchachacha.com"
ENCAR_LIST_PATH = "/search/car/list/general"
ENCAR_LIST_QUERY = "(And.Hidden.N._.CarType.A.)"  # every visible car, domestic and imported
ENCAR_SORT = "ModifiedDate"
ENCAR_DETAIL_PATH = "/v1/readside/vehicle/{id}"
ENCAR_PAGE_SIZE = 50
ENCAR_PHOTO_BASE = "https://ci.encar.com"
ENCAR_CAR_URL = "https://fem.encar.com/cars/detail/{id}"
# Public scrapers pause 0.3-1.5 s between calls; be at least as polite.
ENCAR_DEFAULT_REQUESTS_PER_SECOND = 2.0

# -- KB Chachacha -------------------------------------------------------------------------------
KB_LIST_PATH = "/public/search/list.empty"
KB_LIST_SORT = "-orderDate"
KB_CAR_STATUS_PATH = "/public/car/common/recent/car/list.json"
KB_DEFAULT_REQUESTS_PER_SECOND = 1.0

# -- sync defaults ------------------------------------------------------------------------------
DEFAULT_MAX_PAGES = 500
DEFAULT_INCREMENTAL_PAGES = 1
# Listing pages land together, whole pages, in one transaction of about this many cars: a
# transaction per 50-car page made a full sync mostly round trips; 5,000 cost 1.22x the memory
# at 25,000 cars against 2,500 (2,000: 1.08x; bench/README.md).
DEFAULT_LISTING_BATCH_ROWS = 2_000
# Per-car round-robin budget per run and source, instead of 25,000 detail calls every 6 h:
# worst case ceil(cars / budget) runs to see a sale (README "How long until a sale is seen").
DEFAULT_STATUS_CHECKS_PER_RUN = 300
# Mass-"sold" guard (README "Bad input"): from this many answers, mostly sold, the run asks
# MASS_SOLD_CANARIES listed cars and stops if they "are sold" too (config overrides it).
MASS_SOLD_MIN_ANSWERS = 20
MASS_SOLD_CANARIES = 5
# last_seen_at is refreshed at most this often for an unchanged car: a re-run that finds
# nothing new writes nothing (one write per car per day instead of per run).
LAST_SEEN_RESOLUTION = dt.timedelta(hours=24)
DEFAULT_ARCHIVE_AFTER_DAYS = 7
# Freshness: the schedule runs every 6 hours; allow a grace period for a slow run.
SCHEDULE_PERIOD = dt.timedelta(hours=6)
FRESHNESS_GRACE = dt.timedelta(minutes=30)
FRESHNESS_WINDOW = SCHEDULE_PERIOD + FRESHNESS_GRACE  # the check fails, the policy warns (one tick missed)
# The FreshnessPolicy's FAIL must come after its WARN (Dagster requires warn < fail): two
# ticks missed, plus the same grace.
FRESHNESS_FAIL_WINDOW = 2 * SCHEDULE_PERIOD + FRESHNESS_GRACE

# Plausible values (the asset check flags anything outside).
PRICE_KRW_RANGE = (100_000, 5_000_000_000)  # 10만원 .. 50억원
MILEAGE_KM_RANGE = (0, 2_000_000)
YEAR_RANGE = (1950, 2100)


def requests_per_second(vendor: str, default: float) -> float | None:
    """Politeness limit toward a vendor: ``ENCAR_REQUESTS_PER_SECOND`` /
    ``KBCHACHACHA_REQUESTS_PER_SECOND``; ``0`` means unthrottled (the loopback sandbox)."""
    value = env_number(f"{vendor.upper()}_REQUESTS_PER_SECOND", default)
    return value if value > 0 else None
