"""Odoo under every vendor fault of the matrix (``cases.py``), on SQLite (and Postgres under `make faults`)."""

from __future__ import annotations

import pytest

from sync_pipelines_tests.faults.cases import VENDOR_FAULTS, check_fault

pytestmark = pytest.mark.timeout(180)

FAULTS = [*VENDOR_FAULTS, "expired_token", "revoked_token"]  # expired: Odoo's SessionExpiredException


@pytest.mark.parametrize("fault", FAULTS)
def test_odoo_fault_leaves_the_destination_equal_to_the_truth(fault, make_source, short_read_timeout, tally):
    check_fault(make_source("odoo"), fault, tally)
