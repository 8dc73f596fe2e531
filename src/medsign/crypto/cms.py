"""CMS (RFC 5652) detached SignedData, built from pre-encoded DER, with CAdES-T timestamps.

Building: every part that is the same for all signatures of one signer (the certificates set,
the signer identifier, the algorithm identifiers, the ESS signing-certificate-v2 attribute,
the content-type attribute) is encoded once per ``SignedDataTemplate``; one signature then only
encodes its message digest and signing time, asks ``sign`` for the signature value over the
DER signed-attributes SET, and splices the pieces together with hand-written DER lengths.
Nothing here touches a private key: the caller's ``sign`` callback goes to the key store.

SM2 follows GB/T 35275-2017 (GM/T 0010-2012, the SM2 profile of PKCS#7): the content types
are the GM ``data``/``signedData`` OIDs, the digest is SM3 and the signer's algorithm is
SM2-1 (1.2.156.10197.1.301.1); the signature covers SM3(Z || signed attributes) with the
default ID, exactly as for X.509 (ADR 0003). See ADR 0004 for the sources.

Verification (``verify_signed_data``) re-parses with asn1crypto and accepts what medsign
produces plus the common variants of other producers (rsaEncryption, SM2-with-SM3 501).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asn1crypto import algos, cms, core, tsp, x509

from medsign.crypto import oids
from medsign.crypto.public import PublicKey, verify
from medsign.crypto.types import SignatureScheme
from medsign.crypto.x509alg import scheme_from_algorithm, signature_algorithm
from medsign.errors import InputError, VerificationError

oids.register_asn1crypto_oids()
# Importing asn1crypto.tsp is what teaches asn1crypto.cms the ESS signing-certificate
# attributes; name it so the import is not optimised away by a linter.
_ESS_SPECS = tsp.SigningCertificateV2

__all__ = [
    "DIGEST_SIZES",
    "CMSSignature",
    "SignedDataTemplate",
    "SignerInfoSummary",
    "add_signature_timestamp",
    "build_signed_data",
    "der_length",
    "der_tlv",
    "encode_time",
    "read_tlv",
    "signature_timestamp_imprint",
    "signed_data_template",
    "verify_signed_data",
]

DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64, "sm3": 32}

# -- minimal DER ----------------------------------------------------------------------------


def der_length(size: int) -> bytes:
    """X.690 §10.1 definite, minimal length octets."""
    if size < 0x80:
        return bytes((size,))
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def der_tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    # The short forms inline: a TSA token builds some fifteen TLVs, most under 64 KiB.
    if size < 0x80:
        return bytes((tag, size)) + content
    if size < 0x100:
        return bytes((tag, 0x81, size)) + content
    if size < 0x10000:
        return bytes((tag, 0x82, size >> 8, size & 0xFF)) + content
    return bytes((tag,)) + der_length(size) + content


def der_integer(value: int) -> bytes:
    size = value.bit_length() // 8 + 1 if value >= 0 else (value + 1).bit_length() // 8 + 1
    return der_tlv(0x02, value.to_bytes(size, "big", signed=True))


def der_oid(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


def read_tlv(data: bytes, pos: int, end: int | None = None) -> tuple[int, int, int]:
    """(tag, contents start, contents end) of the DER TLV at ``pos``; raises ``InputError``.

    Only single-octet tags and definite minimal lengths: what DER allows for everything CMS,
    TSP and X.509 use.
    """
    limit = len(data) if end is None else end
    if pos + 2 > limit:
        raise InputError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise InputError("high-number DER tags are not supported")
    first = data[pos + 1]
    if first < 0x80:
        start, size = pos + 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + 2 + count > limit or data[pos + 2] == 0:
            raise InputError("indefinite or non-minimal DER length")
        size = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
        if size < 0x80:
            raise InputError("non-minimal DER length")
        start = pos + 2 + count
    if start + size > limit:
        raise InputError("truncated DER")
    return tag, start, start + size


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, header start, contents start, contents end) of each TLV in data[start:end]."""
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = read_tlv(data, pos, end)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


