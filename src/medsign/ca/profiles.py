"""Certificate profiles as data.

A profile says what a certificate of one kind may contain: key usage, extended key usage,
lifetime, policies, which subject attributes are required or allowed (and what their values
may look like), which key algorithms fit, and whether it is a CA. The built-in table below is
plain data so an installation can override or extend it (``ProfileSet.with_overrides``)
without code changes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from asn1crypto import x509

from medsign.crypto.types import KeyAlgorithm
from medsign.errors import InputError

# PLACEHOLDER policy arc. 2.25.<UUID> (ITU-T X.667) OIDs need no registration and cannot
# collide, which makes them safe until the hospital's own arc (typically under its IANA
# Private Enterprise Number, 1.3.6.1.4.1.<PEN>) is configured. Replace before production.
POLICY_ARC = "2.25.259986585191900661347617386822089060430"

# RFC 9336 id-kp-documentSigning; asn1crypto 1.5 does not know it yet.
DOCUMENT_SIGNING_EKU = "1.3.6.1.5.5.7.3.36"
x509.KeyPurposeId._map.setdefault(DOCUMENT_SIGNING_EKU, "document_signing")
x509.KeyPurposeId._reverse_map = None

KEY_USAGES = frozenset(
    {
        "digital_signature",
        "non_repudiation",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    }
)


@dataclass(frozen=True)
class AttributeSpec:
    """One subject attribute medsign knows: its short name, asn1crypto name and value rule."""

    short: str
    name: str
    pattern: str
    max_length: int


# Value rules are deliberately narrow: anything that reaches a certificate is shown to people
# deciding whether to trust a signature, so control characters and separators are refused.
_TEXT = r"[^\x00-\x1f\x7f<>\\\"]+"
ATTRIBUTES: dict[str, AttributeSpec] = {
    spec.short: spec
    for spec in (
        AttributeSpec("CN", "common_name", _TEXT, 64),
        AttributeSpec("O", "organization_name", _TEXT, 64),
        AttributeSpec("OU", "organizational_unit_name", _TEXT, 64),
        AttributeSpec("C", "country_name", r"[A-Z]{2}", 2),
        AttributeSpec("ST", "state_or_province_name", _TEXT, 128),
        AttributeSpec("L", "locality_name", _TEXT, 128),
        AttributeSpec("title", "title", _TEXT, 64),
        AttributeSpec("serialNumber", "serial_number", r"[A-Za-z0-9.\-_:/]+", 64),
        AttributeSpec("organizationIdentifier", "organization_identifier", r"[A-Za-z0-9\-]+", 64),
        AttributeSpec("emailAddress", "email_address", r"[^@\s]+@[^@\s]+", 128),
    )
}
ATTRIBUTES_BY_NAME: dict[str, AttributeSpec] = {spec.name: spec for spec in ATTRIBUTES.values()}


def attribute_spec(key: str) -> AttributeSpec:
    """Look an attribute up by short name (``CN``) or asn1crypto name (``common_name``)."""
    for candidate in (key, key.upper()):
        if candidate in ATTRIBUTES:
            return ATTRIBUTES[candidate]
    lowered = {k.lower(): v for k, v in ATTRIBUTES.items()}
    if key.lower() in lowered:
        return lowered[key.lower()]
    if key in ATTRIBUTES_BY_NAME:
        return ATTRIBUTES_BY_NAME[key]
    raise InputError(f"subject attribute {key!r} is not supported")


@dataclass(frozen=True)
class SubjectRules:
    required: frozenset[str]
    optional: frozenset[str]

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional

    def check(self, attributes: Iterable[tuple[str, str]], profile: str) -> None:
        """Raise ``InputError`` naming the first attribute that the rules refuse."""
        seen: set[str] = set()
        for short, value in attributes:
            if short not in self.allowed:
                raise InputError(f"subject attribute {short} is not allowed in profile {profile}")
            if short in seen:
                raise InputError(f"subject attribute {short} appears more than once")
            seen.add(short)
            spec = ATTRIBUTES[short]
            if not value or len(value) > spec.max_length:
                raise InputError(
                    f"subject attribute {short} must be 1 to {spec.max_length} characters"
                )
            if value != value.strip() or re.fullmatch(spec.pattern, value) is None:
                raise InputError(f"subject attribute {short} has a value that is not allowed")
        missing = sorted(self.required - seen)
        if missing:
            raise InputError(f"profile {profile} requires subject attribute {missing[0]}")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    key_usage: frozenset[str]
    lifetime: dt.timedelta
    subject: SubjectRules
    key_algorithms: frozenset[KeyAlgorithm]
    extended_key_usage: tuple[str, ...] = ()
    extended_key_usage_critical: bool = False
    policies: tuple[str, ...] = ()
    is_ca: bool = False
    path_length: int | None = None
    ocsp_no_check: bool = False
    # Root certificates carry no CRL DP/AIA: nothing above them could publish one.
    revocation_pointers: bool = True


# Every algorithm the CA certifies (not Ed25519: see ``AlgorithmFamily.certifiable``).
_ALL_KEYS = [a.value for a in KeyAlgorithm if a.family.certifiable]
_CA_SUBJECT = {
    "required": ["CN", "O"],
    "optional": ["OU", "C", "ST", "L", "organizationIdentifier"],
}
_SERVICE_SUBJECT = {"required": ["CN", "O"], "optional": ["OU", "C", "ST", "L"]}

BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "root-ca": {
        "description": "Self-signed root of one algorithm family",
        "key_usage": ["key_cert_sign", "crl_sign", "digital_signature"],
        "lifetime_days": 20 * 365 + 5,
        "subject": _CA_SUBJECT,
        "key_algorithms": ["rsa-3072", "ec-p256", "sm2"],
        "is_ca": True,
        "path_length": 1,
        "revocation_pointers": False,
    },
    "issuing-ca": {
        "description": "Issuing CA under a root; signs end-entity certificates, CRLs",
        "key_usage": ["key_cert_sign", "crl_sign", "digital_signature"],
        "lifetime_days": 10 * 365 + 2,
        "subject": _CA_SUBJECT,
        "key_algorithms": ["rsa-3072", "ec-p256", "sm2"],
        "is_ca": True,
        "path_length": 0,
        "policies": [f"{POLICY_ARC}.1"],
    },
    "staff-signing": {
        "description": "A staff member's personal signing certificate",
        "key_usage": ["digital_signature", "non_repudiation"],
        "extended_key_usage": ["email_protection", DOCUMENT_SIGNING_EKU],
        "lifetime_days": 2 * 365,
        "subject": {"required": ["CN", "serialNumber"], "optional": ["O", "OU", "C", "title"]},
        "key_algorithms": _ALL_KEYS,
        "policies": [f"{POLICY_ARC}.1.1"],
    },
    "patient-event": {
        "description": "Per-signing certificate for a patient or relative",
        "key_usage": ["digital_signature", "non_repudiation"],
        "extended_key_usage": [DOCUMENT_SIGNING_EKU],
        "lifetime_days": 1,
        "subject": {"required": ["CN"], "optional": ["serialNumber", "O", "C"]},
        "key_algorithms": _ALL_KEYS,
        "policies": [f"{POLICY_ARC}.1.2"],
    },
    "organization-seal": {
        "description": "The hospital's (or a department's) electronic seal",
        "key_usage": ["digital_signature", "non_repudiation"],
        "extended_key_usage": [DOCUMENT_SIGNING_EKU],
        "lifetime_days": 3 * 365,
        "subject": {
            "required": ["CN", "O"],
            "optional": ["OU", "C", "ST", "L", "organizationIdentifier"],
        },
        "key_algorithms": _ALL_KEYS,
        "policies": [f"{POLICY_ARC}.1.3"],
    },
    "tsa": {
        "description": "RFC 3161 time-stamping unit",
        "key_usage": ["digital_signature"],
        "extended_key_usage": ["time_stamping"],
        # RFC 3161 §2.3: the EKU MUST be critical and contain only id-kp-timeStamping.
        "extended_key_usage_critical": True,
        "lifetime_days": 5 * 365,
        "subject": _SERVICE_SUBJECT,
        "key_algorithms": _ALL_KEYS,
        "policies": [f"{POLICY_ARC}.1.4"],
    },
    "ocsp": {
        "description": "Delegated OCSP responder of one issuing CA",
        "key_usage": ["digital_signature"],
        "extended_key_usage": ["ocsp_signing"],
        "lifetime_days": 30,
        "subject": _SERVICE_SUBJECT,
        "key_algorithms": _ALL_KEYS,
        # RFC 6960 §4.2.2.2.1: short-lived, and clients need not check its status.
        "ocsp_no_check": True,
    },
    "login-assertion": {
        "description": "Signs the QR-login assertions (JWS, ES256) applications verify offline",
        "key_usage": ["digital_signature"],
        # Short-lived: relying parties verify offline, without asking about revocation.
        "lifetime_days": 90,
        "subject": _SERVICE_SUBJECT,
        # JWS ES256 (RFC 7518 §3.4) is ECDSA over P-256 only.
        "key_algorithms": ["ec-p256"],
        "policies": [f"{POLICY_ARC}.1.6"],
    },
    "evidence-log": {
        "description": "Signs evidence-log checkpoints",
        "key_usage": ["digital_signature"],
        "lifetime_days": 5 * 365,
        "subject": _SERVICE_SUBJECT,
        "key_algorithms": _ALL_KEYS,
        "policies": [f"{POLICY_ARC}.1.5"],
    },
}


def _known_attributes(names: Iterable[str], profile: str) -> frozenset[str]:
    result = set()
    for name in names:
        if name not in ATTRIBUTES:
            raise InputError(f"profile {profile}: unknown subject attribute {name}")
        result.add(name)
    return frozenset(result)


def profile_from_data(name: str, data: Mapping[str, Any]) -> Profile:
    """Build a ``Profile`` from its table form; raises ``InputError`` on a bad entry."""
    try:
        key_usage = frozenset(data["key_usage"])
        unknown = key_usage - KEY_USAGES
        if unknown:
            raise InputError(f"profile {name}: unknown key usage {sorted(unknown)[0]}")
        subject = data["subject"]
        rules = SubjectRules(
            required=_known_attributes(subject["required"], name),
            optional=_known_attributes(subject.get("optional", ()), name),
        )
        lifetime = dt.timedelta(days=int(data["lifetime_days"]))
        if lifetime <= dt.timedelta(0):
            raise InputError(f"profile {name}: lifetime must be positive")
        key_algorithms = frozenset(KeyAlgorithm(a) for a in data["key_algorithms"])
        for algorithm in sorted(key_algorithms):
            if not algorithm.family.certifiable:
                raise InputError(f"profile {name}: the CA does not certify {algorithm} keys")
        is_ca = bool(data.get("is_ca", False))
        if not is_ca and {"key_cert_sign", "crl_sign"} & key_usage:
            raise InputError(f"profile {name}: only CA profiles may sign certificates or CRLs")
        return Profile(
            name=name,
            description=str(data.get("description", "")),
            key_usage=key_usage,
            lifetime=lifetime,
            subject=rules,
            key_algorithms=key_algorithms,
            extended_key_usage=tuple(data.get("extended_key_usage", ())),
            extended_key_usage_critical=bool(data.get("extended_key_usage_critical", False)),
            policies=tuple(data.get("policies", ())),
            is_ca=is_ca,
            path_length=data.get("path_length"),
            ocsp_no_check=bool(data.get("ocsp_no_check", False)),
            revocation_pointers=bool(data.get("revocation_pointers", True)),
        )
    except InputError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"profile {name} is malformed: {exc}") from exc


@dataclass(frozen=True)
class ProfileSet:
    profiles: Mapping[str, Profile]

    @classmethod
    def builtin(cls) -> ProfileSet:
        return cls.from_data(BUILTIN_PROFILES)

    @classmethod
    def from_data(cls, table: Mapping[str, Mapping[str, Any]]) -> ProfileSet:
        return cls({name: profile_from_data(name, data) for name, data in table.items()})

    def with_overrides(self, table: Mapping[str, Mapping[str, Any]]) -> ProfileSet:
        """Replace or add profiles; an override is a complete entry in table form."""
        merged = dict(self.profiles)
        merged.update({name: profile_from_data(name, data) for name, data in table.items()})
        return ProfileSet(merged)

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise InputError(f"unknown certificate profile {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self.profiles)


DEFAULT_PROFILES = ProfileSet.builtin()


def get_profile(name: str) -> Profile:
    return DEFAULT_PROFILES.get(name)
