"""Golioth under every vendor fault of the matrix (``cases.py``), on SQLite (and Postgres under `make faults`)."""

from __future__ import annotations

import pytest

from sync_pipelines_tests.faults.cases import VENDOR_FAULTS, check_fault

pytestmark = pytest.mark.timeout(180)

# n/a: expired_token (a project API key does not expire; a rotated key is revoked_token)
FAULTS = [*VENDOR_FAULTS, "revoked_token"]


@pytest.mark.parametrize("fault", FAULTS)
def test_golioth_fault_leaves_the_destination_equal_to_the_truth(fault, make_source, short_read_timeout, tally):
    check_fault(make_source("golioth"), fault, tally)
