"""Certificate profiles as data."""

from __future__ import annotations

import datetime as dt

import pytest

from medsign.ca.names import parse_subject_pairs
from medsign.ca.profiles import BUILTIN_PROFILES, DEFAULT_PROFILES, POLICY_ARC, ProfileSet
from medsign.crypto import KeyAlgorithm
from medsign.errors import InputError

REQUIRED = {
    "root-ca",
    "issuing-ca",
    "staff-signing",
    "patient-event",
    "organization-seal",
    "tsa",
    "ocsp",
    "evidence-log",
}


def test_builtin_profiles_present() -> None:
    assert set(DEFAULT_PROFILES.names()) >= REQUIRED


def test_profile_contents() -> None:
    staff = DEFAULT_PROFILES.get("staff-signing")
    assert staff.key_usage == {"digital_signature", "non_repudiation"}
    assert staff.lifetime == dt.timedelta(days=730)
    assert staff.subject.required == {"CN", "serialNumber"}
    assert all(p.startswith(POLICY_ARC) for p in staff.policies)
    assert KeyAlgorithm.SM2 in staff.key_algorithms
    tsa = DEFAULT_PROFILES.get("tsa")
    assert tsa.extended_key_usage == ("time_stamping",)
    assert tsa.extended_key_usage_critical
    ocsp = DEFAULT_PROFILES.get("ocsp")
    assert ocsp.ocsp_no_check and ocsp.lifetime <= dt.timedelta(days=30)
    assert DEFAULT_PROFILES.get("patient-event").lifetime == dt.timedelta(days=1)
    root = DEFAULT_PROFILES.get("root-ca")
    assert root.is_ca and root.path_length == 1 and not root.revocation_pointers
    assert DEFAULT_PROFILES.get("issuing-ca").path_length == 0


def test_unknown_profile() -> None:
    with pytest.raises(InputError, match="unknown certificate profile"):
        DEFAULT_PROFILES.get("nope")


def _check(profile: str, subject: str) -> None:
    DEFAULT_PROFILES.get(profile).subject.check(parse_subject_pairs(subject), profile)


def test_staff_subject_rules() -> None:
    _check("staff-signing", "CN=张三,serialNumber=E1024,title=主治医师,OU=心内科,O=示例医院,C=CN")
    with pytest.raises(InputError, match="requires subject attribute serialNumber"):
        _check("staff-signing", "CN=张三,O=示例医院")
    with pytest.raises(InputError, match="L is not allowed"):
        _check("staff-signing", "CN=张三,serialNumber=E1,L=Beijing")
    with pytest.raises(InputError, match="serialNumber has a value"):
        _check("staff-signing", "CN=张三,serialNumber=E 1")
    with pytest.raises(InputError, match="CN must be 1 to 64"):
        _check("staff-signing", "CN=" + "x" * 65 + ",serialNumber=E1")
    with pytest.raises(InputError, match="C has a value"):
        _check("staff-signing", "CN=a,serialNumber=E1,C=cn")


def test_overrides_replace_and_validate() -> None:
    table = dict(BUILTIN_PROFILES["patient-event"])
    table["lifetime_days"] = 2
    profiles = DEFAULT_PROFILES.with_overrides({"patient-event": table})
    assert profiles.get("patient-event").lifetime == dt.timedelta(days=2)
    assert DEFAULT_PROFILES.get("patient-event").lifetime == dt.timedelta(days=1)
    bad = dict(table, key_usage=["key_cert_sign"])
    with pytest.raises(InputError, match="only CA profiles"):
        ProfileSet.from_data({"x": bad})
    with pytest.raises(InputError, match="unknown key usage"):
        ProfileSet.from_data({"x": dict(table, key_usage=["flying"])})
    with pytest.raises(InputError, match="malformed"):
        ProfileSet.from_data({"x": {"key_usage": []}})


def test_no_profile_certifies_ed25519() -> None:
    assert all(
        KeyAlgorithm.ED25519 not in profile.key_algorithms
        for profile in DEFAULT_PROFILES.profiles.values()
    )
    table = dict(BUILTIN_PROFILES["patient-event"], key_algorithms=["ec-p256", "ed25519"])
    with pytest.raises(InputError, match="does not certify ed25519 keys"):
        ProfileSet.from_data({"x": table})
