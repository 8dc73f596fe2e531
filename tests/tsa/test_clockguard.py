"""The clock guard: refusal, strict and lenient handling of an unknown clock, alerts."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest

from medsign.errors import ClockUntrustedError
from medsign.evidence import list_events
from medsign.tsa import ClockGuard, ClockReading, fixed_reference
from medsign.tsa.clockguard import (
    kernel_reference,
    parse_chrony_tracking,
    reference_from_setting,
)
from tests.tsa.conftest import TimeStampResp, TSAFactory
from tests.tsa.test_authority import request

CHRONY_SYNCED = (
    "A29FC87B,ntp1.example.net,3,1763884800.479934812,-0.000010802,-0.000006592,"
    "0.000027048,-11.421,-0.001,0.027,0.015745219,0.000797686,1031.7,Normal\n"
)
CHRONY_UNSYNCED = (
    "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,"
    "1.000000000,1.000000000,0.0,Not synchronised\n"
)


def test_parse_chrony_tracking() -> None:
    reading = parse_chrony_tracking(CHRONY_SYNCED)
    # |offset| + root delay / 2 + root dispersion, in ms.
    assert reading.offset_ms == pytest.approx((0.000010802 + 0.015745219 / 2 + 0.000797686) * 1000)
    assert reading.source == "chrony"
    assert parse_chrony_tracking(CHRONY_UNSYNCED).offset_ms is None
    assert parse_chrony_tracking("garbage").offset_ms is None
    assert parse_chrony_tracking("").offset_ms is None


def test_kernel_reference_reads_without_failing() -> None:
    reading = kernel_reference()
    assert reading.source == "kernel"
    assert reading.offset_ms is None or reading.offset_ms >= 0


def test_reference_settings() -> None:
    assert reference_from_setting("none") is None
    for name in ("auto", "chrony", "kernel"):
        assert callable(reference_from_setting(name))


def test_guard_decisions() -> None:
    assert ClockGuard(fixed_reference(10.0), max_drift_ms=500).check() == ClockReading(
        10.0, "fixed"
    )
    with pytest.raises(ClockUntrustedError):
        ClockGuard(fixed_reference(501.0), max_drift_ms=500).check()
    assert ClockGuard(fixed_reference(None), max_drift_ms=500).check() == ClockReading(
        None, "fixed"
    )
    with pytest.raises(ClockUntrustedError):
        ClockGuard(fixed_reference(None), max_drift_ms=500, strict=True).check()
    assert ClockGuard(None, max_drift_ms=500, strict=True).check() is None


def test_guard_measures_once_per_interval() -> None:
    calls: list[float] = []
    offset = [5.0]
    now = [0.0]

    def reference() -> ClockReading:
        calls.append(now[0])
        return ClockReading(offset[0], "test")

    guard = ClockGuard(reference, max_drift_ms=100, recheck_seconds=10, monotonic=lambda: now[0])
    for _ in range(50):
        guard.check()
    assert len(calls) == 1
    offset[0] = 1000.0
    now[0] = 5.0
    guard.check()  # still the old reading
    now[0] = 11.0
    with pytest.raises(ClockUntrustedError):
        guard.check()
    assert len(calls) == 2


def test_broken_reference_is_unknown() -> None:
    def broken() -> ClockReading:
        raise RuntimeError("boom")

    assert ClockGuard(broken, max_drift_ms=100).check() == ClockReading(
        None, "reference", "RuntimeError"
    )
    with pytest.raises(ClockUntrustedError):
        ClockGuard(broken, max_drift_ms=100, strict=True).check()


def test_tsa_refuses_with_alert(
    runtime: Any, make_tsa: TSAFactory, caplog: pytest.LogCaptureFixture
) -> None:
    offset = [2000.0]
    guard = ClockGuard(
        lambda: ClockReading(offset[0], "test-reference"), max_drift_ms=500, recheck_seconds=0
    )
    tsa = make_tsa(guard=guard)
    before = len(list_events(runtime.database, event_type="tsa:refuse"))
    with caplog.at_level(logging.ERROR):
        response = TimeStampResp.load(tsa.respond(request()))
    assert response["status"]["status"].native == "rejection"
    assert response["status"]["fail_info"].native == {"time_not_available"}
    assert any(
        r.levelno == logging.ERROR and "refuses to stamp" in r.getMessage() for r in caplog.records
    )
    events = list_events(runtime.database, event_type="tsa:refuse")
    assert len(events) == before + 1
    record = events[-1].record
    assert record["source"] == "test-reference"
    assert record["offset_us"] == 2_000_000
    assert "exceeds" in record["reason"]
    with pytest.raises(ClockUntrustedError):
        tsa.stamp(hashlib.sha256(b"x").digest(), "sha256")
    # Back within bounds: stamping resumes.
    offset[0] = 1.0
    assert TimeStampResp.load(tsa.respond(request()))["status"]["status"].native == "granted"


def test_unknown_clock_lenient_and_strict(
    make_tsa: TSAFactory, caplog: pytest.LogCaptureFixture
) -> None:
    lenient = make_tsa(guard=ClockGuard(fixed_reference(None), max_drift_ms=500))
    with caplog.at_level(logging.WARNING):
        assert TimeStampResp.load(lenient.respond(request()))["status"]["status"].native == (
            "granted"
        )
    assert any("clock error unknown" in r.getMessage() for r in caplog.records)
    strict = make_tsa(guard=ClockGuard(fixed_reference(None), max_drift_ms=500, strict=True))
    status = TimeStampResp.load(strict.respond(request()))["status"]
    assert status["fail_info"].native == {"time_not_available"}


def test_drift_may_not_exceed_stated_accuracy(tmp_path: Any) -> None:
    from medsign.config import load_settings
    from medsign.errors import ConfigurationError
    from medsign.runtime import _timestamp_authority

    settings = load_settings(tmp_path, tsa_accuracy_ms=100, tsa_max_drift_ms=500)
    with pytest.raises(ConfigurationError, match="tsa_max_drift_ms"):
        _timestamp_authority(settings, None, None, None, None)  # type: ignore[arg-type]
