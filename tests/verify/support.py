"""Test material for the verifier, made with medsign's CA and key store and the openssl CLI.

Private keys never leave medsign's key store: CMS and timestamp tokens are produced by
`openssl cms -sign` / `openssl ts -reply` with keys openssl generates itself, whose
certificates medsign's CA issues from openssl-made CSRs.
"""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import cms, core

from medsign.crypto import KeyAlgorithm, PublicKey, SignatureScheme, message_digest
from medsign.verify import DatabaseStatusSource, Verifier

_counter = itertools.count(1)

TSA_CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = {serial}
crypto_device = builtin
default_policy = 1.2.3.4.1
signer_digest = sha256
digests = sha256, sm3
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl(*args: str | Path, input: bytes | None = None) -> bytes:
    proc = subprocess.run(["openssl", *map(str, args)], input=input, capture_output=True)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {args} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


@dataclass(frozen=True)
class OpenSSLSigner:
    """A key openssl holds, with a certificate medsign's CA issued for it."""

    key: Path
    certificate: Path
    serial: str
    record: Any

    def sign_cms(self, data: bytes, work: Path, *, detached: bool = True) -> bytes:
        n = next(_counter)
        data_file = work / f"data-{n}.bin"
        data_file.write_bytes(data)
        mode = () if detached else ("-nodetach",)
        return openssl(
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-signer",
            self.certificate,
            "-inkey",
            self.key,
            "-in",
            data_file,
            "-outform",
            "DER",
            *mode,
        )


def openssl_signer(
    runtime: Any,
    work: Path,
    *,
    profile: str = "staff-signing",
    ec: bool = True,
    subject: str = "/CN=Dr. Li/serialNumber=E1001",
) -> OpenSSLSigner:
    n = next(_counter)
    key = work / f"key-{n}.pem"
    csr = work / f"csr-{n}.pem"
    if ec:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    else:
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    record = runtime.authority.issue_from_csr(csr.read_bytes(), profile, actor="test")
    cert = work / f"cert-{n}.pem"
    cert.write_text(record.pem())
    return OpenSSLSigner(key, cert, record.serial_hex, record)


def timestamp_token(tsa: OpenSSLSigner, message: bytes, work: Path, *, chain: Path) -> bytes:
    """An RFC 3161 token (ContentInfo) over ``message`` from openssl's TSA."""
    n = next(_counter)
    data = work / f"ts-data-{n}.bin"
    data.write_bytes(message)
    query = work / f"ts-{n}.tsq"
    openssl("ts", "-query", "-data", data, "-sha256", "-cert", "-no_nonce", "-out", query)
    config = work / f"ts-{n}.cnf"
    serial = work / f"ts-serial-{n}"
    serial.write_text("01\n")
    config.write_text(TSA_CONFIG.format(serial=serial))
    token = work / f"ts-{n}.der"
    openssl(
        "ts",
        "-reply",
        "-config",
        config,
        "-queryfile",
        query,
        "-signer",
        tsa.certificate,
        "-inkey",
        tsa.key,
        "-chain",
        chain,
        "-token_out",
        "-out",
        token,
    )
    return token.read_bytes()


def add_timestamp(cms_der: bytes, token: bytes) -> bytes:
    """The SignedData with ``token`` as id-aa-signatureTimeStampToken of its first signer."""
    info = cms.ContentInfo.load(cms_der)
    signer = info["content"]["signer_infos"][0]
    signer["unsigned_attrs"] = cms.CMSAttributes(
        [
            cms.CMSAttribute(
                {"type": "signature_time_stamp_token", "values": [cms.ContentInfo.load(token)]}
            )
        ]
    )
    return bytes(info.dump(force=True))


def signature_value(cms_der: bytes) -> bytes:
    info = cms.ContentInfo.load(cms_der)
    return bytes(info["content"]["signer_infos"][0]["signature"].native)


def tamper_signature(cms_der: bytes) -> bytes:
    info = cms.ContentInfo.load(cms_der)
    signer = info["content"]["signer_infos"][0]
    value = bytearray(signer["signature"].native)
    value[-5] ^= 0x01
    signer["signature"] = core.OctetString(bytes(value))
    return bytes(info.dump(force=True))


@dataclass(frozen=True)
class StoreSigner:
    """A staff certificate for a key held in medsign's key store."""

    key_id: str
    certificate_der: bytes
    serial: str
    public_key: PublicKey
    scheme: SignatureScheme

    def sign(self, runtime: Any, data: bytes) -> bytes:
        digest = message_digest(self.public_key, self.scheme, data)
        signature: bytes = runtime.keystore.sign_digest(
            self.key_id, self.scheme, digest, actor="test", purpose="test"
        )
        return signature


def store_signer(
    runtime: Any, algorithm: KeyAlgorithm, *, cn: str = "Nurse Wang", employee: str = "E2002"
) -> StoreSigner:
    key = runtime.keystore.generate(algorithm, label=f"verify-test-{next(_counter)}")
    record = runtime.authority.issue_for_key(
        key.id, {"CN": cn, "serialNumber": employee}, "staff-signing", actor="test"
    )
    public = PublicKey.from_der(key.public_key_der)
    return StoreSigner(
        key.id, record.certificate_der, record.serial_hex, public, public.default_scheme
    )


def verifier_at(runtime: Any, clock: Any) -> Verifier:
    """The installation's trust with a clock the test controls."""
    return Verifier(runtime.verifier.trust, DatabaseStatusSource(runtime.database, clock), clock)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def load_pem_der(path: Path) -> list[bytes]:
    from medsign.verify import load_certificates

    return load_certificates(path.read_bytes())