def encode_time(moment: dt.datetime) -> bytes:
    """RFC 5652 §11.3 Time: UTCTime for 1950–2049, GeneralizedTime otherwise, whole seconds."""
    if moment.tzinfo is None:
        raise InputError("signing time must be UTC-aware")
    utc = moment.astimezone(dt.UTC)
    if 1950 <= utc.year < 2050:
        return der_tlv(0x17, utc.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return der_tlv(0x18, utc.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


# -- object identifiers, pre-encoded ----------------------------------------------------------

_OID_DATA = der_oid("1.2.840.113549.1.7.1")
_OID_SIGNED_DATA = der_oid("1.2.840.113549.1.7.2")
_OID_GM_DATA = der_oid(oids.GM_DATA)
_OID_GM_SIGNED_DATA = der_oid(oids.GM_SIGNED_DATA)
_OID_CONTENT_TYPE = der_oid("1.2.840.113549.1.9.3")
_OID_MESSAGE_DIGEST = der_oid("1.2.840.113549.1.9.4")
_OID_SIGNING_TIME = der_oid("1.2.840.113549.1.9.5")
_OID_SIGNING_CERTIFICATE_V2 = der_oid("1.2.840.113549.1.9.16.2.47")
_OID_SIGNATURE_TIMESTAMP = der_oid("1.2.840.113549.1.9.16.2.14")

DIGEST_OIDS = {
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
    "sm3": oids.SM3,
}


def digest_algorithm_der(hash_name: str) -> bytes:
    """AlgorithmIdentifier with absent parameters (RFC 5754 §2; GB/T 35275 for SM3)."""
    try:
        return der_tlv(0x30, der_oid(DIGEST_OIDS[hash_name]))
    except KeyError:
        raise InputError(f"unsupported digest algorithm {hash_name!r}") from None


def _attribute(oid_der: bytes, value_der: bytes) -> bytes:
    return der_tlv(0x30, oid_der + der_tlv(0x31, value_der))


def ess_signing_certificate_v2(certificate_der: bytes) -> bytes:
    """The RFC 5035 signing-certificate-v2 attribute: SHA-256 (the default, so the
    AlgorithmIdentifier is omitted) of the certificate, with its issuerSerial."""
    try:
        tbs = x509.Certificate.load(certificate_der)["tbs_certificate"]
        issuer_der = bytes(tbs["issuer"].dump())
        serial_der = bytes(tbs["serial_number"].dump())
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError("malformed certificate") from exc
    issuer_serial = der_tlv(0x30, der_tlv(0x30, der_tlv(0xA4, issuer_der)) + serial_der)
    cert_id = der_tlv(0x30, der_tlv(0x04, hashlib.sha256(certificate_der).digest()) + issuer_serial)
    value = der_tlv(0x30, der_tlv(0x30, cert_id))
    return _attribute(_OID_SIGNING_CERTIFICATE_V2, value)


def _signer_algorithm_der(scheme: SignatureScheme) -> bytes:
    if scheme is SignatureScheme.SM2_SM3:
        # GB/T 35275-2017 §8 (digestEncryptionAlgorithm): SM2-1, no parameters.
        return der_tlv(0x30, der_oid(oids.SM2_SIGN))
    return bytes(signature_algorithm(scheme).dump())


# -- building -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CMSSignature:
    """A detached CMS SignedData and the pieces callers keep (evidence, timestamps)."""

    der: bytes
    signature: bytes  # the SignerInfo signature value (DER for ECDSA/SM2)
    signed_attributes_der: bytes  # the SET that was signed
    signing_time: dt.datetime
    digest_name: str
    scheme: SignatureScheme


class SignedDataTemplate:
    """Everything about one signer that does not change from signature to signature."""

    def __init__(
        self,
        signer_certificate_der: bytes,
        chain_der: Sequence[bytes],
        scheme: SignatureScheme,
        digest_name: str,
        *,
        content_type_oid: str | None = None,
        signing_time_attribute: bool = True,
        gm_content_types: bool | None = None,
    ) -> None:
        if not scheme.signs_digest:
            # The signed attributes' digest goes through ``KeyStore.sign_digest``.
            raise InputError(f"CMS signatures with {scheme} are not supported")
        if digest_name != scheme.hash_name:
            raise InputError(f"scheme {scheme} signs with {scheme.hash_name}, not {digest_name}")
        try:
            certificate = x509.Certificate.load(signer_certificate_der)
            tbs = certificate["tbs_certificate"]
            issuer_der = bytes(tbs["issuer"].dump())
            serial_der = bytes(tbs["serial_number"].dump())
            spki_der = bytes(tbs["subject_public_key_info"].dump())
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError("malformed signer certificate") from exc
        self.public_key = PublicKey.from_der(spki_der)
        if not self.public_key.supports(scheme):
            raise InputError(f"scheme {scheme} does not fit the signer's key")
        self.scheme = scheme
        self.digest_name = digest_name
        self.digest_size = DIGEST_SIZES[digest_name]
        # GB/T 35275 content types for SM2 by default; RFC 3161 tokens keep RFC 5652's.
        gm = scheme is SignatureScheme.SM2_SM3 if gm_content_types is None else gm_content_types
        self.signed_data_oid = _OID_GM_SIGNED_DATA if gm else _OID_SIGNED_DATA
        if content_type_oid is not None:
            content_type = der_oid(content_type_oid)
        else:
            content_type = _OID_GM_DATA if gm else _OID_DATA
        self.content_type_der = content_type
        self._signing_time_attribute = signing_time_attribute
        digest_alg = digest_algorithm_der(digest_name)
        # RFC 5652 §5.1: version 3 when eContentType is not id-data; GB/T 35275 keeps the
        # PKCS#7 version 1 for its own data type.
        version = 3 if content_type not in (_OID_DATA, _OID_GM_DATA) else 1
        self._head = der_integer(version) + der_tlv(0x31, digest_alg)
        certificates = [signer_certificate_der, *chain_der]
        self._certificates = der_tlv(0xA0, b"".join(certificates))
        sid = der_tlv(0x30, issuer_der + serial_der)
        self._signer_head = der_integer(1) + sid + digest_alg
        self._signer_algorithm = _signer_algorithm_der(scheme)
        self._content_type_attr = _attribute(_OID_CONTENT_TYPE, content_type)
        self._ess_attr = ess_signing_certificate_v2(signer_certificate_der)
        self._time_cache: tuple[int, bytes] = (-1, b"")

    def _time_attribute(self, signing_time: dt.datetime) -> bytes:
        stamp = int(signing_time.timestamp())
        cached = self._time_cache
        if cached[0] == stamp:
            return cached[1]
        attr = _attribute(_OID_SIGNING_TIME, encode_time(signing_time))
        self._time_cache = (stamp, attr)
        return attr

    def signed_attributes(self, content_digest: bytes, signing_time: dt.datetime | None) -> bytes:
        """The DER SET OF Attribute the signature covers (tag 0x31)."""
        if len(content_digest) != self.digest_size:
            raise InputError(f"{self.digest_name} digest must be {self.digest_size} bytes")
        attributes = [
            self._content_type_attr,
            _attribute(_OID_MESSAGE_DIGEST, der_tlv(0x04, content_digest)),
            self._ess_attr,
        ]
        if self._signing_time_attribute:
            if signing_time is None:
                raise InputError("a signing time is required")
            attributes.append(self._time_attribute(signing_time))
        # DER SET OF: ascending by encoding (X.690 §11.6).
        attributes.sort()
        return der_tlv(0x31, b"".join(attributes))

    def assemble(
        self,
        signed_attributes_der: bytes,
        signature: bytes,
        *,
        econtent: bytes | None = None,
        certificates: bool = True,
    ) -> bytes:
        """ContentInfo(SignedData) DER from the signed attributes and their signature."""
        signer_info = der_tlv(
            0x30,
            self._signer_head
            + b"\xa0"
            + signed_attributes_der[1:]
            + self._signer_algorithm
            + der_tlv(0x04, signature),
        )
        encap = self.content_type_der
        if econtent is not None:
            encap += der_tlv(0xA0, der_tlv(0x04, econtent))
        body = (
            self._head
            + der_tlv(0x30, encap)
            + (self._certificates if certificates else b"")
            + der_tlv(0x31, signer_info)
        )
        return der_tlv(0x30, self.signed_data_oid + der_tlv(0xA0, der_tlv(0x30, body)))

    def build(
        self,
        content_digest: bytes,
        signing_time: dt.datetime,
        sign: Callable[[bytes], bytes],
    ) -> CMSSignature:
        attributes = self.signed_attributes(content_digest, signing_time)
        signature = sign(attributes)
        return CMSSignature(
            der=self.assemble(attributes, signature),
            signature=signature,
            signed_attributes_der=attributes,
            signing_time=signing_time,
            digest_name=self.digest_name,
            scheme=self.scheme,
        )


@functools.lru_cache(maxsize=256)
def _cached_template(
    signer_certificate_der: bytes,
    chain_der: tuple[bytes, ...],
    scheme: SignatureScheme,
    digest_name: str,
) -> SignedDataTemplate:
    return SignedDataTemplate(signer_certificate_der, chain_der, scheme, digest_name)


def signed_data_template(
    signer_certificate_der: bytes,
    chain_der: Sequence[bytes],
    scheme: SignatureScheme,
    digest_name: str,
) -> SignedDataTemplate:
    """A (cached) template for one signer: use it directly to sign batches in two phases."""
    return _cached_template(bytes(signer_certificate_der), tuple(chain_der), scheme, digest_name)


def build_signed_data(
    *,
    content_digest: bytes,
    digest_name: str,
    signer_certificate_der: bytes,
    chain_der: Sequence[bytes],
    scheme: SignatureScheme,
    signing_time: dt.datetime,
    sign: Callable[[bytes], bytes],
) -> CMSSignature:
    """A detached SignedData over ``content_digest``.

    ``sign`` receives the DER signed-attributes SET and returns the signature value (DER
    SEQUENCE{r, s} for ECDSA/SM2, with SM2's Z computed over the default ID by the caller, as
    ``medsign.crypto.message_digest`` does).
    """
    template = signed_data_template(signer_certificate_der, chain_der, scheme, digest_name)
    return template.build(content_digest, signing_time, sign)


# -- CAdES-T --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SignerLocation:
    """Where the only SignerInfo and its signature sit in a ContentInfo DER."""

    path: tuple[tuple[int, int, int], ...]  # (tag, header start, contents end) outermost first
    signer_info: tuple[int, int, int]  # header start, contents start, contents end
    signature: tuple[int, int]  # contents start, end
    unsigned: tuple[int, int, int] | None  # header start, contents start, contents end


def _locate_signer(der: bytes) -> _SignerLocation:
    tag, start, end = read_tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise InputError("not a DER ContentInfo")
    parts = _children(der, start, end)
    if len(parts) != 2 or parts[0][0] != 0x06 or parts[1][0] != 0xA0:
        raise InputError("not a SignedData ContentInfo")
    oid = der[parts[0][1] : parts[0][3]]
    if oid not in (_OID_SIGNED_DATA, _OID_GM_SIGNED_DATA):
        raise InputError("not a SignedData ContentInfo")
    wrapper = parts[1]
    sd_tag, sd_start, sd_end = read_tlv(der, wrapper[2], wrapper[3])
    if sd_tag != 0x30 or sd_end != wrapper[3]:
        raise InputError("malformed SignedData")
    fields = _children(der, sd_start, sd_end)
    if not fields or fields[-1][0] != 0x31:
        raise InputError("SignedData without signerInfos")
    infos = _children(der, fields[-1][2], fields[-1][3])
    if len(infos) != 1 or infos[0][0] != 0x30:
        raise InputError("exactly one SignerInfo is supported")
    info = infos[0]
    items = _children(der, info[2], info[3])
    octets = [item for item in items if item[0] == 0x04]
    if len(octets) != 1:
        raise InputError("malformed SignerInfo")
    unsigned = [item for item in items if item[0] == 0xA1]
    if unsigned and unsigned[0] is not items[-1]:
        raise InputError("malformed SignerInfo")
    return _SignerLocation(
        path=(
            (0x30, 0, end),
            (0xA0, wrapper[1], wrapper[3]),
            (0x30, wrapper[2], sd_end),
            (0x31, fields[-1][1], fields[-1][3]),
        ),
        signer_info=(info[1], info[2], info[3]),
        signature=(octets[0][2], octets[0][3]),
        unsigned=(unsigned[0][1], unsigned[0][2], unsigned[0][3]) if unsigned else None,
    )


def signature_timestamp_imprint(cms_der: bytes, hash_name: str) -> bytes:
    """The digest to send to a TSA for CAdES-T: hash of the SignerInfo signature value
    (the OCTET STRING contents; ETSI EN 319 122-1 §5.3, RFC 3161 Appendix A)."""
    location = _locate_signer(bytes(cms_der))
    start, end = location.signature
    try:
        return hashlib.new(hash_name, cms_der[start:end]).digest()
    except ValueError:
        raise InputError(f"unsupported digest algorithm {hash_name!r}") from None


def add_signature_timestamp(cms_der: bytes, token_der: bytes) -> bytes:
    """Add ``token_der`` as an id-aa-signatureTimeStampToken unsigned attribute (CAdES-T).

    Only lengths on the path from the SignerInfo to the ContentInfo are rewritten; every
    signed byte stays as it was.
    """
    der = bytes(cms_der)
    token = bytes(token_der)
    tag, _, end = read_tlv(token, 0)
    if tag != 0x30 or end != len(token):
        raise InputError("the timestamp token is not one DER ContentInfo")
    location = _locate_signer(der)
    attribute = _attribute(_OID_SIGNATURE_TIMESTAMP, token)
    info_header, info_start, info_end = location.signer_info
    if location.unsigned is None:
        signer_info = der_tlv(0x30, der[info_start:info_end] + der_tlv(0xA1, attribute))
    else:
        u_header, u_start, u_end = location.unsigned
        unsigned = der_tlv(0xA1, der[u_start:u_end] + attribute)
        signer_info = der_tlv(0x30, der[info_start:u_header] + unsigned)
    # Rebuild outwards: each level is (its contents before the child) + child + (after).
    replaced, child_start, child_end = signer_info, info_header, info_end
    for level_tag, level_header, level_end in reversed(location.path):
        _, level_start, _ = read_tlv(der, level_header)
        contents = der[level_start:child_start] + replaced + der[child_end:level_end]
        replaced = der_tlv(level_tag, contents)
        child_start, child_end = level_header, level_end
    return replaced


# -- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerInfoSummary:
    """What ``verify_signed_data`` established about the one signer."""

    signer_certificate_der: bytes
    certificates_der: tuple[bytes, ...]  # every certificate the SignedData carries
    scheme: SignatureScheme
    digest_name: str
    signing_time: dt.datetime | None
    signature: bytes
    signed_attributes_der: bytes
    signing_certificate_bound: bool  # an ESS signing-certificate(-v2) attribute matched
    timestamp_tokens: tuple[bytes, ...]  # id-aa-signatureTimeStampToken values, unverified


def _scheme_of(signer_info: cms.SignerInfo, public_key: PublicKey) -> SignatureScheme:
    alg = signer_info["signature_algorithm"]
    oid = alg["algorithm"].dotted
    params = alg["parameters"]
    if oid in (oids.SM2_SIGN, oids.SM2_WITH_SM3):
        if not isinstance(params, core.Void | core.Null) and params.dump() != b"\x05\x00":
            raise VerificationError("SM2 signature algorithm with parameters")
        return SignatureScheme.SM2_SM3
    if oid == "1.2.840.113549.1.1.1":  # rsaEncryption: the hash comes from digestAlgorithm
        return SignatureScheme.RSA_PKCS1_SHA256
    if oid == "1.2.840.10045.2.1":  # id-ecPublicKey, as some producers write
        return SignatureScheme.ECDSA_SHA256
    try:
        return scheme_from_algorithm(algos.SignedDigestAlgorithm.load(alg.dump()))
    except InputError as exc:
        raise VerificationError(f"unsupported signature algorithm: {exc}") from exc


def _find_certificate(certificates: Sequence[bytes], sid: cms.SignerIdentifier) -> bytes:
    for der in certificates:
        tbs = x509.Certificate.load(der)["tbs_certificate"]
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                tbs["serial_number"].native == wanted["serial_number"].native
                and tbs["issuer"].dump() == wanted["issuer"].dump()
            ):
                return der
        else:
            cert = x509.Certificate.load(der)
            if cert.key_identifier == sid.chosen.native:
                return der
    raise VerificationError("the signer certificate is not in the SignedData")


def _check_ess(attrs: dict[str, list[core.Asn1Value]], certificate_der: bytes) -> bool:
    """True when an ESS signing-certificate attribute names ``certificate_der``; raises when
    one is present and names another certificate."""
    bound = False
    for value in attrs.get("signing_certificate_v2", []):
        first = value["certs"][0]
        hash_name = first["hash_algorithm"]["algorithm"].native
        expected = hashlib.new(hash_name, certificate_der).digest()
        if first["cert_hash"].native != expected:
            raise VerificationError("ESS signing-certificate-v2 names another certificate")
        _check_issuer_serial(first["issuer_serial"], certificate_der)
        bound = True
    for value in attrs.get("signing_certificate", []):
        first = value["certs"][0]
        if first["cert_hash"].native != hashlib.sha1(certificate_der).digest():  # noqa: S324
            raise VerificationError("ESS signing-certificate names another certificate")
        _check_issuer_serial(first["issuer_serial"], certificate_der)
        bound = True
    return bound


def _check_issuer_serial(issuer_serial: core.Asn1Value, certificate_der: bytes) -> None:
    if isinstance(issuer_serial, core.Void):
        return
    tbs = x509.Certificate.load(certificate_der)["tbs_certificate"]
    if issuer_serial["serial_number"].native != tbs["serial_number"].native:
        raise VerificationError("ESS issuerSerial names another certificate")
    names = [name.chosen for name in issuer_serial["issuer"] if name.name == "directory_name"]
    if not any(name == tbs["issuer"] for name in names):
        raise VerificationError("ESS issuerSerial names another issuer")


def _attributes(attrs: cms.CMSAttributes) -> dict[str, list[core.Asn1Value]]:
    out: dict[str, list[core.Asn1Value]] = {}
    for attr in attrs:
        values = list(attr["values"])
        if len(values) != 1:
            raise VerificationError(f"attribute {attr['type'].native} must have one value")
        out.setdefault(attr["type"].native, []).append(values[0])
    return out


def verify_signed_data(cms_der: bytes, *, content_digest: bytes) -> SignerInfoSummary:
    """Verify a (detached) SignedData over ``content_digest``; returns what was verified.

    Checks: the message-digest attribute equals ``content_digest``, the content-type attribute
    equals eContentType, the signature over the signed attributes (SM2 with the default ID),
    and any ESS signing-certificate attribute against the signer certificate. It does not
    judge whether the certificate is trusted or revoked, nor verify timestamp tokens
    (``medsign.tsa.token.verify_token`` does that with ``signature_timestamp_imprint``).
    """
    try:
        info = cms.ContentInfo.load(bytes(cms_der), strict=True)
        if info["content_type"].dotted not in (
            "1.2.840.113549.1.7.2",
            oids.GM_SIGNED_DATA,
        ):
            raise VerificationError("not a SignedData")
        signed = info["content"]
        if not isinstance(signed, cms.SignedData):
            signed = cms.SignedData.load(info["content"].dump())
        signer_infos = list(signed["signer_infos"])
        if len(signer_infos) != 1:
            raise VerificationError("exactly one SignerInfo is supported")
        signer_info = signer_infos[0]
        certificates = tuple(
            bytes(choice.chosen.dump())
            for choice in signed["certificates"]
            if choice.name == "certificate"
        )
        signer_der = _find_certificate(certificates, signer_info["sid"])
        public_key = PublicKey.from_der(
            x509.Certificate.load(signer_der)["tbs_certificate"]["subject_public_key_info"].dump()
        )
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
        if digest_name not in DIGEST_SIZES:
            raise VerificationError(f"unsupported digest algorithm {digest_name}")
        scheme = _scheme_of(signer_info, public_key)
        if scheme.hash_name != digest_name:
            raise VerificationError(f"{scheme} does not sign with {digest_name}")
        signed_attrs = signer_info["signed_attrs"]
        if isinstance(signed_attrs, core.Void) or not len(signed_attrs):
            raise VerificationError("SignerInfo without signed attributes")
        attrs = _attributes(signed_attrs)
        encap = signed["encap_content_info"]
        content_types = attrs.get("content_type", [])
        if len(content_types) != 1 or content_types[0].dotted != encap["content_type"].dotted:
            raise VerificationError("content-type attribute does not match eContentType")
        digests = attrs.get("message_digest", [])
        if len(digests) != 1 or digests[0].native != bytes(content_digest):
            raise VerificationError("message-digest attribute does not match the content")
        econtent = encap["content"]
        if not isinstance(econtent, core.Void):
            payload = econtent.native if hasattr(econtent, "native") else b""
            if not isinstance(payload, bytes) or hashlib.new(digest_name, payload).digest() != (
                bytes(content_digest)
            ):
                raise VerificationError("encapsulated content does not match the digest")
        attrs_der = b"\x31" + bytes(signed_attrs.dump())[1:]
        signature = bytes(signer_info["signature"].native)
        verify(public_key, scheme, attrs_der, signature)
        bound = _check_ess(attrs, signer_der)
        times = attrs.get("signing_time", [])
        signing_time = times[0].native if times else None
        tokens: list[bytes] = []
        unsigned = signer_info["unsigned_attrs"]
        if not isinstance(unsigned, core.Void):
            for attr in unsigned:
                if attr["type"].dotted == "1.2.840.113549.1.9.16.2.14":
                    tokens.extend(bytes(value.dump()) for value in attr["values"])
    except VerificationError:
        raise
    except InputError as exc:
        raise VerificationError(f"SignedData rejected: {exc}") from exc
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise VerificationError(f"malformed SignedData: {exc}") from exc
    return SignerInfoSummary(
        signer_certificate_der=signer_der,
        certificates_der=certificates,
        scheme=scheme,
        digest_name=digest_name,
        signing_time=signing_time,
        signature=signature,
        signed_attributes_der=attrs_der,
        signing_certificate_bound=bound,
        timestamp_tokens=tuple(tokens),
    )
