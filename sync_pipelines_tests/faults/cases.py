"""The vendor-fault cases, shared by one test module per source (so ``--dist loadfile``
spreads the sources over workers). Each case switches one fault on, runs the source's job,
then runs it once more clean; afterwards the destination equals the sandbox's truth, no row
lost or stored twice. The README's fault suite section maps every cell, n/a ones included.

What the run the fault hits must do depends on the fault:

- ``rides_out`` (429, 503, reset, read timeout, expired token): that run succeeds and
  already lands everything;
- ``fails_cleanly`` (malformed page, HTML): that run lands everything or fails with an error
  that names the bad answer, losing nothing that was there;
- ``sets_aside`` (wrong-typed record): that run lands all but the bad record;
- ``shifts`` (records inserted ahead mid-listing): that run loses nothing that was there,
  the newcomers may wait for the next run;
- ``refused`` (revoked credentials): that run fails clearly and deletes nothing; once the
  credentials are restored the next run lands everything.
"""

from __future__ import annotations

import re

from sync_pipelines_tests.faults.sources import FaultSource, compare

# fault name -> (sandbox fault kind, options), switched on each of the source's listings
VENDOR_FAULTS = {
    "429_retry_after": ("status", {"status": 429, "retry_after": 0.1, "times": 2, "skip": 1}),
    "503": ("status", {"status": 503, "retry_after": 0, "times": 2, "skip": 1}),
    "connection_reset": ("reset", {"times": 2, "skip": 1}),
    "read_timeout": ("slow", {"delay": 1.0, "times": 1, "skip": 1}),
    "malformed_page": ("malformed", {"times": 1, "skip": 1}),
    "html_instead_of_json": ("html", {"times": 1, "skip": 1}),
    "wrong_typed_record": ("wrong_type", {"times": 1, "skip": 1}),
    "pagination_shift": ("shift", {"times": 1, "skip": 1, "records": 3}),
}
EXPECTED = {
    "429_retry_after": "rides_out", "503": "rides_out", "connection_reset": "rides_out",
    "read_timeout": "rides_out", "expired_token": "rides_out",
    "malformed_page": "fails_cleanly", "html_instead_of_json": "fails_cleanly",
    "wrong_typed_record": "sets_aside", "pagination_shift": "shifts", "revoked_token": "refused",
}
# what a clean failure says, per fault: the bad answer, named
FAILURE_SAYS = {
    "malformed_page": r"malformed|not a car list",
    "html_instead_of_json": r"malformed JSON body .*<!DOCTYPE html>|not a car list",
    "revoked_token": r"401|403|denied|revoked|Forbidden|reauthori|invalid_grant",
}


def switch_on(source: FaultSource, fault: str) -> None:
    if fault == "expired_token":
        source.expire_credentials()
    elif fault == "revoked_token":
        source.revoke_credentials()
    else:
        kind, options = VENDOR_FAULTS[fault]
        source.add_fault(kind, **options)


def check_fault(source: FaultSource, fault: str, tally) -> None:
    """One matrix cell: the fault, the run it hits, a clean run; the destination against the truth.

    The clean run is the failed run's retry (same mode) if the fault failed it, else the next
    scheduled (incremental) run."""
    source.setup()
    expected = EXPECTED[fault]
    if expected == "refused":  # something to lose first
        assert source.run(source.first_mode).success
        source.sandbox.evolve(1)
    before_keys, before_rows = source.truth(), source.snapshot()
    switch_on(source, fault)

    mode = source.first_mode if expected != "refused" else "incremental"
    faulted = source.run(mode)
    after = source.compare()
    if fault in VENDOR_FAULTS:
        assert any(f["hits"] for f in source.sandbox.faults.list()), "the fault never hit: the case proves nothing"
    if expected != "refused":  # a refused run leaves the rows the vendor has changed since stale
        assert not after.duplicated and not after.extra, after
    if expected in ("rides_out", "sets_aside", "shifts"):
        assert faulted.success, faulted.failure
    if expected == "rides_out":
        assert after.equal, after
    elif expected == "refused" or not faulted.success:
        assert not faulted.success or expected != "refused", "a run with revoked credentials succeeded"
        assert re.search(FAILURE_SAYS[fault], faulted.failure), faulted.failure[:2000]
        assert set(before_rows) <= set(source.snapshot()), "a refused or failed run deleted rows"
    elif expected == "sets_aside":
        assert source.warehouse.rejects(source.name), "no record was set aside: the case proves nothing"
        assert len(after.lost) <= 1, after
    elif expected == "shifts":
        assert not compare(before_keys, source.snapshot()).lost, after

    source.sandbox.faults.clear()
    if expected == "refused":
        source.restore_credentials()
    again = source.run("incremental" if faulted.success else mode)
    final = source.compare()
    tally(final)
    assert again.success, again.failure
    assert final.equal, final
