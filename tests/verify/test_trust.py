"""Trust stores: installation roots, configured anchor files, certificate loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medsign.ca.authority import pem_encode
from medsign.clock import SystemClock
from medsign.errors import ConfigurationError, InputError
from medsign.verify import TrustStore, load_certificates
from medsign.verify.installation import installation_verifier
from tests.verify.support import openssl


def test_installation_roots_are_anchors_and_issuing_cas_are_not(runtime: Any) -> None:
    trust = runtime.verifier.trust
    roots = {ca.certificate_der for ca in runtime.authority.list_cas() if ca.level == "root"}
    assert {a.certificate.dump() for a in trust.anchors} == roots
    assert {a.source for a in trust.anchors} == {"medsign"}
    issuing = {c.dump() for c in trust.intermediates}
    assert issuing and not issuing & roots


def test_extra_anchor_file(runtime: Any, tmp_path: Path) -> None:
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", cert, "-subj", "/CN=Licensed CA", "-days", "5",
    )  # fmt: skip
    verifier = installation_verifier(
        runtime.database, SystemClock(), roots=lambda: [], extra_anchors=cert
    )
    assert [a.source for a in verifier.trust.anchors] == ["configured"]
    with pytest.raises(ConfigurationError):
        installation_verifier(
            runtime.database, SystemClock(), roots=lambda: [], extra_anchors=tmp_path / "none.pem"
        )


def test_load_certificates(runtime: Any) -> None:
    ders = [ca.certificate_der for ca in runtime.authority.list_cas()][:2]
    bundle = "".join(pem_encode(d) for d in ders).encode()
    assert load_certificates(bundle) == ders
    assert load_certificates(ders[0]) == ders[:1]
    for bad in (b"", b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----", b"\x30\x00"):
        with pytest.raises(InputError):
            load_certificates(bad)
    store = TrustStore.from_certificates(ders + ders, source="configured")
    assert len(store) == 2
