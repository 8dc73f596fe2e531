"""Login assertions: what an application receives when a clinician approves a QR-code login.

An assertion is a compact JWS (RFC 7515) signed with ES256 (ECDSA P-256 with SHA-256, the
signature as raw ``r || s``, RFC 7518 §3.4). Its ``x5c`` header carries the signing
certificate (profile ``login-assertion``) and the CA certificates above it up to medsign's
root, so an application that trusts the root can verify an assertion offline
(``medsign.client.verify_login_assertion``; the layout is in docs/integration/qr-login.md).

The signing key lives in the key store like every other medsign key. Its certificate is made
on first use (and by ``medsign init``), and a new key and certificate are made once the
current certificate comes within ``RENEW_BEFORE`` of its end, so no operator step is needed
on new or existing installations. Every assertion is verified against the certificate's key
before it is handed out.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from asn1crypto import x509

from medsign.ca.authority import GOOD, CertificateAuthority, CertificateRecord
from medsign.clock import Clock
from medsign.crypto import (
    AlgorithmFamily,
    KeyAlgorithm,
    PublicKey,
    SignatureEncoding,
    SignatureScheme,
    der_to_raw,
    verify_digest,
)
from medsign.ids import KeyId, new_id
from medsign.keys.base import KeyStore

PROFILE: Final = "login-assertion"
JWS_ALGORITHM: Final = "ES256"
# Explicit typing (RFC 8725 §3.11): a medsign login assertion cannot pass for another JWT.
JWS_TYPE: Final = "medsign-login+jwt"
LIFETIME: Final = dt.timedelta(minutes=5)
# Far more than an assertion lives, so a certificate never ends while its assertions are valid.
RENEW_BEFORE: Final = dt.timedelta(days=30)
ACTOR: Final = "system:login"
PURPOSE: Final = "login-assertion"
_SUBJECT_SUFFIX: Final = " Login Assertions"
_CN_MAX = 64


@dataclass(frozen=True)
class AssertionCredentials:
    """The key that signs assertions and its certificate chain (leaf first, root last)."""

    key_id: KeyId
    certificate_id: str
    public_key: PublicKey
    chain_der: tuple[bytes, ...]

    @property
    def x5c(self) -> list[str]:
        # RFC 7515 §4.1.6: standard base64 of each DER certificate, not base64url.
        return [base64.b64encode(der).decode("ascii") for der in self.chain_der]


@dataclass(frozen=True)
class SignedAssertion:
    token: str
    jti: str
    certificate_id: str
    issued_at: dt.datetime
    expires_at: dt.datetime


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class LoginAssertions:
    def __init__(
        self,
        keystore: KeyStore,
        authority: CertificateAuthority,
        clock: Clock,
        *,
        issuer: str,
    ) -> None:
        self._keystore = keystore
        self._authority = authority
        self._clock = clock
        self.issuer = issuer.rstrip("/")
        self._lock = threading.Lock()
        self._chains: dict[str, tuple[bytes, ...]] = {}

    def __repr__(self) -> str:
        return f"<LoginAssertions issuer={self.issuer}>"

    # -- credentials -----------------------------------------------------------------------

    def ensure(self, *, actor: str = ACTOR) -> AssertionCredentials:
        """The current credentials, made now if there are none fit to use."""
        found = self._current()
        if found is not None:
            return found
        # One issuance per process at a time; two processes racing both issue, which is
        # harmless (the newest certificate is used from then on).
        with self._lock:
            found = self._current()
            if found is not None:
                return found
            return self._credentials(self._provision(actor))

    def _current(self) -> AssertionCredentials | None:
        now = self._clock.now()
        for record in self._authority.list(profile=PROFILE, status=GOOD, limit=20):
            if (
                record.key_id is not None
                and record.not_before <= now
                and record.not_after - now > RENEW_BEFORE
            ):
                return self._credentials(record)
        return None

    def _provision(self, actor: str) -> CertificateRecord:
        organization = self._organization_name()
        key = self._keystore.generate(KeyAlgorithm.EC_P256, label=PROFILE)
        common_name = organization[: _CN_MAX - len(_SUBJECT_SUFFIX)] + _SUBJECT_SUFFIX
        return self._authority.issue_for_key(
            key.id, {"CN": common_name, "O": organization, "C": "CN"}, PROFILE, actor=actor
        )

    def _organization_name(self) -> str:
        # The certificate names the organization its issuing CA names, whichever
        # organization's login comes first.
        issuing = self._authority.issuing_ca(AlgorithmFamily.P256)
        name = x509.Certificate.load(issuing.certificate_der).subject.native
        organization = name.get("organization_name")
        if isinstance(organization, list):
            organization = organization[0] if organization else None
        return str(organization)[:_CN_MAX] if organization else "medsign"

    def _credentials(self, record: CertificateRecord) -> AssertionCredentials:
        assert record.key_id is not None
        chain = self._chains.get(record.id)
        if chain is None:
            chain = (record.certificate_der, *self._authority.chain(record.serial_hex))
            self._chains[record.id] = chain
        spki = x509.Certificate.load(record.certificate_der).public_key.dump()
        return AssertionCredentials(record.key_id, record.id, PublicKey.from_der(spki), chain)

    def chain(self) -> list[bytes]:
        """DER certificates of the current credentials, leaf first, root last."""
        return list(self.ensure().chain_der)

    # -- signing ---------------------------------------------------------------------------

    def issue(
        self,
        *,
        audience: str,
        subject: str,
        issued_at: dt.datetime,
        claims: Mapping[str, str],
    ) -> SignedAssertion:
        """A signed assertion with ``iss``, ``aud``, ``sub``, the given claims, ``iat``,
        ``exp`` and a fresh ``jti``, in that order."""
        credentials = self.ensure()
        jti = new_id("jti")
        iat = int(issued_at.timestamp())
        exp = iat + int(LIFETIME.total_seconds())
        payload: dict[str, Any] = {"iss": self.issuer, "aud": audience, "sub": subject}
        payload.update(claims)
        payload.update({"iat": iat, "exp": exp, "jti": jti})
        header = {"alg": JWS_ALGORITHM, "typ": JWS_TYPE, "x5c": credentials.x5c}
        signing_input = f"{b64url(_json(header))}.{b64url(_json(payload))}".encode("ascii")
        digest = hashlib.sha256(signing_input).digest()
        der = self._keystore.sign_digest(
            credentials.key_id,
            SignatureScheme.ECDSA_SHA256,
            digest,
            actor=ACTOR,
            purpose=PURPOSE,
        )
        raw = der_to_raw(der, 32)
        # A key store fault must never reach an application as a token that fails later.
        verify_digest(
            credentials.public_key,
            SignatureScheme.ECDSA_SHA256,
            digest,
            raw,
            encoding=SignatureEncoding.RAW,
        )
        return SignedAssertion(
            token=f"{signing_input.decode('ascii')}.{b64url(raw)}",
            jti=jti,
            certificate_id=credentials.certificate_id,
            issued_at=dt.datetime.fromtimestamp(iat, dt.UTC),
            expires_at=dt.datetime.fromtimestamp(exp, dt.UTC),
        )
