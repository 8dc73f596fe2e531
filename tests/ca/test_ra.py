"""RA mode: keys here, certificates from an external CA (played by the openssl CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import x509
from ca_support import OpenSSL

from medsign.ca import CertificateAuthority, RegistrationAuthority
from medsign.ca.csr import verify_csr
from medsign.clock import FixedClock
from medsign.crypto import (
    DEFAULT_SM2_ID,
    KeyAlgorithm,
    PublicKey,
    message_digest,
    verify,
)
from medsign.db import Database
from medsign.errors import InputError, NotFoundError, StateError
from medsign.keys import SoftwareKeyStore

SUBJECT = "CN=张三,serialNumber=E1024,O=示例医院,C=CN"
CA_EXT = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
LEAF_EXT = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n"
NEW_KEY = {
    "p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "rsa": ["-newkey", "rsa:2048"],
}


@dataclass
class ExternalCA:
    """A two-level CA made with ``openssl``, standing in for a licensed third-party CA."""

    openssl: OpenSSL
    kind: str
    root: Path
    intermediate: Path

    def sign(self, csr_pem: str, name: str, *, ca: str = "int", ext: str = LEAF_EXT) -> Path:
        (self.openssl.cwd / f"{name}.csr").write_text(csr_pem)
        (self.openssl.cwd / f"{name}.ext").write_text(ext)
        extra = ["-vfyopt", "distid:1234567812345678", "-sm3"] if self.kind == "sm2" else []
        self.openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            f"{ca}.pem",
            "-CAkey",
            f"{ca}.key",
            "-days",
            "30",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
            *extra,
        )
        return self.openssl.cwd / f"{name}.pem"


def make_external_ca(openssl: OpenSSL, kind: str) -> ExternalCA:
    (openssl.cwd / "ca.ext").write_text(CA_EXT)
    if kind == "sm2":
        for name in ("root", "int"):
            openssl("genpkey", "-algorithm", "SM2", "-out", f"{name}.key")
        openssl(
            "req",
            "-new",
            "-x509",
            "-key",
            "root.key",
            "-sm3",
            "-subj",
            "/O=Ext/CN=Ext Root",
            "-days",
            "60",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root.pem",
        )
        openssl(
            "req",
            "-new",
            "-key",
            "int.key",
            "-sm3",
            "-subj",
            "/O=Ext/CN=Ext Issuing",
            "-out",
            "int.csr",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-sm3",
            "-days",
            "50",
            "-extfile",
            "ca.ext",
            "-out",
            "int.pem",
        )
    else:
        openssl(
            "req",
            "-new",
            "-x509",
            *NEW_KEY[kind],
            "-nodes",
            "-keyout",
            "root.key",
            "-subj",
            "/O=Ext/CN=Ext Root",
            "-days",
            "60",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root.pem",
        )
        openssl(
            "req",
            "-new",
            *NEW_KEY[kind],
            "-nodes",
            "-keyout",
            "int.key",
            "-subj",
            "/O=Ext/CN=Ext Issuing",
            "-out",
            "int.csr",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-days",
            "50",
            "-extfile",
            "ca.ext",
            "-out",
            "int.pem",
        )
    return ExternalCA(openssl, kind, openssl.cwd / "root.pem", openssl.cwd / "int.pem")


@pytest.fixture
def ra(
    database: Database, keystore: SoftwareKeyStore, ca_clock: FixedClock
) -> RegistrationAuthority:
    return RegistrationAuthority(database, keystore, ca_clock)


@pytest.mark.interop
@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [("p256", KeyAlgorithm.EC_P256), ("rsa", KeyAlgorithm.RSA_2048), ("sm2", KeyAlgorithm.SM2)],
)
def test_round_trip(
    ra: RegistrationAuthority,
    authority: CertificateAuthority,
    keystore: SoftwareKeyStore,
    run_openssl: OpenSSL,
    kind: str,
    algorithm: KeyAlgorithm,
) -> None:
    csr_id, csr_pem = ra.create_external_csr(algorithm, SUBJECT, "staff-signing", actor="admin")
    assert csr_pem.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    request = verify_csr(csr_pem)
    assert request.subject_text == SUBJECT
    if kind == "sm2":
        # medsign signs SM2 requests with the GM/T default ID, which OpenSSL must be told.
        assert request.sm2_id == DEFAULT_SM2_ID
        (run_openssl.cwd / "ours.csr").write_text(csr_pem)
        checked = run_openssl(
            "req", "-in", "ours.csr", "-verify", "-noout", "-vfyopt", "distid:1234567812345678"
        )
        assert "verify OK" in checked.stdout + checked.stderr

    external = make_external_ca(run_openssl, kind)
    leaf = external.sign(csr_pem, "leaf")
    record = ra.import_external_certificate(
        csr_id,
        leaf.read_text(),
        [external.root.read_bytes(), external.intermediate.read_text()],
        actor="admin",
    )
    assert (record.source, record.issuer_ca_id, record.profile) == (
        "external",
        None,
        "staff-signing",
    )
    assert record.subject == SUBJECT

    # From here on it behaves like any certificate: found by serial, with its chain, and
    # its key signs through the key store.
    serial = run_openssl("x509", "-in", leaf, "-noout", "-serial").stdout.strip()
    assert authority.get(serial).id == record.id
    chain = authority.chain(serial)
    assert [x509.Certificate.load(c).subject.native["common_name"] for c in chain] == [
        "Ext Issuing",
        "Ext Root",
    ]
    assert record.key_id is not None
    public_key = PublicKey.from_der(x509.Certificate.load(record.certificate_der).public_key.dump())
    scheme = public_key.default_scheme
    digest = message_digest(public_key, scheme, b"medical record")
    signature = keystore.sign_digest(record.key_id, scheme, digest, actor="t", purpose="test")
    verify(public_key, scheme, b"medical record", signature)
    assert [e.action for e in authority.history(serial)] == ["issue"]
    authority.revoke(serial, "affiliationChanged", actor="admin")
    assert authority.get(serial).status == "revoked"

    with pytest.raises(StateError, match="already imported"):
        ra.import_external_certificate(csr_id, leaf.read_text(), [external.root.read_text()])


@pytest.mark.interop
def test_chain_as_one_pem_bundle(ra: RegistrationAuthority, run_openssl: OpenSSL) -> None:
    csr_id, csr_pem = ra.create_external_csr("ec-p256", SUBJECT, "staff-signing", actor="a")
    external = make_external_ca(run_openssl, "p256")
    leaf = external.sign(csr_pem, "leaf")
    bundle = external.root.read_text() + external.intermediate.read_text()
    record = ra.import_external_certificate(csr_id, leaf.read_bytes(), [bundle])
    assert record.source == "external"


@pytest.mark.interop
def test_mismatched_key_and_bad_chains(
    ra: RegistrationAuthority, run_openssl: OpenSSL, database: Database
) -> None:
    csr_id, csr_pem = ra.create_external_csr("ec-p256", SUBJECT, "staff-signing", actor="a")
    _other_id, other_pem = ra.create_external_csr("ec-p256", SUBJECT, "staff-signing", actor="a")
    external = make_external_ca(run_openssl, "p256")
    root, intermediate = external.root.read_text(), external.intermediate.read_text()
    other_leaf = external.sign(other_pem, "other").read_text()
    with pytest.raises(InputError, match="public key does not match"):
        ra.import_external_certificate(csr_id, other_leaf, [intermediate, root])

    leaf = external.sign(csr_pem, "leaf").read_text()
    with pytest.raises(InputError, match="does not reach a self-signed root"):
        ra.import_external_certificate(csr_id, leaf, [intermediate])
    with pytest.raises(InputError, match="chain up to the root is required"):
        ra.import_external_certificate(csr_id, leaf, [])

    # An unrelated root with the same name: the signature check, not the name, decides.
    run_openssl(
        "req",
        "-new",
        "-x509",
        *NEW_KEY["p256"],
        "-nodes",
        "-keyout",
        "fake.key",
        "-subj",
        "/O=Ext/CN=Ext Root",
        "-days",
        "60",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-out",
        "fake.pem",
    )
    with pytest.raises(InputError, match="does not verify"):
        ra.import_external_certificate(csr_id, leaf, [intermediate, run_openssl.read("fake.pem")])

    # An "intermediate" that is not a CA.
    run_openssl(
        "req",
        "-new",
        *NEW_KEY["p256"],
        "-nodes",
        "-keyout",
        "nonca.key",
        "-subj",
        "/O=Ext/CN=Not A CA",
        "-out",
        "nonca.csr",
    )
    nonca = external.sign(run_openssl.read("nonca.csr").decode(), "nonca", ca="root")
    # The key of the non-CA certificate is needed to sign the leaf: reuse its key file.
    (run_openssl.cwd / "nonca.key").rename(run_openssl.cwd / "nonca-ca.key")
    (run_openssl.cwd / "nonca-ca.pem").write_bytes(nonca.read_bytes())
    bad_leaf = external.sign(csr_pem, "bad", ca="nonca-ca").read_text()
    with pytest.raises(InputError, match="not a CA certificate"):
        ra.import_external_certificate(csr_id, bad_leaf, [nonca.read_text(), root])

    with pytest.raises(InputError, match=r"not a valid X\.509 certificate"):
        ra.import_external_certificate(csr_id, b"\x30\x00", [root])
    with pytest.raises(NotFoundError):
        ra.import_external_certificate("csr_nope", leaf, [root])
    # None of the failures imported anything: the good import still works.
    assert ra.import_external_certificate(csr_id, leaf, [intermediate, root]).source == "external"


def test_create_external_csr_checks_its_input(ra: RegistrationAuthority) -> None:
    with pytest.raises(InputError, match="unknown certificate profile"):
        ra.create_external_csr("ec-p256", SUBJECT, "nope", actor="a")
    with pytest.raises(InputError, match="unknown key algorithm"):
        ra.create_external_csr("ed448", SUBJECT, "staff-signing", actor="a")
    with pytest.raises(InputError, match="does not accept ed25519 keys"):
        ra.create_external_csr("ed25519", SUBJECT, "staff-signing", actor="a")
    with pytest.raises(InputError, match="requires subject attribute serialNumber"):
        ra.create_external_csr("ec-p256", "CN=张三", "staff-signing", actor="a")
    with pytest.raises(InputError, match="for CA certificates"):
        ra.create_external_csr("ec-p256", "CN=x,O=y", "root-ca", actor="a")
    with pytest.raises(NotFoundError):
        ra.get_csr_pem("csr_missing")
