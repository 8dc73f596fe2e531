"""Certification paths from a signer's certificate to a configured trust anchor.

Path building is by name and key identifier, with every link's signature checked before the
next link is looked for, so a forged intermediate with the right name cannot divert the path.
The checks are the RFC 5280 §6.1 subset that medsign's own hierarchies and RA-mode external
CAs need: signatures, CA basic constraints and path length, keyCertSign, and no unprocessed
critical extension. Validity periods are checked separately (``verify_validity``) because the
time to check them at depends on the proof of signing time.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import algos, x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from medsign.ca.names import render_name
from medsign.crypto import oids
from medsign.crypto.public import PublicKey, verify
from medsign.crypto.types import DEFAULT_SM2_ID, SignatureScheme
from medsign.crypto.x509alg import scheme_from_algorithm
from medsign.errors import InputError, MedsignError
from medsign.verify.report import SubIndication, failed, indeterminate

oids.register_asn1crypto_oids()

MAX_PATH_LENGTH = 8

# Extensions whose meaning this module enforces (or which carry no constraint on a path).
_UNDERSTOOD = frozenset(
    {
        "basic_constraints",
        "key_usage",
        "extended_key_usage",
        "certificate_policies",
        "key_identifier",
        "authority_key_identifier",
        "subject_alt_name",
        "crl_distribution_points",
        "authority_information_access",
        "ocsp_no_check",
    }
)

_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)


def load_certificates(blob: bytes) -> list[bytes]:
    """DER certificates from PEM (any number of blocks) or one DER certificate."""
    if b"-----BEGIN" in blob:
        out = []
        for match in _PEM_BLOCK.finditer(blob):
            try:
                out.append(base64.b64decode(b"".join(match.group(1).split()), validate=True))
            except ValueError as exc:
                raise InputError("malformed PEM certificate") from exc
        if not out:
            raise InputError("no PEM certificate found")
        return [parse_certificate(der).dump() for der in out]
    return [parse_certificate(blob).dump()]


def parse_certificate(der: bytes) -> x509.Certificate:
    """A parsed X.509 certificate; raises ``InputError`` for anything else."""
    try:
        cert = x509.Certificate.load(der, strict=True)
        # Touch the fields the verifier reads so a lazily-parsed error surfaces here.
        _ = cert.subject.dump(), cert.issuer.dump(), cert.serial_number, cert.public_key.dump()
        _ = cert["tbs_certificate"]["validity"].native, cert["signature_value"].native
        return cert
    except InputError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError("malformed X.509 certificate") from exc


@dataclass(frozen=True)
class TrustAnchor:
    certificate: x509.Certificate
    source: str  # "medsign" (an installation root) or "configured" (an extra anchor)


class TrustStore:
    """The certificates a path may end in. Anchors are trusted as they are: their own
    signature and extensions are not checked, only their validity period (ETSI's choice)."""

    def __init__(
        self,
        anchors: Iterable[TrustAnchor] = (),
        *,
        provider: Callable[[], Iterable[bytes]] | None = None,
        provider_source: str = "medsign",
        intermediates: Callable[[], Iterable[bytes]] | None = None,
    ) -> None:
        self._anchors: list[TrustAnchor] = []
        self._seen: set[bytes] = set()
        # Installation roots are read when needed: the hierarchy may be created (or a family
        # added) after the verifier is built.
        self._provider = provider
        self._provider_source = provider_source
        # Not trusted: certificates offered to path building (the installation's issuing
        # CAs), since signatures often carry only the signer's own certificate.
        self._intermediates = intermediates
        for anchor in anchors:
            self.add(anchor.certificate.dump(), source=anchor.source)

    @classmethod
    def from_certificates(cls, ders: Iterable[bytes], *, source: str) -> TrustStore:
        store = cls()
        for der in ders:
            store.add(der, source=source)
        return store

    def add(self, der: bytes, *, source: str) -> None:
        cert = parse_certificate(der)
        if cert.dump() in self._seen:
            return
        self._seen.add(cert.dump())
        self._anchors.append(TrustAnchor(cert, source))

    def add_file(self, path: Path, *, source: str = "configured") -> None:
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read trust anchor file {path}") from exc
        for der in load_certificates(blob):
            self.add(der, source=source)

    def with_anchors(self, ders: Iterable[bytes], *, source: str) -> TrustStore:
        """A copy with more anchors (e.g. from a CLI ``--trust`` option)."""
        store = TrustStore(
            self._anchors,
            provider=self._provider,
            provider_source=self._provider_source,
            intermediates=self._intermediates,
        )
        for der in ders:
            store.add(der, source=source)
        return store

    @property
    def anchors(self) -> tuple[TrustAnchor, ...]:
        if self._provider is None:
            return tuple(self._anchors)
        provided = []
        for der in self._provider():
            if der not in self._seen:
                provided.append(TrustAnchor(parse_certificate(der), self._provider_source))
        return (*provided, *self._anchors)

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        if self._intermediates is None:
            return ()
        return tuple(parse_certificate(der) for der in self._intermediates())

    def __len__(self) -> int:
        return len(self.anchors)

    def anchor_for(
        self, cert: x509.Certificate, anchors: Sequence[TrustAnchor]
    ) -> TrustAnchor | None:
        der = cert.dump()
        return next((a for a in anchors if a.certificate.dump() == der), None)


@dataclass(frozen=True)
class CertificationPath:
    """Certificates from the end entity up to and including the trust anchor."""

    certificates: tuple[x509.Certificate, ...]
    anchor: TrustAnchor

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def issuer(self) -> x509.Certificate:
        """The end entity's issuer (the anchor itself for a one-link path)."""
        return self.certificates[1] if len(self.certificates) > 1 else self.certificates[0]

    def subjects(self) -> tuple[str, ...]:
        return tuple(render_name(c.subject) for c in self.certificates)


def _verify_rsa_fallback(
    spki_der: bytes, scheme: SignatureScheme, message: bytes, signature: bytes
) -> None:
    """RSA keys of sizes medsign does not issue (external roots are often RSA-4096)."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError("unsupported public key") from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise InputError("unsupported public key")
    pad: padding.AsymmetricPadding = padding.PKCS1v15()
    if scheme is SignatureScheme.RSA_PSS_SHA256:
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    elif scheme is not SignatureScheme.RSA_PKCS1_SHA256:
        raise InputError("unsupported public key")
    try:
        key.verify(signature, message, pad, hashes.SHA256())
    except InvalidSignature as exc:
        raise failed(SubIndication.SIG_CRYPTO_FAILURE, "signature does not verify") from exc


def verify_signed_by(
    issuer_spki_der: bytes,
    algorithm: algos.SignedDigestAlgorithm,
    message: bytes,
    signature: bytes,
) -> SignatureScheme:
    """Check a certificate/CRL/OCSP signature by the issuer key; returns the scheme.

    SM2 structures from medsign use the standard ID (ADR 0003); external SM2 chains may have
    been signed by OpenSSL 3.0 with the empty ID, so that is tried second.
    """
    try:
        scheme = scheme_from_algorithm(algorithm)
    except InputError as exc:
        raise indeterminate(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, str(exc)) from exc
    try:
        key = PublicKey.from_der(issuer_spki_der)
    except InputError:
        _verify_rsa_fallback(issuer_spki_der, scheme, message, signature)
        return scheme
    if not key.supports(scheme):
        raise failed(
            SubIndication.SIG_CRYPTO_FAILURE,
            f"signature algorithm {scheme} does not fit the issuer's {key.algorithm} key",
        )
    ids = (DEFAULT_SM2_ID, b"") if scheme is SignatureScheme.SM2_SM3 else (DEFAULT_SM2_ID,)
    for user_id in ids:
        try:
            verify(key, scheme, message, signature, user_id=user_id)
            return scheme
        except MedsignError:
            continue
    raise failed(SubIndication.SIG_CRYPTO_FAILURE, "signature does not verify")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        verify_signed_by(
            issuer.public_key.dump(),
            cert["signature_algorithm"],
            cert["tbs_certificate"].dump(),
            cert["signature_value"].native,
        )
        return True
    except MedsignError:
        return False


def _could_issue(cert: x509.Certificate, candidate: x509.Certificate) -> bool:
    if candidate.subject != cert.issuer:
        return False
    aki = cert.authority_key_identifier
    ski = candidate.key_identifier
    return aki is None or ski is None or aki == ski


def _critical_unknown(cert: x509.Certificate) -> str | None:
    for extension in cert["tbs_certificate"]["extensions"]:
        name = extension["extn_id"].native
        if extension["critical"].native and name not in _UNDERSTOOD:
            return str(name)
    return None


def _check_issuer(cert: x509.Certificate, below: int) -> None:
    """``cert`` signs ``below`` further CA certificates before the end entity."""
    subject = render_name(cert.subject)
    constraints = cert.basic_constraints_value
    if constraints is None or not constraints["ca"].native:
        raise indeterminate(
            SubIndication.CHAIN_CONSTRAINTS_FAILURE, f"{subject} is not a CA certificate"
        )
    path_len = constraints["path_len_constraint"].native
    if path_len is not None and below > path_len:
        raise indeterminate(
            SubIndication.CHAIN_CONSTRAINTS_FAILURE, f"path length constraint of {subject} exceeded"
        )
    usage = cert.key_usage_value
    if usage is not None and "key_cert_sign" not in usage.native:
        raise indeterminate(
            SubIndication.CHAIN_CONSTRAINTS_FAILURE, f"{subject} may not sign certificates"
        )


def check_signing_usage(cert: x509.Certificate) -> None:
    """An end-entity certificate must allow signatures if it restricts its key usage."""
    usage = cert.key_usage_value
    if usage is not None and not {"digital_signature", "non_repudiation"} & set(usage.native):
        raise indeterminate(
            SubIndication.CHAIN_CONSTRAINTS_FAILURE,
            "the signer's certificate does not allow digital signatures",
        )


def build_path(
    leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], trust: TrustStore
) -> CertificationPath:
    """The first path (depth first) from ``leaf`` to an anchor whose links all verify."""
    candidates = [*intermediates, *trust.intermediates]
    anchors = trust.anchors

    def extend(path: list[x509.Certificate]) -> CertificationPath | None:
        current = path[-1]
        anchor = trust.anchor_for(current, anchors)
        if anchor is not None:
            return CertificationPath(tuple(path), anchor)
        if len(path) > MAX_PATH_LENGTH:
            return None
        issuers = [a.certificate for a in anchors] + candidates
        for issuer in issuers:
            if any(issuer.dump() == c.dump() for c in path):
                continue
            if _could_issue(current, issuer) and _signed_by(current, issuer):
                found = extend([*path, issuer])
                if found is not None:
                    return found
        return None

    path = extend([leaf])
    if path is None:
        raise indeterminate(
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            f"no path from {render_name(leaf.subject)} to a trust anchor"
            f" ({len(anchors)} configured)",
        )
    return path


def verify_path(
    leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], trust: TrustStore
) -> CertificationPath:
    """Build a path and check its constraints; returns it or raises ``CheckFailure``."""
    path = build_path(leaf, intermediates, trust)
    # The anchor is trusted as configured; only certificates below it are checked.
    below_anchor = path.certificates[:-1]
    for depth, cert in enumerate(below_anchor):
        unknown = _critical_unknown(cert)
        if unknown is not None:
            raise indeterminate(
                SubIndication.CHAIN_CONSTRAINTS_FAILURE,
                f"{render_name(cert.subject)} has an unsupported critical extension {unknown}",
            )
        if depth > 0:
            _check_issuer(cert, depth - 1)
    if len(path.certificates) > 1:
        _check_issuer(path.certificates[-1], len(path.certificates) - 2)
    check_signing_usage(path.leaf)
    return path


def validity(cert: x509.Certificate) -> tuple[dt.datetime, dt.datetime]:
    period = cert["tbs_certificate"]["validity"]
    return period["not_before"].native, period["not_after"].native


def first_invalid(
    certificates: Sequence[x509.Certificate], at: dt.datetime
) -> tuple[x509.Certificate, str] | None:
    """The first certificate not valid at ``at``, and "expired" or "not-yet-valid"."""
    for cert in certificates:
        not_before, not_after = validity(cert)
        if at > not_after:
            return cert, "expired"
        if at < not_before:
            return cert, "not-yet-valid"
    return None


__all__ = [
    "CertificationPath",
    "TrustAnchor",
    "TrustStore",
    "build_path",
    "check_signing_usage",
    "first_invalid",
    "load_certificates",
    "parse_certificate",
    "validity",
    "verify_path",
    "verify_signed_by",
]
