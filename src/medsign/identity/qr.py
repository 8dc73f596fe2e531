"""QR codes of one-time URLs (segno), for a phone camera to open the enrolment page."""

from __future__ import annotations

import io

import segno

from medsign.errors import InputError

MAX_URL = 1000


def _qr(data: str) -> segno.QRCode:
    if not data or len(data) > MAX_URL:
        raise InputError("QR content must be 1 to 1000 characters")
    # Level M survives a smudged screen or print and keeps a 100-character URL at version 5.
    return segno.make_qr(data, error="m")


def qr_svg(data: str, *, scale: int = 4) -> bytes:
    buffer = io.BytesIO()
    _qr(data).save(buffer, kind="svg", scale=scale, border=4, xmldecl=True)
    return buffer.getvalue()


def qr_png(data: str, *, scale: int = 6) -> bytes:
    buffer = io.BytesIO()
    _qr(data).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()
