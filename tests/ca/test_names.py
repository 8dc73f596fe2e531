"""Subject names and serial numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medsign.ca.names import (
    MAX_SERIAL_OCTETS,
    new_serial,
    parse_serial,
    parse_subject,
    parse_subject_pairs,
    render_name,
    serial_hex,
)
from medsign.errors import InputError


def test_rfc4514_string_lists_most_specific_first() -> None:
    name = parse_subject("CN=张三,serialNumber=E1024,O=示例医院,C=CN")
    rdns = [rdn[0] for rdn in name.chosen]
    assert [atv["type"].native for atv in rdns] == [
        "country_name",
        "organization_name",
        "serial_number",
        "common_name",
    ]
    assert render_name(name) == "CN=张三,serialNumber=E1024,O=示例医院,C=CN"


def test_string_types_follow_x520() -> None:
    name = parse_subject({"CN": "张三", "C": "CN", "serialNumber": "E1", "O": "示例医院"})
    tags = {rdn[0]["type"].native: rdn[0]["value"].dump()[0] for rdn in name.chosen}
    printable, utf8 = 0x13, 0x0C
    assert tags == {
        "country_name": printable,
        "serial_number": printable,
        "common_name": utf8,
        "organization_name": utf8,
    }


def test_dict_input_is_ordered_canonically() -> None:
    name = parse_subject({"CN": "Dr Li", "O": "H", "C": "CN", "OU": "Cardiology"})
    assert render_name(name) == "CN=Dr Li,OU=Cardiology,O=H,C=CN"


def test_openssl_slash_form() -> None:
    assert render_name(parse_subject("/C=CN/O=示例医院/CN=李四")) == "CN=李四,O=示例医院,C=CN"


def test_escapes_round_trip() -> None:
    name = parse_subject({"CN": 'Li, "Junior" + co', "C": "CN"})
    text = render_name(name)
    assert text == 'CN=Li\\, \\"Junior\\" \\+ co,C=CN'
    assert render_name(parse_subject(text)) == text


def test_hex_escaped_utf8() -> None:
    assert parse_subject_pairs("CN=\\E5\\BC\\A0") == [("CN", "张")]


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("CN", "not of the form"),
        ("XX=1", "XX"),
        ("CN=a+OU=b", "multi-valued"),
        ("CN=a,,O=b", "empty"),
        ("CN=a\\", "dangling"),
        ({"C": "中国"}, "PrintableString"),
    ],
)
def test_bad_subjects_are_input_errors(subject: str | dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_subject(subject)


@given(st.integers(min_value=1, max_value=(1 << 159) - 1), st.integers(0, 3), st.booleans())
def test_serial_accepts_openssl_forms(value: int, zeros: int, colons: bool) -> None:
    text = "0" * zeros + format(value, "X")
    if colons:
        text = ":".join(text[i : i + 2] for i in range(0, len(text), 2))
    assert parse_serial(text) == format(value, "x")
    assert parse_serial("serial=" + text) == format(value, "x")


@pytest.mark.parametrize("bad", ["", "xyz", "0", "00:00", "1" * 41, "-1"])
def test_bad_serials(bad: str) -> None:
    with pytest.raises(InputError):
        parse_serial(bad)


def test_new_serials_are_positive_fixed_size_and_distinct() -> None:
    serials = {new_serial() for _ in range(200)}
    assert len(serials) == 200
    for serial in serials:
        # DER INTEGER: a positive value needs a clear top bit within 20 octets.
        assert 0 < serial < 1 << (8 * MAX_SERIAL_OCTETS - 1)
        assert len(serial_hex(serial)) == 38


def test_serial_hex_is_canonical() -> None:
    assert serial_hex(0x0ABC) == "abc"
    with pytest.raises(InputError):
        serial_hex(0)
