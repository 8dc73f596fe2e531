"""The clock guard: a TSA must not state a time it knows to be wrong.

A *reference* measures how far the system clock may be from true time and returns a
``ClockReading``: a bound on the error in milliseconds, or ``None`` when it cannot tell.
``ClockGuard.check`` compares the newest reading with ``max_drift_ms``:

* within the bound → stamp;
* beyond it → refuse (``ClockUntrustedError``; the TSA answers ``timeNotAvailable``);
* unknown → stamp with a warning, or refuse in strict mode.

Readings are cached for ``recheck_seconds`` so a burst of requests costs one measurement, and
an alert (the TSA logs at ERROR and writes a ``tsa:refuse`` evidence event) is raised once per
measurement that refuses, not once per request: a flood of requests during an outage must not
become a flood of evidence rows.

References:

* ``chrony_reference`` parses ``chronyc -c tracking``. The bound is
  |system time offset| + root delay / 2 + root dispersion: chrony's own estimate of how far
  the clock can be from the reference clock at the root of its NTP tree (RFC 5905's root
  distance). "Not synchronised" is unknown.
* ``kernel_reference`` reads the kernel's NTP state with ``adjtimex(2)`` (modes = 0, read
  only): when the STA_UNSYNC flag is clear — what ``timedatectl`` reports as "System clock
  synchronized: yes" — the kernel's ``maxerror`` is the bound; otherwise unknown.
* ``fixed_reference`` returns a given offset: for tests and for sites that measure elsewhere.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from medsign.errors import ClockUntrustedError, ConfigurationError

__all__ = [
    "ClockGuard",
    "ClockReading",
    "ClockReference",
    "chrony_reference",
    "fixed_reference",
    "kernel_reference",
    "parse_chrony_tracking",
    "reference_from_setting",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClockReading:
    """A bound on the clock's error (ms), or ``None`` when it cannot be measured."""

    offset_ms: float | None
    source: str
    detail: str = ""


ClockReference = Callable[[], ClockReading]


def parse_chrony_tracking(text: str) -> ClockReading:
    """Read the CSV form of ``chronyc -c tracking``.

    Fields: reference id, name, stratum, ref time, system time offset (s), last offset,
    RMS offset, frequency, residual frequency, skew, root delay (s), root dispersion (s),
    update interval, leap status.
    """
    rows = list(csv.reader(text.strip().splitlines()))
    if len(rows) != 1 or len(rows[0]) < 14:
        return ClockReading(None, "chrony", "unexpected chronyc output")
    fields = rows[0]
    leap = fields[13].strip()
    if leap.lower().startswith("not synchronised"):
        return ClockReading(None, "chrony", "chrony is not synchronised")
    try:
        system = abs(float(fields[4]))
        root_delay = abs(float(fields[10]))
        root_dispersion = abs(float(fields[11]))
    except ValueError:
        return ClockReading(None, "chrony", "unexpected chronyc output")
    bound = (system + root_delay / 2 + root_dispersion) * 1000.0
    return ClockReading(bound, "chrony", f"stratum {fields[2]}, leap {leap}")


def chrony_reference(
    command: tuple[str, ...] = ("chronyc", "-c", "tracking"), timeout: float = 2.0
) -> ClockReading:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return ClockReading(None, "chrony", f"chronyc failed: {exc.__class__.__name__}")
    if proc.returncode != 0:
        return ClockReading(None, "chrony", f"chronyc exited {proc.returncode}")
    return parse_chrony_tracking(proc.stdout)


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (Linux, 64-bit longs); the trailing padding is part of
    # the kernel ABI and must be there or adjtimex writes past the end.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


def kernel_reference() -> ClockReading:
    if not sys.platform.startswith("linux"):
        return ClockReading(None, "kernel", "adjtimex is Linux-only")
    name = ctypes.util.find_library("c")
    if name is None:
        return ClockReading(None, "kernel", "libc not found")
    libc = ctypes.CDLL(name, use_errno=True)
    state = _Timex()  # modes = 0: read, never adjust
    result = libc.adjtimex(ctypes.byref(state))
    if result < 0:
        return ClockReading(None, "kernel", f"adjtimex failed (errno {ctypes.get_errno()})")
    if result == _TIME_ERROR or state.status & _STA_UNSYNC:
        return ClockReading(None, "kernel", "the kernel clock is not NTP-synchronised")
    return ClockReading(state.maxerror / 1000.0, "kernel", f"esterror {state.esterror} us")


