"""Property tests for the ID-number and phone validators."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medsign.errors import InputError
from medsign.identity.staff import (
    mask_national_id,
    mask_phone,
    national_id_check_char,
    normalise_national_id,
    normalise_phone,
)

regions = st.integers(min_value=110000, max_value=829999)
births = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31))
sequences = st.integers(min_value=0, max_value=999)


@st.composite
def national_ids(draw: st.DrawFn) -> str:
    first17 = f"{draw(regions)}{draw(births):%Y%m%d}{draw(sequences):03d}"
    return first17 + national_id_check_char(first17)


def test_known_vectors() -> None:
    # The GB 11643-1999 worked example, whose check character is X.
    assert normalise_national_id("11010519491231002X") == "11010519491231002X"
    assert national_id_check_char("11010519491231002") == "X"


@given(national_ids())
def test_valid_ids_are_accepted_and_masked(value: str) -> None:
    assert normalise_national_id(value) == value
    assert normalise_national_id(f" {value.lower()} ") == value
    masked = mask_national_id(value)
    assert len(masked) == 18 and masked[4:14] == "*" * 10
    assert masked[:4] == value[:4] and masked[-4:] == value[-4:]


@given(national_ids(), st.integers(min_value=0, max_value=17), st.sampled_from("0123456789X"))
def test_any_single_substitution_is_refused(value: str, position: int, replacement: str) -> None:
    if value[position] == replacement:
        return
    mutated = value[:position] + replacement + value[position + 1 :]
    # MOD 11-2 detects every single-character error, so only a malformed shape or a wrong
    # date could be reported instead of a check failure: never acceptance.
    with pytest.raises(InputError):
        normalise_national_id(mutated)


@given(national_ids(), st.integers(min_value=0, max_value=15))
def test_adjacent_transpositions_are_refused(value: str, position: int) -> None:
    a, b = value[position], value[position + 1]
    if a == b:
        return
    swapped = value[:position] + b + a + value[position + 2 :]
    with pytest.raises(InputError):
        normalise_national_id(swapped)


@given(st.text(max_size=30))
def test_arbitrary_text_never_crashes(value: str) -> None:
    try:
        result = normalise_national_id(value)
    except InputError as exc:
        if len(value.strip()) >= 6:
            assert value.strip() not in exc.public_message()
    else:
        assert len(result) == 18


def test_impossible_dates_are_refused() -> None:
    for birth in ("19900230", "18991231", "19901301"):
        first17 = f"110101{birth}001"
        with pytest.raises(InputError):
            normalise_national_id(first17 + national_id_check_char(first17))


phones = st.builds(
    lambda second, rest: f"1{second}{rest:09d}",
    st.sampled_from("3456789"),
    st.integers(min_value=0, max_value=999_999_999),
)


@given(phones, st.sampled_from(["", "+86", "0086", "86", "+86 "]))
def test_valid_phones_normalise(phone: str, prefix: str) -> None:
    formatted = f"{phone[:3]}-{phone[3:7]} {phone[7:]}"
    assert normalise_phone(prefix + phone) == phone
    assert normalise_phone(prefix + formatted) == phone
    assert mask_phone(phone) == phone[:3] + "****" + phone[-4:]


@given(st.text(max_size=20))
def test_arbitrary_phone_text(value: str) -> None:
    try:
        result = normalise_phone(value)
    except InputError:
        return
    assert len(result) == 11 and result.isascii() and result.isdigit()
    assert result[0] == "1" and result[1] in "3456789"


@pytest.mark.parametrize(
    "value", ["12000000000", "1380000000", "138000000000", "+1 13800000000", "138ab000000", ""]
)
def test_bad_phones(value: str) -> None:
    with pytest.raises(InputError):
        normalise_phone(value)
