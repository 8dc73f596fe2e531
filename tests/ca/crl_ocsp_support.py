"""Shared set-up for the CRL and OCSP tests: one family's CA hierarchy, files for openssl.

Imported by ``test_crl.py`` and ``test_ocsp.py`` (``tests/ca/conftest.py`` belongs to the CA
core tests). Each test gets a fresh hierarchy of one family so status changes never leak.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import pem

from medsign.ca.authority import CARecord, CertificateAuthority, CertificateRecord
from medsign.ca.crl import CRLPublisher
from medsign.ca.ocsp import OCSPResponder
from medsign.clock import FixedClock
from medsign.crypto import AlgorithmFamily
from medsign.db import Database
from medsign.keys import MasterKeyring, SoftwareKeyStore

FAMILIES = [AlgorithmFamily.RSA, AlgorithmFamily.P256, AlgorithmFamily.SM2]
FAMILY_IDS = [family.value for family in FAMILIES]

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"openssl {' '.join(map(str, args))} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def real_time_clock() -> FixedClock:
    """A fixed clock at the wall-clock time: openssl checks validity against the real time."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return FixedClock(now - dt.timedelta(minutes=1))


@dataclass
class PKI:
    """One family's hierarchy plus the CRL publisher and OCSP responder under test."""

    family: AlgorithmFamily
    database: Database
    clock: FixedClock
    keystore: SoftwareKeyStore
    authority: CertificateAuthority
    crl: CRLPublisher
    ocsp: OCSPResponder
    root: CARecord
    issuing: CARecord
    directory: Path

    def issue_leaf(self, name: str = "Patient Zhang") -> CertificateRecord:
        key = self.keystore.generate(self.family.default_algorithm, label=f"leaf:{name}")
        return self.authority.issue_for_key(key.id, {"CN": name}, "patient-event", actor="test")

    def write(self, name: str, der: bytes, label: str = "CERTIFICATE") -> Path:
        path = self.directory / name
        if name.endswith(".der"):
            path.write_bytes(der)
        else:
            path.write_bytes(pem.armor(label, der))
        return path

    @property
    def root_pem(self) -> Path:
        return self.write("root.pem", self.root.certificate_der)

    @property
    def issuing_pem(self) -> Path:
        return self.write("issuing.pem", self.issuing.certificate_der)


def make_pki(
    family: AlgorithmFamily, database: Database, clock: FixedClock, directory: Path
) -> PKI:
    keyring = MasterKeyring.create(directory / "keyring")
    keystore = SoftwareKeyStore(database, keyring, clock)
    authority = CertificateAuthority(database, keystore, clock, "http://medsign.test")
    authority.initialise_hierarchy("Test Hospital", families=[family])
    cas = {ca.level: ca for ca in authority.list_cas() if ca.family is family}
    crl = CRLPublisher(database, keystore, clock)
    responder = OCSPResponder(database, keystore, clock)
    authority.add_status_listener(crl.on_status_change)
    authority.add_status_listener(responder.on_status_change)
    return PKI(
        family=family,
        database=database,
        clock=clock,
        keystore=keystore,
        authority=authority,
        crl=crl,
        ocsp=responder,
        root=cas["root"],
        issuing=cas["issuing"],
        directory=directory,
    )