def fixed_reference(offset_ms: float | None, source: str = "fixed") -> ClockReference:
    def reference() -> ClockReading:
        return ClockReading(offset_ms, source)

    return reference


def _auto_reference() -> ClockReading:
    if shutil.which("chronyc") is not None:
        reading = chrony_reference()
        if reading.offset_ms is not None:
            return reading
    return kernel_reference()


def reference_from_setting(name: str) -> ClockReference | None:
    """The reference a ``tsa_reference`` setting names; ``None`` for "none" (no check)."""
    references: dict[str, ClockReference | None] = {
        "auto": _auto_reference,
        "chrony": chrony_reference,
        "kernel": kernel_reference,
        "none": None,
    }
    try:
        return references[name]
    except KeyError:
        raise ConfigurationError(f"unknown tsa_reference {name!r}") from None


Alert = Callable[[ClockReading, str], None]


class ClockGuard:
    """Decides, from the newest reading of a reference, whether the TSA may stamp now."""

    def __init__(
        self,
        reference: ClockReference | None,
        *,
        max_drift_ms: float,
        strict: bool = False,
        recheck_seconds: float = 10.0,
        alert: Alert | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_drift_ms <= 0:
            raise ConfigurationError("the maximum clock drift must be positive")
        self._reference = reference
        self.max_drift_ms = max_drift_ms
        self.strict = strict
        self._recheck = recheck_seconds
        self._alert = alert
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._reading: ClockReading | None = None
        self._refusal: str | None = None
        self._measured_at = float("-inf")
        if reference is None:
            log.warning("the TSA clock is not checked against any reference (tsa_reference=none)")

    def set_alert(self, alert: Alert | None) -> None:
        self._alert = alert

    def invalidate(self) -> None:
        """Measure again on the next check (after the reference or the clock changed)."""
        with self._lock:
            self._measured_at = float("-inf")

    def _judge(self, reading: ClockReading) -> str | None:
        if reading.offset_ms is None:
            if self.strict:
                return f"clock error unknown ({reading.source}: {reading.detail})"
            return None
        if reading.offset_ms > self.max_drift_ms:
            return (
                f"clock error {reading.offset_ms:.1f} ms exceeds {self.max_drift_ms:.0f} ms"
                f" ({reading.source})"
            )
        return None

    def check(self) -> ClockReading | None:
        """The reading the decision rests on; raises ``ClockUntrustedError`` to refuse."""
        if self._reference is None:
            return None
        now = self._monotonic()
        refusal: str | None
        if now - self._measured_at < self._recheck:
            reading, refusal = self._reading, self._refusal
        else:
            with self._lock:
                if now - self._measured_at >= self._recheck:
                    try:
                        fresh = self._reference()
                    except Exception as exc:  # a broken reference is "unknown", never a crash
                        fresh = ClockReading(None, "reference", exc.__class__.__name__)
                    self._reading = fresh
                    self._refusal = self._judge(fresh)
                    self._measured_at = now
                    self._report(fresh, self._refusal)
                reading, refusal = self._reading, self._refusal
        if refusal is not None:
            raise ClockUntrustedError(refusal, public="the time source is not trusted")
        return reading

    def _report(self, reading: ClockReading, refusal: str | None) -> None:
        if refusal is not None:
            log.error("TSA refuses to stamp: %s", refusal)
            if self._alert is not None:
                try:
                    self._alert(reading, refusal)
                except Exception:  # the refusal stands even when the alert cannot be stored
                    log.exception("could not record the TSA clock alert")
        elif reading.offset_ms is None:
            log.warning(
                "TSA clock error unknown (%s: %s); stamping anyway (tsa_strict_clock is off)",
                reading.source,
                reading.detail,
            )
