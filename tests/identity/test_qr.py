from __future__ import annotations

import pytest

from medsign.errors import InputError
from medsign.identity.qr import qr_png, qr_svg

URL = "https://sign.example.org/m/enrol/" + "ab" * 32


def test_svg_and_png() -> None:
    svg = qr_svg(URL)
    assert svg.startswith(b"<?xml") and b"<svg" in svg
    png = qr_png(URL)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_content_limits() -> None:
    for bad in ("", "x" * 1001):
        with pytest.raises(InputError):
            qr_svg(bad)
