"""The status rules, on synthetic evidence (the database and CRL sources are covered in
test_data.py on real material)."""

from __future__ import annotations

import datetime as dt

import pytest

from medsign.verify.report import CheckFailure, Indication, SubIndication, TimeSource
from medsign.verify.status import (
    HOLD,
    REVOKED,
    StatusEvidence,
    Suspension,
    assess_status,
    suspensions_from_history,
)

T0 = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=10)


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def evidence(*suspensions: Suspension, complete_at: dt.datetime = NOW) -> StatusEvidence:
    return StatusEvidence("test", complete_at, suspensions)


REVOKED_AT_5 = Suspension(REVOKED, h(5), None, "keyCompromise")
HELD_5_TO_7 = Suspension(HOLD, h(5), h(7))
HELD_SINCE_5 = Suspension(HOLD, h(5), None)

TS, CLAIMED, NONE = TimeSource.TIMESTAMP, TimeSource.CLAIMED, TimeSource.NONE
PASS = (Indication.PASSED, None)
FAILED_REVOKED = (Indication.FAILED, SubIndication.REVOKED)
NO_POE = (Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE)
ON_HOLD = (Indication.FAILED, SubIndication.CERTIFICATE_ON_HOLD)
TRY_LATER = (Indication.INDETERMINATE, SubIndication.TRY_LATER)


@pytest.mark.parametrize(
    ("suspensions", "signed", "source", "expected"),
    [
        ((), h(1), TS, PASS),
        ((), None, NONE, PASS),
        ((REVOKED_AT_5,), h(6), TS, FAILED_REVOKED),
        ((REVOKED_AT_5,), h(6), CLAIMED, FAILED_REVOKED),
        ((REVOKED_AT_5,), h(5), TS, FAILED_REVOKED),
        ((REVOKED_AT_5,), h(4), TS, PASS),
        ((REVOKED_AT_5,), h(4), CLAIMED, NO_POE),
        ((REVOKED_AT_5,), None, NONE, NO_POE),
        ((HELD_5_TO_7,), h(6), TS, ON_HOLD),
        ((HELD_5_TO_7,), h(6), CLAIMED, ON_HOLD),
        ((HELD_5_TO_7,), h(7), CLAIMED, PASS),
        ((HELD_5_TO_7,), h(4), CLAIMED, PASS),
        ((HELD_SINCE_5,), h(6), TS, ON_HOLD),
        ((HELD_SINCE_5,), h(4), TS, PASS),
        ((HELD_SINCE_5,), h(4), CLAIMED, TRY_LATER),
        ((HELD_SINCE_5,), None, NONE, TRY_LATER),
        ((Suspension(HOLD, h(2), h(5)), REVOKED_AT_5), h(3), TS, ON_HOLD),
        ((Suspension(HOLD, h(2), h(5)), REVOKED_AT_5), h(1), TS, PASS),
    ],
)
def test_rules(
    suspensions: tuple[Suspension, ...],
    signed: dt.datetime | None,
    source: TimeSource,
    expected: tuple[Indication, SubIndication | None],
) -> None:
    try:
        assess_status(evidence(*suspensions), signed, source, NOW)
        outcome: tuple[Indication, SubIndication | None] = PASS
    except CheckFailure as exc:
        outcome = (exc.indication, exc.sub_indication)
    assert outcome == expected


def test_passing_after_a_later_revocation_leaves_a_note() -> None:
    _, notes = assess_status(evidence(REVOKED_AT_5), h(4), TS, NOW)
    assert notes and "after the timestamped signing time" in notes[0]


def test_no_evidence_or_stale_evidence_is_try_later() -> None:
    with pytest.raises(CheckFailure) as missing:
        assess_status(None, h(1), TS, NOW)
    assert missing.value.sub_indication is SubIndication.TRY_LATER
    with pytest.raises(CheckFailure) as stale:
        assess_status(evidence(complete_at=h(1)), h(2), TS, NOW)
    assert stale.value.sub_indication is SubIndication.TRY_LATER


def test_history_to_intervals() -> None:
    history = [
        ("issue", None, h(0)),
        ("hold", "certificateHold", h(1)),
        ("release", None, h(2)),
        ("hold", "certificateHold", h(3)),
        ("revoke", "keyCompromise", h(4)),
    ]
    assert suspensions_from_history(history) == [
        Suspension(HOLD, h(1), h(2), "certificateHold"),
        Suspension(HOLD, h(3), h(4), "certificateHold"),
        Suspension(REVOKED, h(4), None, "keyCompromise"),
    ]
    assert suspensions_from_history([("hold", None, h(1))]) == [
        Suspension(HOLD, h(1), None, "certificateHold")
    ]
