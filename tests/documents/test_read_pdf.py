"""``read_pdf``, the gate before a PDF is signed: damaged files are refused with
``pdf-unreadable`` (or another ``InputError``), never another exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsign.documents.signing import read_pdf
from medsign.errors import InputError


@pytest.fixture
def fixtures(corpora: Path) -> Path:
    return corpora / "pyhanko-fixtures"


def test_the_damage_the_inspection_tripped_over(fixtures: Path) -> None:
    damaged = bytearray((fixtures / "minimal-two-fields-signed-twice.pdf").read_bytes())
    damaged[2496] = 0
    with pytest.raises(InputError) as caught:
        read_pdf(bytes(damaged))
    assert caught.value.code == "pdf-unreadable"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_files_are_read_or_refused(fixtures: Path, data: Any) -> None:
    name = data.draw(
        st.sampled_from(["minimal-with-field.pdf", "minimal-two-fields-signed-twice.pdf"])
    )
    damaged = bytearray((fixtures / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del damaged[data.draw(st.integers(1, len(damaged))) :]
    try:
        info = read_pdf(bytes(damaged))
    except InputError:
        return
    assert info.pages and all(f.name for f in info.fields)
