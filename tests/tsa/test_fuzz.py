"""Property tests: ``respond`` answers every input with a well-formed TimeStampResp and never
raises; a granted answer is only ever given to a request that is valid."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tsa.conftest import TimeStampResp
from tests.tsa.test_authority import request

VALID = request(cert_req=True)
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check(runtime: Any, data: bytes) -> str:
    response = TimeStampResp.load(runtime.tsa.respond(data), strict=True)
    outcome = response["status"]["status"].native
    assert outcome in ("granted", "rejection")
    if outcome == "rejection":
        assert len(response["status"]["fail_info"].native) == 1
    return str(outcome)


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(runtime: Any, data: bytes) -> None:
    assert check(runtime, data) == "rejection" or data.startswith(b"\x30")


@FUZZ
@given(position=st.integers(0, len(VALID) - 1), value=st.integers(0, 255))
def test_one_byte_changed(runtime: Any, position: int, value: int) -> None:
    check(runtime, VALID[:position] + bytes([value]) + VALID[position + 1 :])


@FUZZ
@given(cut=st.integers(0, len(VALID)), tail=st.binary(max_size=8))
def test_truncated_or_extended(runtime: Any, cut: int, tail: bytes) -> None:
    outcome = check(runtime, VALID[:cut] + tail)
    if cut < len(VALID) or tail:
        assert outcome == "rejection"
