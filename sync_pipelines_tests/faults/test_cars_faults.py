"""Cars under every vendor fault of the matrix (``cases.py``), on SQLite (and Postgres under `make faults`)."""

from __future__ import annotations

import pytest

from sync_pipelines_tests.faults.cases import VENDOR_FAULTS, check_fault

pytestmark = pytest.mark.timeout(180)

# n/a: KB and Encar are public listings; the only credential is KB's session cookie (expired_token)
FAULTS = [*VENDOR_FAULTS, "expired_token"]


@pytest.mark.parametrize("fault", FAULTS)
def test_cars_fault_leaves_the_destination_equal_to_the_truth(fault, make_source, short_read_timeout, tally):
    check_fault(make_source("cars"), fault, tally)
