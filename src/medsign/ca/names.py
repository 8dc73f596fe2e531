"""Distinguished names and serial numbers.

Subjects arrive as RFC 4514-like strings (``CN=张三,O=示例医院,C=CN``; as in RFC 4514 the
string lists the most specific RDN first) or as dicts. Values are stored as UTF8String, except
where X.520 fixes the type: countryName and serialNumber are PrintableString, emailAddress is
IA5String. Multi-valued RDNs are not supported: no medsign profile needs them and they make
names ambiguous to render.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any, TypeAlias

from asn1crypto import core, x509

from medsign.ca.profiles import ATTRIBUTES, ATTRIBUTES_BY_NAME, attribute_spec
from medsign.errors import InputError

# x509.Name is untyped (asn1crypto ships no stubs), hence Any.
SubjectInput: TypeAlias = str | Mapping[str, str] | Any

# Order used for dict input, outermost first (the order of the RDNSequence).
_DICT_ORDER = [
    "C",
    "ST",
    "L",
    "organizationIdentifier",
    "O",
    "OU",
    "title",
    "CN",
    "serialNumber",
    "emailAddress",
]
_PRINTABLE = {"country_name", "serial_number"}
_IA5 = {"email_address"}
_PRINTABLE_CHARS = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")
_ESCAPED = set(',+"\\<>;=')

MAX_SERIAL_OCTETS = 20


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise InputError("subject ends with a dangling backslash")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 1 : i + 3]):
                # Hex pairs may spell UTF-8 sequences; gather them before decoding.
                raw = bytearray()
                while (
                    i < len(value)
                    and value[i] == "\\"
                    and re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 1 : i + 3])
                ):
                    raw.append(int(value[i + 1 : i + 3], 16))
                    i += 3
                try:
                    out.append(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise InputError("subject has an invalid escaped byte sequence") from exc
                continue
            out.append(nxt)
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse_subject_pairs(subject: SubjectInput) -> list[tuple[str, str]]:
    """(short name, value) pairs in RDNSequence order (outermost first)."""
    if isinstance(subject, x509.Name):
        return name_pairs(subject)
    if isinstance(subject, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in subject.items():
            if not isinstance(value, str):
                raise InputError(f"subject attribute {key} must be a string")
            pairs.append((attribute_spec(str(key)).short, value))
        return sorted(pairs, key=lambda p: _DICT_ORDER.index(p[0]))
    text = subject.strip()
    if text.startswith("/"):
        # OpenSSL's -subj form /C=CN/O=.../CN=... lists the outermost RDN first.
        raw = [p for p in _split_unescaped(text[1:], "/") if p]
        ordered = raw
    else:
        ordered = list(reversed(_split_unescaped(text, ",")))
    pairs = []
    for part in ordered:
        if not part.strip():
            raise InputError("subject has an empty attribute")
        if len(_split_unescaped(part, "+")) > 1:
            raise InputError("multi-valued RDNs are not supported")
        key, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"subject part {part.strip()!r} is not of the form TYPE=value")
        pairs.append((attribute_spec(key.strip()).short, _unescape(value.strip())))
    if not pairs:
        raise InputError("subject is empty")
    return pairs


def build_name(pairs: list[tuple[str, str]]) -> x509.Name:
    rdns = []
    for short, value in pairs:
        spec = ATTRIBUTES[short]
        if spec.name in _PRINTABLE:
            if _PRINTABLE_CHARS.fullmatch(value) is None:
                raise InputError(f"subject attribute {short} must use PrintableString characters")
            typed: core.Asn1Value = core.PrintableString(value)
        elif spec.name in _IA5:
            if not value.isascii():
                raise InputError(f"subject attribute {short} must be ASCII")
            typed = core.IA5String(value)
        else:
            typed = x509.DirectoryString(name="utf8_string", value=value)
        atv = x509.NameTypeAndValue({"type": spec.name, "value": typed})
        rdns.append(x509.RelativeDistinguishedName([atv]))
    return x509.Name(name="", value=x509.RDNSequence(rdns))


def parse_subject(subject: SubjectInput) -> x509.Name:
    """An asn1crypto ``Name`` from a string, dict or Name; raises ``InputError``."""
    if isinstance(subject, x509.Name):
        return subject
    return build_name(parse_subject_pairs(subject))


def name_pairs(name: x509.Name) -> list[tuple[str, str]]:
    """(short name, value) pairs of a Name, outermost first; refuses unknown attributes."""
    pairs = []
    try:
        for rdn in name.chosen:
            if len(rdn) != 1:
                raise InputError("multi-valued RDNs are not supported")
            atv = rdn[0]
            type_name = atv["type"].native
            spec = ATTRIBUTES_BY_NAME.get(type_name)
            if spec is None:
                raise InputError(f"subject attribute {atv['type'].dotted} is not supported")
            value = atv["value"].native
            if not isinstance(value, str):
                raise InputError(f"subject attribute {spec.short} is not a string")
            pairs.append((spec.short, value))
    except InputError:
        raise
    except (ValueError, TypeError) as exc:
        raise InputError("malformed subject name") from exc
    return pairs


def _escape(value: str) -> str:
    out = []
    for i, char in enumerate(value):
        if (
            char in _ESCAPED
            or (char == "#" and i == 0)
            or (char == " " and i in (0, len(value) - 1))
        ):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def render_name(name: x509.Name) -> str:
    """RFC 4514-style string, most specific RDN first; unknown attributes in dotted form."""
    parts = []
    for rdn in name.chosen:
        values = []
        for atv in rdn:
            spec = ATTRIBUTES_BY_NAME.get(atv["type"].native)
            key = spec.short if spec is not None else atv["type"].dotted
            native = atv["value"].native
            values.append(f"{key}={_escape(native if isinstance(native, str) else str(native))}")
        parts.append("+".join(values))
    return ",".join(reversed(parts))


def new_serial() -> int:
    """A random positive serial that fits RFC 5280's 20 octets, with at least 150 random bits.

    Fixing bit 151 keeps every serial the same length, which spares clients that mishandle
    leading zeros; the remaining bits make serials unpredictable (CA/B Forum asks for 64).
    """
    return secrets.randbits(151) | (1 << 151)


def serial_hex(serial: int) -> str:
    """Canonical form: lower-case hex without leading zeros."""
    if serial <= 0:
        raise InputError("serial numbers must be positive")
    return format(serial, "x")


def parse_serial(text: str | int) -> str:
    """Canonical hex from hex text as people paste it; raises ``InputError``.

    Accepts ``openssl x509 -serial`` output (``serial=0A1B...``, upper case, leading zeros),
    colon- or space-separated octets and an optional ``0x`` prefix.
    """
    if isinstance(text, int):
        return serial_hex(text)
    cleaned = text.strip()
    if cleaned.lower().startswith("serial="):
        cleaned = cleaned[len("serial=") :]
    cleaned = cleaned.replace(":", "").replace(" ", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if not cleaned or re.fullmatch(r"[0-9A-Fa-f]+", cleaned) is None:
        raise InputError("serial number must be hexadecimal")
    value = int(cleaned, 16)
    if value == 0 or value.bit_length() > 8 * MAX_SERIAL_OCTETS:
        raise InputError("serial number out of range")
    return serial_hex(value)


def openssl_serial(canonical: str) -> str:
    """Upper-case, even-length hex: what `openssl x509 -serial` prints for a serial."""
    text = canonical.upper()
    return text if len(text) % 2 == 0 else "0" + text
