"""RFC 3161 time-stamping: the authority (``TimestampAuthority``), its clock guard, and
reading/verifying tokens (``parse_token``, ``verify_token``)."""

from medsign.tsa.authority import (
    DEFAULT_POLICY_OID,
    SUPPORTED_HASHES,
    SerialAllocator,
    TimestampAuthority,
    TSACredentials,
)
from medsign.tsa.clockguard import ClockGuard, ClockReading, fixed_reference
from medsign.tsa.token import TokenInfo, parse_token, verify_token

__all__ = [
    "DEFAULT_POLICY_OID",
    "SUPPORTED_HASHES",
    "ClockGuard",
    "ClockReading",
    "SerialAllocator",
    "TSACredentials",
    "TimestampAuthority",
    "TokenInfo",
    "fixed_reference",
    "parse_token",
    "verify_token",
]
