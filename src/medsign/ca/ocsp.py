"""OCSP responder (RFC 6960, with the RFC 5019 lightweight profile's choices).

``respond`` never raises: every input, however broken, gets a DER ``OCSPResponse`` because the
HTTP layer must always have something RFC 6960 defines to send back.

Decisions, each with its reason:

* Unparseable input, an empty request list, more than ``MAX_CERT_IDS`` CertIDs, or a nonce
  outside 1..32 octets (RFC 8954 §2.1) → ``malformedRequest``, unsigned.
* A CertID naming an issuer we do not run, or a root CA (which has no delegated responder) →
  ``unauthorized``, unsigned (RFC 5019 §2.2.3). Answering a signed ``unknown`` would need a key
  the client trusts for that issuer, and no such key exists here.
* CertIDs naming more than one CA in one request → ``unauthorized``. Each issuing CA has its
  own delegated responder and a client accepts a delegated signer only for certificates of the
  CA that certified it (RFC 6960 §4.2.2.2), so no single signature could cover them all.
* An issuing CA without a currently valid responder certificate → ``tryLater``; this is an
  operational gap (rotation pending), not a property of the request.
* Per CertID: ``good``; ``revoked`` with revocationTime and the reason (``certificateHold`` for
  held certificates; ``unspecified`` is left out as on CRLs); ``unknown`` when the serial was
  never issued by that CA. Issuer hashes are matched with the CertID's own hash algorithm
  (SHA-1 as OpenSSL sends by default, SHA-2 and SM3 also accepted).
* The response is signed by the delegated responder of that CA through the key store, carries
  that certificate in ``certs``, names it by key (SHA-1 of its public key, RFC 6960 §4.2.2.3)
  and echoes the nonce.

The status of each certificate is read from the database on every request, so revocation is
visible at once; only facts that cannot change for a given row (CA certificate hashes, the
responder certificate and its key handle) are cached, the latter for at most
``RESPONDER_CACHE_SECONDS`` and dropped by ``on_status_change``.

Pre-produced responses (RFC 5019 §2.2, §6): a request WITHOUT a nonce may be answered with a
response signed earlier for the same CertIDs, but only if the statuses just read from the
database are exactly the ones in that response, it was signed by the current responder
certificate, and it is younger than ``REUSE_SECONDS`` (and than a quarter of the validity).
So a revocation committed by any process is reflected in the very next answer, as before;
what is reused is only the signature over unchanged facts (a client sees a producedAt up to
``REUSE_SECONDS`` old). Requests with a nonce are always signed afresh.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import algos, core, ocsp, x509
from asn1crypto import crl as asn1_crl
from sqlalchemy import bindparam, select

from medsign.ca.crl import revocation_reason
from medsign.ca.signing import StructureSigner, der_tlv
from medsign.clock import Clock, ensure_utc
from medsign.crypto.types import SignatureScheme
from medsign.db import Database
from medsign.db.tables import CertificateAuthorityRow, CertificateRow
from medsign.ids import KeyId
from medsign.keys.base import KeyRef, KeyStore

__all__ = ["MAX_CERT_IDS", "MAX_NONCE_SIZE", "MAX_REQUEST_SIZE", "OCSPResponder"]

log = logging.getLogger(__name__)

OCSP_ACTOR = "ca:ocsp"
OCSP_PURPOSE = "ocsp"
RESPONDER_PROFILE = "ocsp"

MAX_REQUEST_SIZE = 64 * 1024
MAX_CERT_IDS = 64
MAX_NONCE_SIZE = 32  # RFC 8954 §2.1
RESPONDER_CACHE_SECONDS = 60.0
REUSE_SECONDS = 60
REUSE_ENTRIES = 4096

# CertID hash algorithms we can match (asn1crypto name → hashlib name).
CERT_ID_HASHES: dict[str, str] = {
    "sha1": "sha1",
    "sha224": "sha224",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sm3": "sm3",
}


def _unsigned(status: str) -> bytes:
    return bytes(ocsp.OCSPResponse({"response_status": status}).dump())


MALFORMED_REQUEST = _unsigned("malformed_request")
INTERNAL_ERROR = _unsigned("internal_error")
TRY_LATER = _unsigned("try_later")
UNAUTHORIZED = _unsigned("unauthorized")


class _Reject(Exception):
    """Ends request handling with one of the unsigned error responses above."""

    def __init__(self, response: bytes, why: str) -> None:
        super().__init__(why)
        self.response = response


@dataclass(frozen=True)
class _Query:
    cert_id_der: bytes  # echoed byte for byte: clients match responses to requests by it
    hash_name: str
    name_hash: bytes
    key_hash: bytes
    serial: int


@dataclass(frozen=True)
class _ParsedRequest:
    queries: tuple[_Query, ...]
    nonce_extension: bytes | None  # the extnValue contents to echo


@dataclass(frozen=True)
class _Authority:
    id: str
    level: str


@dataclass(frozen=True)
class _Responder:
    ca_id: str
    key: KeyRef
    scheme: SignatureScheme
    signer: StructureSigner
    # DER pieces that are the same in every response this responder signs.
    responder_id_der: bytes  # [2] EXPLICIT KeyHash
    algorithm_der: bytes  # AlgorithmIdentifier
    certs_der: bytes  # [0] EXPLICIT SEQUENCE OF Certificate
    not_before: dt.datetime
    not_after: dt.datetime
    loaded_at: float


@dataclass(frozen=True)
class _Status:
    status: str
    reason: str | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class _Produced:
    """A signed response to a nonce-less request, and the facts it states."""

    responder_certs_der: bytes
    responder_key_id: str
    statuses: tuple[_Status | None, ...]
    produced_at: dt.datetime
    response: bytes


def _issuer_hashes(certificate_der: bytes) -> dict[str, tuple[bytes, bytes]]:
    """(issuerNameHash, issuerKeyHash) of a CA certificate for each supported hash."""
    certificate = x509.Certificate.load(certificate_der)
    name_der = certificate.subject.dump()
    spki = certificate["tbs_certificate"]["subject_public_key_info"]
    # RFC 6960 §4.1.1: the hash of the subjectPublicKey BIT STRING value, without the
    # unused-bits octet, tag and length.
    key_bits = bytes(spki["public_key"].contents)[1:]
    hashes: dict[str, tuple[bytes, bytes]] = {}
    for asn1_name, hashlib_name in CERT_ID_HASHES.items():
        try:
            name_hash = hashlib.new(hashlib_name, name_der).digest()
            key_hash = hashlib.new(hashlib_name, key_bits).digest()
        except ValueError:  # e.g. SM3 missing from a FIPS-restricted OpenSSL
            continue
        hashes[asn1_name] = (name_hash, key_hash)
    return hashes


def _parse_request(request_der: bytes) -> _ParsedRequest:
    if not isinstance(request_der, bytes | bytearray) or not request_der:
        raise _Reject(MALFORMED_REQUEST, "empty request")
    if len(request_der) > MAX_REQUEST_SIZE:
        raise _Reject(MALFORMED_REQUEST, "request too large")
    fast = _parse_plain_request(bytes(request_der))
    if fast is not None:
        return fast
    return _parse_any_request(request_der)


# -- the plain request, read without building an asn1crypto tree ---------------------------
#
# Almost every request is the shape OpenSSL and browsers send: unsigned, no version, no
# requestorName, CertIDs without per-request extensions, at most a nonce. That shape is read
# here by a strict DER reader; anything else it does not fully understand (other encodings,
# other fields, other extensions, a nonce it would have to judge) makes it give up, and
# ``_parse_any_request`` (asn1crypto) decides. So this reader never rejects and never accepts
# what the full parser would refuse; tests/ca/test_ocsp_parse.py checks that the two agree.

_TAG_SEQUENCE = 0x30
_TAG_OCTET_STRING = 0x04
_TAG_INTEGER = 0x02
_TAG_OID = 0x06
_NULL = b"\x05\x00"
_OID_NONCE_VALUE = bytes.fromhex("2b0601050507300102")  # contents of id-pkix-ocsp-nonce


def _digest_oids() -> dict[bytes, str]:
    """OID contents → asn1crypto name, for the CertID hashes we can match."""
    out: dict[bytes, str] = {}
    for name in CERT_ID_HASHES:
        try:
            oid = algos.DigestAlgorithmId(name)
        except ValueError:
            continue
        out[bytes(oid.contents)] = name
    return out


_DIGEST_OIDS = _digest_oids()


def _tlv_at(data: bytes, pos: int, end: int) -> tuple[int, int, int] | None:
    """(tag, contents start, contents end) of the minimal-DER TLV at ``pos``, within ``end``."""
    if pos + 2 > end:
        return None
    tag = data[pos]
    if tag & 0x1F == 0x1F:  # high tag numbers: not in an OCSP request we read here
        return None
    first = data[pos + 1]
    if first < 0x80:
        start = pos + 2
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or pos + 2 + count > end or data[pos + 2] == 0:
            return None  # indefinite, absurd or non-minimal length
        length = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
        if length < 0x80:
            return None  # DER uses the short form for these
        start = pos + 2 + count
    if start + length > end:
        return None
    return tag, start, start + length


def _plain_cert_id(data: bytes, tlv_start: int, start: int, end: int) -> _Query | None:
    """A CertID whose hash is one we know, with absent or NULL parameters."""
    algorithm = _tlv_at(data, start, end)
    if algorithm is None or algorithm[0] != _TAG_SEQUENCE:
        return None
    oid = _tlv_at(data, algorithm[1], algorithm[2])
    if oid is None or oid[0] != _TAG_OID:
        return None
    hash_name = _DIGEST_OIDS.get(data[oid[1] : oid[2]])
    parameters = data[oid[2] : algorithm[2]]
    if hash_name is None or parameters not in (b"", _NULL):
        return None
    name_hash = _tlv_at(data, algorithm[2], end)
    if name_hash is None or name_hash[0] != _TAG_OCTET_STRING:
        return None
    key_hash = _tlv_at(data, name_hash[2], end)
    if key_hash is None or key_hash[0] != _TAG_OCTET_STRING:
        return None
    serial = _tlv_at(data, key_hash[2], end)
    if serial is None or serial[0] != _TAG_INTEGER or serial[2] != end or serial[1] == serial[2]:
        return None
    return _Query(
        cert_id_der=data[tlv_start:end],
        hash_name=hash_name,
        name_hash=data[name_hash[1] : name_hash[2]],
        key_hash=data[key_hash[1] : key_hash[2]],
        serial=int.from_bytes(data[serial[1] : serial[2]], "big", signed=True),
    )


def _plain_nonce(data: bytes, start: int, end: int) -> bytes | None:
    """[2] EXPLICIT Extensions holding exactly one non-critical, well-formed nonce."""
    extensions = _tlv_at(data, start, end)
    if extensions is None or extensions[0] != _TAG_SEQUENCE or extensions[2] != end:
        return None
    extension = _tlv_at(data, extensions[1], extensions[2])
    if extension is None or extension[0] != _TAG_SEQUENCE or extension[2] != extensions[2]:
        return None
    oid = _tlv_at(data, extension[1], extension[2])
    if oid is None or oid[0] != _TAG_OID or data[oid[1] : oid[2]] != _OID_NONCE_VALUE:
        return None
    value = _tlv_at(data, oid[2], extension[2])
    if value is None or value[0] != _TAG_OCTET_STRING or value[2] != extension[2]:
        return None
    raw = data[value[1] : value[2]]
    inner = _tlv_at(raw, 0, len(raw))
    if inner is None or inner[0] != _TAG_OCTET_STRING or inner[2] != len(raw):
        return None
    if not 1 <= inner[2] - inner[1] <= MAX_NONCE_SIZE:
        return None
    return raw


def _parse_plain_request(data: bytes) -> _ParsedRequest | None:
    """The plain request shape (see above), or None to leave the request to asn1crypto."""
    outer = _tlv_at(data, 0, len(data))
    if outer is None or outer[0] != _TAG_SEQUENCE or outer[2] != len(data):
        return None
    tbs = _tlv_at(data, outer[1], outer[2])
    if tbs is None or tbs[0] != _TAG_SEQUENCE or tbs[2] != outer[2]:  # no optionalSignature
        return None
    request_list = _tlv_at(data, tbs[1], tbs[2])  # first field: no version, no requestorName
    if request_list is None or request_list[0] != _TAG_SEQUENCE:
        return None
    queries: list[_Query] = []
    position = request_list[1]
    while position < request_list[2]:
        if len(queries) == MAX_CERT_IDS:
            return None
        request = _tlv_at(data, position, request_list[2])
        if request is None or request[0] != _TAG_SEQUENCE:
            return None
        cert_id = _tlv_at(data, request[1], request[2])
        # The CertID must fill the Request: no singleRequestExtensions.
        if cert_id is None or cert_id[0] != _TAG_SEQUENCE or cert_id[2] != request[2]:
            return None
        # The CertID's TLV starts where the Request's contents do.
        query = _plain_cert_id(data, request[1], cert_id[1], cert_id[2])
        if query is None:
            return None
        queries.append(query)
        position = request[2]
    if not queries:
        return None
    nonce: bytes | None = None
    if request_list[2] != tbs[2]:
        extensions = _tlv_at(data, request_list[2], tbs[2])
        if extensions is None or extensions[0] != 0xA2 or extensions[2] != tbs[2]:
            return None
        nonce = _plain_nonce(data, extensions[1], extensions[2])
        if nonce is None:
            return None
    return _ParsedRequest(queries=tuple(queries), nonce_extension=nonce)


def _parse_any_request(request_der: bytes) -> _ParsedRequest:
    """Every request shape, through asn1crypto; raises ``_Reject`` on what it refuses."""
    try:
        request = ocsp.OCSPRequest.load(bytes(request_der), strict=True)
        tbs = request["tbs_request"]
        if tbs["version"].native != "v1":
            raise _Reject(MALFORMED_REQUEST, "unsupported request version")
        request_list = tbs["request_list"]
        if len(request_list) == 0:
            raise _Reject(MALFORMED_REQUEST, "no CertID in request")
        if len(request_list) > MAX_CERT_IDS:
            raise _Reject(MALFORMED_REQUEST, "too many CertIDs")
        queries = []
        for item in request_list:
            cert_id = item["req_cert"]
            algorithm = cert_id["hash_algorithm"]["algorithm"].native
            queries.append(
                _Query(
                    cert_id_der=bytes(cert_id.dump()),
                    hash_name=str(algorithm),
                    name_hash=bytes(cert_id["issuer_name_hash"].native),
                    key_hash=bytes(cert_id["issuer_key_hash"].native),
                    serial=int(cert_id["serial_number"].native),
                )
            )
            # Parse (and so validate) the per-request extensions too, though none is used.
            _ = item["single_request_extensions"].native
        nonce = _nonce_extension(tbs["request_extensions"])
    except _Reject:
        raise
    except Exception as exc:  # asn1crypto raises many types for hostile input
        raise _Reject(MALFORMED_REQUEST, f"unparseable request: {exc}") from exc
    return _ParsedRequest(queries=tuple(queries), nonce_extension=nonce)


def _nonce_extension(extensions: ocsp.TBSRequestExtensions) -> bytes | None:
    if not isinstance(extensions, ocsp.TBSRequestExtensions):
        return None
    found: bytes | None = None
    for extension in extensions:
        if extension["extn_id"].native != "nonce":
            continue
        if found is not None:
            raise _Reject(MALFORMED_REQUEST, "duplicate nonce extension")
        raw = bytes(extension["extn_value"].contents)
        try:
            value = bytes(core.OctetString.load(raw, strict=True).native)
        except (ValueError, TypeError):
            # Some old clients put the nonce bytes straight into extnValue; RFC 8954 keeps
            # accepting them, and echoing the same octets back is all a client checks.
            value = raw
        if not 1 <= len(value) <= MAX_NONCE_SIZE:
            raise _Reject(MALFORMED_REQUEST, f"nonce of {len(value)} octets")
        found = raw
    return found


def _decode_get_path(path_b64: str) -> bytes:
    """RFC 6960 appendix A.1: url-encoding of the base64 of the DER request."""
    text = urllib.parse.unquote(path_b64.strip().lstrip("/"))
    # A form-style decoder may already have turned '+' into ' '; some clients use base64url.
    text = text.replace(" ", "+").replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    if len(text) > MAX_REQUEST_SIZE * 4 // 3 + 4:
        raise _Reject(MALFORMED_REQUEST, "request too large")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Reject(MALFORMED_REQUEST, "bad base64 in GET request") from exc


_STATUS_QUERY = select(
    CertificateRow.serial_hex,
    CertificateRow.status,
    CertificateRow.revocation_reason,
    CertificateRow.revoked_at,
    CertificateRow.created_at,
).where(
    CertificateRow.issuer_ca_id == bindparam("ca_id"),
    CertificateRow.serial_hex.in_(bindparam("serials", expanding=True)),
)


# The usual request names one certificate; a plain equality spares the expanding IN clause
# its per-execution rewriting.
_ONE_STATUS_QUERY = select(
    CertificateRow.serial_hex,
    CertificateRow.status,
    CertificateRow.revocation_reason,
    CertificateRow.revoked_at,
    CertificateRow.created_at,
).where(
    CertificateRow.issuer_ca_id == bindparam("ca_id"),
    CertificateRow.serial_hex == bindparam("serial"),
)


class OCSPResponder:
    """Answers OCSP requests for every issuing CA in the database."""

    def __init__(
        self,
        database: Database,
        keystore: KeyStore,
        clock: Clock,
        *,
        validity: dt.timedelta = dt.timedelta(minutes=60),
    ) -> None:
        if validity <= dt.timedelta(0):
            raise ValueError("OCSP response validity must be positive")
        self._db = database
        self._keystore = keystore
        self._clock = clock
        self._validity = validity
        self._lock = threading.Lock()
        self._by_hash: dict[tuple[str, bytes, bytes], _Authority] = {}
        self._known_cas: set[str] = set()
        self._responders: dict[str, _Responder] = {}
        self._reuse_for = min(dt.timedelta(seconds=REUSE_SECONDS), validity / 4)
        self._produced: OrderedDict[tuple[bytes, ...], _Produced] = OrderedDict()

    # -- public -------------------------------------------------------------------------

    def response_for(self, certificate_der: bytes, issuer_der: bytes) -> bytes | None:
        """A successful OCSPResponse about one certificate, as a client would have asked
        for it (evidence packages, the DSS of long-term PDF signatures); None when this
        responder does not answer for its issuer."""
        cert, issuer = x509.Certificate.load(certificate_der), x509.Certificate.load(issuer_der)
        cert_id = ocsp.CertId(
            {
                "hash_algorithm": {"algorithm": "sha1"},
                "issuer_name_hash": issuer.subject.sha1,
                "issuer_key_hash": issuer.public_key.sha1,
                "serial_number": cert.serial_number,
            }
        )
        request = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": cert_id}]}})
        response = self.respond(request.dump())
        status = ocsp.OCSPResponse.load(response)["response_status"].native
        return response if status == "successful" else None

    def respond(self, request_der: bytes) -> bytes:
        """A DER OCSPResponse for ``request_der``; never raises."""
        try:
            return self._respond(self._parse(request_der))
        except _Reject as reject:
            log.info("OCSP request rejected: %s", reject)
            return reject.response
        except Exception:
            log.exception("OCSP responder failed")
            return INTERNAL_ERROR

    def respond_get(self, path_b64: str) -> bytes:
        """The GET form: ``path_b64`` is the (possibly still url-encoded) last path segment."""
        try:
            request_der = _decode_get_path(path_b64)
        except _Reject as reject:
            log.info("OCSP GET request rejected: %s", reject)
            return reject.response
        except Exception:
            log.exception("OCSP GET decoding failed")
            return MALFORMED_REQUEST
        return self.respond(request_der)

    def on_status_change(self, ca_id: str) -> None:
        """Authority listener: the responder certificate itself may have been revoked."""
        with self._lock:
            self._responders.pop(ca_id, None)
            # Not needed for correctness (statuses are compared on every reuse); frees memory.
            self._produced.clear()

    def invalidate(self) -> None:
        """Forget every cached CA and responder (after key or certificate rotation)."""
        with self._lock:
            self._responders.clear()
            self._produced.clear()
            self._by_hash.clear()
            self._known_cas.clear()

    # -- steps --------------------------------------------------------------------------

    @staticmethod
    def _parse(request_der: bytes) -> _ParsedRequest:
        return _parse_request(request_der)

    def _respond(self, request: _ParsedRequest) -> bytes:
        authority = self._authority_for(request.queries)
        now = ensure_utc(self._clock.now()).replace(microsecond=0)
        responder = self._responder(authority, now)
        found = self._statuses(authority.id, [query.serial for query in request.queries])
        statuses = tuple(found.get(query.serial) for query in request.queries)
        reuse_key = None
        if request.nonce_extension is None:
            reuse_key = tuple(query.cert_id_der for query in request.queries)
            earlier = self._reusable(reuse_key, responder, statuses, now)
            if earlier is not None:
                return earlier
        tbs = encode_response_data(
            responder_id_der=responder.responder_id_der,
            produced_at=now,
            singles=[
                (query.cert_id_der, status)
                for query, status in zip(request.queries, statuses, strict=True)
            ],
            next_update=now + self._validity,
            nonce_extension=request.nonce_extension,
        )
        signature = responder.signer.sign(tbs, actor=OCSP_ACTOR, purpose=OCSP_PURPOSE)
        basic = _tlv(
            0x30,
            tbs + responder.algorithm_der + _tlv(0x03, b"\x00" + signature) + responder.certs_der,
        )
        response = _successful(basic)
        if reuse_key is not None:
            self._keep(
                reuse_key,
                _Produced(
                    responder_certs_der=responder.certs_der,
                    responder_key_id=responder.key.id,
                    statuses=statuses,
                    produced_at=now,
                    response=response,
                ),
            )
        return response

    def _reusable(
        self,
        key: tuple[bytes, ...],
        responder: _Responder,
        statuses: tuple[_Status | None, ...],
        now: dt.datetime,
    ) -> bytes | None:
        """A response signed earlier that states exactly what the database says now."""
        earlier = self._produced.get(key)
        if (
            earlier is None
            or earlier.statuses != statuses
            or earlier.responder_certs_der != responder.certs_der
            or earlier.responder_key_id != responder.key.id
            or not earlier.produced_at <= now < earlier.produced_at + self._reuse_for
        ):
            return None
        return earlier.response

    def _keep(self, key: tuple[bytes, ...], produced: _Produced) -> None:
        with self._lock:
            self._produced[key] = produced
            self._produced.move_to_end(key)
            while len(self._produced) > REUSE_ENTRIES:
                self._produced.popitem(last=False)

    def _authority_for(self, queries: Sequence[_Query]) -> _Authority:
        found: _Authority | None = None
        for query in queries:
            authority = self._lookup(query)
            if authority is None:
                raise _Reject(UNAUTHORIZED, "CertID names an issuer this responder does not serve")
            if found is not None and authority.id != found.id:
                raise _Reject(UNAUTHORIZED, "CertIDs name more than one CA")
            found = authority
        assert found is not None
        if found.level == "root":
            raise _Reject(UNAUTHORIZED, f"no OCSP service for root CA {found.id}")
        return found

    def _lookup(self, query: _Query) -> _Authority | None:
        key = (query.hash_name, query.name_hash, query.key_hash)
        authority = self._by_hash.get(key)
        if authority is None and query.hash_name in CERT_ID_HASHES:
            # A CA created after our last look; CAs are few, so reading their ids is cheap.
            self._load_authorities()
            authority = self._by_hash.get(key)
        return authority

    def _load_authorities(self) -> None:
        with self._db.session() as session:
            ids = set(session.execute(select(CertificateAuthorityRow.id)).scalars())
            missing = ids - self._known_cas
            if not missing:
                return
            rows = session.execute(
                select(
                    CertificateAuthorityRow.id,
                    CertificateAuthorityRow.level,
                    CertificateAuthorityRow.certificate_der,
                ).where(CertificateAuthorityRow.id.in_(missing))
            ).all()
        with self._lock:
            for ca_id, level, certificate_der in rows:
                authority = _Authority(id=ca_id, level=level)
                try:
                    hashes = _issuer_hashes(certificate_der)
                except (ValueError, TypeError, KeyError):
                    log.error("CA %s has a malformed certificate; not served by OCSP", ca_id)
                    hashes = {}
                for hash_name, (name_hash, key_hash) in hashes.items():
                    self._by_hash[(hash_name, name_hash, key_hash)] = authority
                self._known_cas.add(ca_id)

    def _responder(self, authority: _Authority, now: dt.datetime) -> _Responder:
        cached = self._responders.get(authority.id)
        if (
            cached is not None
            and time.monotonic() - cached.loaded_at < RESPONDER_CACHE_SECONDS
            and cached.not_before <= now < cached.not_after
        ):
            return cached
        responder = self._load_responder(authority.id, now, time.monotonic())
        if responder is None:
            with self._lock:
                self._responders.pop(authority.id, None)
            log.warning("issuing CA %s has no valid OCSP responder certificate", authority.id)
            raise _Reject(TRY_LATER, f"no OCSP responder for {authority.id}")
        with self._lock:
            self._responders[authority.id] = responder
        return responder

    def _load_responder(self, ca_id: str, now: dt.datetime, loaded_at: float) -> _Responder | None:
        with self._db.session() as session:
            row = session.execute(
                select(
                    CertificateRow.certificate_der,
                    CertificateRow.key_id,
                    CertificateRow.not_before,
                    CertificateRow.not_after,
                )
                .where(
                    CertificateRow.issuer_ca_id == ca_id,
                    CertificateRow.profile == RESPONDER_PROFILE,
                    CertificateRow.status == "good",
                    CertificateRow.key_id.is_not(None),
                    CertificateRow.not_before <= now,
                    CertificateRow.not_after > now,
                )
                # The longest-lived responder wins (as in CertificateAuthority.ocsp_responder),
                # so a renewed certificate takes over as soon as the cache entry is dropped.
                .order_by(CertificateRow.not_after.desc(), CertificateRow.created_at.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        certificate = x509.Certificate.load(row.certificate_der)
        key = self._keystore.get(KeyId(row.key_id))
        signer = StructureSigner(self._keystore, key)
        scheme = signer.scheme
        spki = certificate["tbs_certificate"]["subject_public_key_info"]
        key_hash = hashlib.sha1(
            bytes(spki["public_key"].contents)[1:], usedforsecurity=False
        ).digest()
        return _Responder(
            ca_id=ca_id,
            key=key,
            scheme=scheme,
            signer=signer,
            responder_id_der=bytes(ocsp.ResponderId({"by_key": key_hash}).dump()),
            algorithm_der=signer.algorithm_der,
            certs_der=_tlv(0xA0, _tlv(0x30, bytes(certificate.dump()))),
            not_before=ensure_utc(row.not_before),
            not_after=ensure_utc(row.not_after),
            loaded_at=loaded_at,
        )

    def _statuses(self, ca_id: str, serials: Sequence[int]) -> dict[int, _Status]:
        by_hex = {format(serial, "x"): serial for serial in serials if serial >= 0}
        if not by_hex:
            return {}
        # A plain connection, not an ORM session: this read runs for every request and the
        # session's unit-of-work bookkeeping cost more than the query.
        with self._db.engine.connect() as connection:
            if len(by_hex) == 1:
                (only,) = by_hex
                rows = connection.execute(_ONE_STATUS_QUERY, {"ca_id": ca_id, "serial": only}).all()
            else:
                rows = connection.execute(
                    _STATUS_QUERY, {"ca_id": ca_id, "serials": list(by_hex)}
                ).all()
        statuses: dict[int, _Status] = {}
        for serial_hex, status, reason, revoked_at, created_at in rows:
            if status == "good":
                statuses[by_hex[serial_hex]] = _Status("good", None, None)
            else:
                statuses[by_hex[serial_hex]] = _Status(
                    "revoked",
                    revocation_reason(status, reason),
                    ensure_utc(revoked_at or created_at).replace(microsecond=0),
                )
        return statuses


# -- DER encoding of the response ---------------------------------------------------------
#
# The response is assembled from DER pieces instead of asn1crypto objects: building the
# asn1crypto tree cost more than the signature itself (about 0.5 ms per response). The
# encoding is checked against asn1crypto in tests/ca/test_ocsp.py, and every response is
# parsed back strictly there and by openssl.

_OID_NONCE = bytes.fromhex("06092b0601050507300102")  # id-pkix-ocsp-nonce
_OID_BASIC = bytes.fromhex("06092b0601050507300101")  # id-pkix-ocsp-basic
_GOOD = b"\x80\x00"  # [0] IMPLICIT NULL
_UNKNOWN = b"\x82\x00"  # [2] IMPLICIT NULL
_REASON_CODES = {name: code for code, name in asn1_crl.CRLReason._map.items()}


_tlv = der_tlv


def _generalized_time(value: dt.datetime) -> bytes:
    # RFC 5280 §4.1.2.5.2 form, which RFC 6960 uses too: seconds, no fraction, "Z".
    return _tlv(0x18, ensure_utc(value).strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def _cert_status(found: _Status | None) -> bytes:
    if found is None:
        return _UNKNOWN
    if found.status == "good":
        return _GOOD
    assert found.revoked_at is not None
    info = _generalized_time(found.revoked_at)
    if found.reason is not None:
        info += _tlv(0xA0, _tlv(0x0A, bytes((_REASON_CODES[found.reason],))))
    return _tlv(0xA1, info)  # [1] IMPLICIT RevokedInfo


def encode_response_data(
    *,
    responder_id_der: bytes,
    produced_at: dt.datetime,
    singles: Sequence[tuple[bytes, _Status | None]],
    next_update: dt.datetime,
    nonce_extension: bytes | None,
) -> bytes:
    """DER ResponseData (RFC 6960 §4.2.1); thisUpdate of each answer is ``produced_at``."""
    produced = _generalized_time(produced_at)
    until = _tlv(0xA0, _generalized_time(next_update))
    responses = b"".join(
        _tlv(0x30, cert_id_der + _cert_status(found) + produced + until)
        for cert_id_der, found in singles
    )
    body = responder_id_der + produced + _tlv(0x30, responses)
    if nonce_extension is not None:
        extension = _tlv(0x30, _OID_NONCE + _tlv(0x04, nonce_extension))
        body += _tlv(0xA1, _tlv(0x30, extension))
    return _tlv(0x30, body)


def _successful(basic_der: bytes) -> bytes:
    response_bytes = _tlv(0x30, _OID_BASIC + _tlv(0x04, basic_der))
    return _tlv(0x30, b"\x0a\x01\x00" + _tlv(0xA0, response_bytes))
