"""The RFC 3161 time-stamping unit.

``respond`` never raises: every input, however broken, gets a DER ``TimeStampResp`` (granted,
or rejection with a failInfo) because the HTTP layer must always answer what RFC 3161 defines.

Decisions, each with its reason:

* Request hashes: SHA-256/384/512 and SM3, parameters absent or NULL; anything else is
  ``badAlg`` (SHA-1 and MD5 imprints are not evidence of anything any more). A digest of the
  wrong length is ``badDataFormat``; unparseable or non-DER input is ``badDataFormat``; a
  version other than 1 is ``badRequest``; any request extension is ``unacceptedExtension``
  (§2.4.1: we recognise none); a reqPolicy other than ours is ``unacceptedPolicy``.
* The request's messageImprint and nonce are echoed byte for byte (§2.4.2 requires the same
  value; copying the encoding cannot get that wrong).
* certReq: the TSA certificate only. Its issuers are reachable through AIA caIssuers, and a
  token stays small.
* Serial numbers come in blocks claimed with one atomic UPDATE on ``timestamp_serials`` (as
  CRL numbers are), so processes never collide. The same transaction records the TSA key's
  use for the whole block: ``KeyStore.reserve`` writes one key-use row allowing up to one
  signature per serial of the block, for at most ``RESERVATION_SECONDS``, and returns an
  allowance that signs in memory and hands out the block's serials. Every token is thus
  covered by a row written before it was signed, and a token whose serial lies outside every
  recorded reservation of the TSA key is not ours. A crash, an expiry or a new TSA key only
  leaves the rest of the block unused: a gap, which RFC 3161 allows.
* The token is spliced from DER encoded once per TSA certificate (policy, accuracy, TSA name,
  signed-attribute skeleton with the ESS signing-certificate-v2, algorithm identifiers,
  certificate) with the per-token parts (serial, genTime, imprint, nonce, message digest)
  encoded by hand.
* The clock guard (``clockguard.py``) is asked before every token; a refusal is
  ``timeNotAvailable``. Internal failures (no TSA certificate, key store down) are
  ``systemFailure`` and logged.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asn1crypto import x509
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from medsign.ca.profiles import POLICY_ARC
from medsign.ca.signing import StructureSigner
from medsign.clock import Clock
from medsign.crypto.cms import (
    DIGEST_OIDS,
    DIGEST_SIZES,
    SignedDataTemplate,
    der_integer,
    der_oid,
    der_tlv,
    read_tlv,
)
from medsign.db.session import Database
from medsign.db.tables import TimestampSerialRow
from medsign.errors import (
    ClockUntrustedError,
    InputError,
    KeyUseError,
    MedsignError,
    TimestampUnavailableError,
)
from medsign.evidence import record_event
from medsign.ids import KeyId
from medsign.keys.base import KeyStore, SigningAllowance
from medsign.tsa.clockguard import ClockGuard, ClockReading
from medsign.tsa.token import TST_INFO_OID

__all__ = [
    "DEFAULT_POLICY_OID",
    "MAX_REQUEST_SIZE",
    "SUPPORTED_HASHES",
    "SerialAllocator",
    "TSACredentials",
    "TimestampAuthority",
]

log = logging.getLogger(__name__)

TSA_ACTOR = "tsa"
TSA_PURPOSE = "timestamp"
DEFAULT_POLICY_OID = f"{POLICY_ARC}.2.1"
SUPPORTED_HASHES = ("sha256", "sha384", "sha512", "sm3")
MAX_REQUEST_SIZE = 16 * 1024
MAX_NONCE_OCTETS = 64
CREDENTIALS_SECONDS = 300.0
SERIAL_NAME = "tsa"
# How long one reservation of the TSA key may sign: a destroy committed by another process
# stops this one's tokens within this time (a destroy through this process's key store at once).
RESERVATION_SECONDS = 60.0


@dataclass(frozen=True)
class TSACredentials:
    """The TSA's key-store key and the certificate issued for it under the `tsa` profile."""

    key_id: KeyId
    certificate_der: bytes


CredentialsLoader = Callable[[], TSACredentials]


# -- serial numbers -------------------------------------------------------------------------


class SerialAllocator:
    """Unique positive serials across threads and processes, claimed in blocks.

    ``claim`` takes a block in the caller's transaction (the TSA's key-use reservation);
    ``next`` hands out serials one by one from blocks claimed in transactions of its own.
    """

    def __init__(self, database: Database, *, name: str = SERIAL_NAME, block: int = 1000) -> None:
        if block < 1:
            raise ValueError("serial block size must be positive")
        self._db = database
        self._name = name
        self._block = block
        self._lock = threading.Lock()
        self._next = 0
        self._end = 0
        self._counter_exists = False

    @property
    def block(self) -> int:
        return self._block

    def next(self) -> int:
        with self._lock:
            if self._next >= self._end:
                self.ensure_counter()
                with self._db.engine.begin() as connection:
                    first = self.claim(connection, self._block)
                self._next, self._end = first, first + self._block
            value = self._next
            self._next += 1
            return value

    def ensure_counter(self) -> None:
        """Create the counter row if no process has yet (in a transaction of its own, so
        ``claim`` can be the first statement of the caller's)."""
        if self._counter_exists:
            return
        table = TimestampSerialRow
        with self._db.engine.connect() as connection:
            found = connection.execute(
                select(table.next_value).where(table.name == self._name)
            ).first()
        if found is None:
            try:
                with self._db.engine.begin() as connection:
                    connection.execute(insert(table).values(name=self._name, next_value=1))
            except IntegrityError:
                pass  # another process created it first: claim from it
        self._counter_exists = True

    def claim(self, connection: Connection, count: int) -> int:
        """Reserve ``count`` consecutive serials in ``connection``'s transaction; returns the
        first. Call ``ensure_counter`` once before (outside the transaction)."""
        table = TimestampSerialRow
        end = connection.execute(
            update(table)
            .where(table.name == self._name)
            .values(next_value=table.next_value + count)
            .returning(table.next_value)
        ).scalar_one_or_none()
        if end is None:
            raise TimestampUnavailableError("the timestamp serial counter is missing")
        return int(end) - count


# -- responses ------------------------------------------------------------------------------

_GRANTED_STATUS = bytes.fromhex("3003020100")  # PKIStatusInfo { granted }
_REJECTION = 2
# PKIFailureInfo bit numbers (RFC 3161 §2.4.2).
FAIL_BITS = {
    "bad_alg": 0,
    "bad_request": 2,
    "bad_data_format": 5,
    "time_not_available": 14,
    "unaccepted_policy": 15,
    "unaccepted_extensions": 16,
    "add_info_not_available": 17,
    "system_failure": 25,
}


@functools.lru_cache(maxsize=64)
def rejection(fail_info: str, text: str) -> bytes:
    """A DER TimeStampResp with status rejection, one failInfo bit and a statusString.

    Encoded by hand: asn1crypto's TimeStampResp treats the token as mandatory.
    """
    bit = FAIL_BITS[fail_info]
    bits = bytearray(bit // 8 + 1)
    bits[bit // 8] = 0x80 >> (bit % 8)
    # DER named BIT STRING: no trailing zero bits, so the unused count ends at our bit.
    fail = der_tlv(0x03, bytes((7 - bit % 8,)) + bytes(bits))
    status_string = der_tlv(0x30, der_tlv(0x0C, text.encode("utf-8")))
    status = der_tlv(0x30, der_integer(_REJECTION) + status_string + fail)
    return der_tlv(0x30, status)


class _Reject(Exception):
    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text

    def response(self) -> bytes:
        return rejection(self.fail_info, self.text)


@dataclass(frozen=True)
class _Request:
    imprint_tlv: bytes  # the MessageImprint, as the client encoded it
    nonce_tlv: bytes | None
    cert_req: bool


_HASH_BY_OID = {der_oid(oid): name for name, oid in DIGEST_OIDS.items()}
_NULL = b"\x05\x00"


def _tlvs(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = read_tlv(data, pos, end)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


def _minimal_integer(contents: bytes) -> bool:
    if not contents:
        return False
    if len(contents) == 1:
        return True
    return not (
        (contents[0] == 0x00 and contents[1] < 0x80)
        or (contents[0] == 0xFF and contents[1] >= 0x80)
    )


def _parse_imprint(der: bytes, start: int, end: int) -> None:
    parts = _tlvs(der, start, end)
    if len(parts) != 2 or parts[0][0] != 0x30 or parts[1][0] != 0x04:
        raise _Reject("bad_data_format", "malformed messageImprint")
    alg = _tlvs(der, parts[0][2], parts[0][3])
    if not alg or alg[0][0] != 0x06:
        raise _Reject("bad_data_format", "malformed hash AlgorithmIdentifier")
    name = _HASH_BY_OID.get(der[alg[0][1] : alg[0][3]])
    if name is None:
        raise _Reject("bad_alg", "hash algorithm not supported; use SHA-256/384/512 or SM3")
    if len(alg) > 2 or (len(alg) == 2 and der[alg[1][1] : alg[1][3]] != _NULL):
        raise _Reject("bad_alg", "hash algorithm parameters must be absent or NULL")
    if parts[1][3] - parts[1][2] != DIGEST_SIZES[name]:
        raise _Reject("bad_data_format", f"a {name} imprint is {DIGEST_SIZES[name]} bytes")


def _parse_request(der: bytes, policies: frozenset[bytes]) -> _Request:
    if not der or len(der) > MAX_REQUEST_SIZE:
        raise _Reject("bad_data_format", "empty or oversized request")
    try:
        tag, start, end = read_tlv(der, 0)
        if tag != 0x30 or end != len(der):
            raise _Reject("bad_data_format", "not a DER TimeStampReq")
        items = _tlvs(der, start, end)
        if len(items) < 2 or items[0][0] != 0x02:
            raise _Reject("bad_data_format", "not a TimeStampReq")
        if der[items[0][2] : items[0][3]] != b"\x01":
            raise _Reject("bad_request", "only TimeStampReq version 1 is supported")
        imprint = items[1]
        if imprint[0] != 0x30:
            raise _Reject("bad_data_format", "malformed messageImprint")
        _parse_imprint(der, imprint[2], imprint[3])
        nonce: bytes | None = None
        cert_req = False
        # Optional fields in their fixed order: reqPolicy, nonce, certReq, [0] extensions.
        order = (0x06, 0x02, 0x01, 0xA0)
        position = 0
        for item_tag, header, cstart, cend in items[2:]:
            if item_tag not in order[position:]:
                raise _Reject("bad_data_format", "unexpected field in TimeStampReq")
            position = order.index(item_tag) + 1
            contents = der[cstart:cend]
            if item_tag == 0x06:
                if der[header:cend] not in policies:
                    raise _Reject("unaccepted_policy", "requested policy not supported")
            elif item_tag == 0x02:
                if not _minimal_integer(contents) or len(contents) > MAX_NONCE_OCTETS:
                    raise _Reject("bad_data_format", "malformed or oversized nonce")
                nonce = der[header:cend]
            elif item_tag == 0x01:
                if contents not in (b"\x00", b"\xff"):
                    raise _Reject("bad_data_format", "malformed certReq")
                cert_req = contents == b"\xff"
            else:
                raise _Reject("unaccepted_extensions", "request extensions are not supported")
        return _Request(der[imprint[1] : imprint[3]], nonce, cert_req)
    except InputError as exc:
        raise _Reject("bad_data_format", "malformed DER") from exc


# -- the authority --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """Everything fixed for one TSA certificate."""

    credentials: TSACredentials
    signer: StructureSigner
    template: SignedDataTemplate
    digest_name: str
    tsa_name: bytes  # [0] EXPLICIT GeneralName directoryName
    not_before: dt.datetime
    not_after: dt.datetime
    loaded_at: float


class TimestampAuthority:
    """Issues RFC 3161 tokens signed through the key store."""

    def __init__(
        self,
        database: Database,
        keystore: KeyStore,
        clock: Clock,
        credentials: CredentialsLoader,
        *,
        policy_oid: str | None = None,
        accuracy_ms: int = 1000,
        time_digits: int = 3,
        guard: ClockGuard | None = None,
        serial_block: int = 1000,
    ) -> None:
        if not 0 <= time_digits <= 6:
            raise ValueError("genTime carries 0 to 6 fractional digits")
        if accuracy_ms < 1:
            raise ValueError("accuracy must be at least 1 ms")
        self._db = database
        self._keystore = keystore
        self._clock = clock
        self._credentials = credentials
        self.policy_oid = policy_oid or DEFAULT_POLICY_OID
        self.accuracy_ms = accuracy_ms
        self._digits = time_digits
        self._tick = 10 ** (6 - time_digits)  # microseconds per genTime unit
        self._gen_time_cache: tuple[dt.datetime | None, bytes] = (None, b"")
        self.guard = guard
        if guard is not None:
            guard.set_alert(self._record_refusal)
        self.serials = SerialAllocator(database, block=serial_block)
        self._allowance: SigningAllowance | None = None
        self._allowance_lock = threading.Lock()
        policy_der = der_oid(self.policy_oid)
        self._policies = frozenset({policy_der})
        self._tst_head = der_integer(1) + policy_der
        self._accuracy = _accuracy(accuracy_ms)
        self._unit: _Unit | None = None
        self._unit_lock = threading.Lock()

    # -- credentials -------------------------------------------------------------------------

    def reload(self) -> None:
        """Forget the cached TSA certificate (after a renewal)."""
        with self._unit_lock:
            self._unit = None

    def certificate(self) -> bytes:
        return self._current_unit().credentials.certificate_der

    def _current_unit(self) -> _Unit:
        unit = self._unit
        if unit is not None and time.monotonic() - unit.loaded_at < CREDENTIALS_SECONDS:
            return unit
        with self._unit_lock:
            unit = self._unit
            if unit is None or time.monotonic() - unit.loaded_at >= CREDENTIALS_SECONDS:
                unit = self._load_unit()
                self._unit = unit
            return unit

    def _load_unit(self) -> _Unit:
        try:
            credentials = self._credentials()
            key = self._keystore.get(credentials.key_id)
            signer = StructureSigner(self._keystore, key)
            certificate = x509.Certificate.load(credentials.certificate_der)
            validity = certificate["tbs_certificate"]["validity"]
            template = SignedDataTemplate(
                credentials.certificate_der,
                (),
                signer.scheme,
                signer.scheme.hash_name,
                content_type_oid=TST_INFO_OID,
                signing_time_attribute=False,
                gm_content_types=False,
            )
        except TimestampUnavailableError:
            raise
        except MedsignError as exc:
            raise TimestampUnavailableError(f"TSA credentials unusable: {exc}") from exc
        if template.public_key.der != key.public_key_der:
            raise TimestampUnavailableError("the TSA certificate is not for the TSA key")
        name = bytes(certificate.subject.dump())
        return _Unit(
            credentials=credentials,
            signer=signer,
            template=template,
            digest_name=signer.scheme.hash_name,
            tsa_name=der_tlv(0xA0, der_tlv(0xA4, name)),
            not_before=validity["not_before"].native,
            not_after=validity["not_after"].native,
            loaded_at=time.monotonic(),
        )

    # -- tokens ------------------------------------------------------------------------------

    def _gen_time(self, now: dt.datetime) -> bytes:
        """The DER GeneralizedTime of ``now`` at the configured precision, encoded once per
        tick (a millisecond by default) and reused by every token of that tick."""
        utc = now if now.tzinfo is dt.UTC else now.astimezone(dt.UTC)
        tick = utc.replace(microsecond=utc.microsecond - utc.microsecond % self._tick)
        cached = self._gen_time_cache
        if cached[0] == tick:
            return cached[1]
        encoded = self._encode_gen_time(tick)
        self._gen_time_cache = (tick, encoded)
        return encoded

    def _encode_gen_time(self, utc: dt.datetime) -> bytes:
        text = utc.strftime("%Y%m%d%H%M%S")
        if self._digits:
            # RFC 3161 §2.4.2: no trailing zeros in the fraction, no dot when it is zero.
            fraction = f"{utc.microsecond:06d}"[: self._digits].rstrip("0")
            if fraction:
                text += "." + fraction
        return der_tlv(0x18, (text + "Z").encode("ascii"))

    def _take(self, unit: _Unit) -> tuple[SigningAllowance, int]:
        """A serial and the allowance that signs the token carrying it.

        A new block is reserved (one transaction: serial block and key-use row) when the
        current one is used up, expired or revoked, or is for another key than the unit's;
        reserving re-reads the key row, so a destroyed key stops here with its own error.
        """
        key_id, scheme = unit.signer.key.id, unit.signer.scheme
        with self._allowance_lock:
            allowance = self._allowance
            if allowance is not None and allowance.key_id == key_id and allowance.scheme is scheme:
                try:
                    return allowance, allowance.take()
                except KeyUseError:
                    self._allowance = None
            self.serials.ensure_counter()
            allowance = self._keystore.reserve(
                key_id,
                scheme,
                self.serials.block,
                actor=TSA_ACTOR,
                purpose=TSA_PURPOSE,
                seconds=RESERVATION_SECONDS,
                claim=self.serials.claim,
            )
            self._allowance = allowance
            return allowance, allowance.take()

    def _token(self, imprint_tlv: bytes, nonce_tlv: bytes | None, cert_req: bool) -> bytes:
        if self.guard is not None:
            self.guard.check()
        unit = self._current_unit()
        now = self._clock.now()
        if not unit.not_before <= now < unit.not_after:
            self.reload()
            raise TimestampUnavailableError("the TSA certificate is not valid now")
        allowance, serial = self._take(unit)
        tst_info = der_tlv(
            0x30,
            self._tst_head
            + imprint_tlv
            + der_integer(serial)
            + self._gen_time(now)
            + self._accuracy
            + (nonce_tlv or b"")
            + unit.tsa_name,
        )
        digest = hashlib.new(unit.digest_name, tst_info).digest()
        attributes = unit.template.signed_attributes(digest, None)
        signature = allowance.sign_digest(serial, unit.signer.digest(attributes))
        return unit.template.assemble(
            attributes, signature, econtent=tst_info, certificates=cert_req
        )

    def stamp(
        self,
        message_imprint: bytes,
        hash_name: str,
        *,
        nonce: int | None = None,
        cert_req: bool = True,
    ) -> bytes:
        """A TimeStampToken (ContentInfo SignedData DER) over ``message_imprint``.

        Raises ``InputError`` for an unsupported hash or a wrong imprint length,
        ``ClockUntrustedError`` when the clock guard refuses, ``TimestampUnavailableError``
        when there is no usable TSA certificate, and what the key store raises.
        """
        if hash_name not in SUPPORTED_HASHES:
            raise InputError(f"hash {hash_name!r} is not supported for timestamps")
        imprint = bytes(message_imprint)
        if len(imprint) != DIGEST_SIZES[hash_name]:
            raise InputError(f"a {hash_name} imprint is {DIGEST_SIZES[hash_name]} bytes")
        # RFC 5754 §2: SHA-2 AlgorithmIdentifiers omit the parameters.
        imprint_tlv = der_tlv(
            0x30, der_tlv(0x30, der_oid(DIGEST_OIDS[hash_name])) + der_tlv(0x04, imprint)
        )
        return self._token(imprint_tlv, None if nonce is None else der_integer(nonce), cert_req)

    def stamp_many(
        self, message_imprints: Sequence[bytes], hash_name: str, *, cert_req: bool = True
    ) -> list[bytes]:
        """Tokens for many imprints at once (one batch of a signer), signed together by the
        reservations their serials come from. Same errors as ``stamp``."""
        if hash_name not in SUPPORTED_HASHES:
            raise InputError(f"hash {hash_name!r} is not supported for timestamps")
        if not message_imprints:
            return []
        if self.guard is not None:
            self.guard.check()
        unit = self._current_unit()
        now = self._clock.now()
        if not unit.not_before <= now < unit.not_after:
            self.reload()
            raise TimestampUnavailableError("the TSA certificate is not valid now")
        size = DIGEST_SIZES[hash_name]
        for imprint in message_imprints:
            if len(imprint) != size:
                raise InputError(f"a {hash_name} imprint is {size} bytes")
        gen_time = self._gen_time(now)
        hash_oid = der_tlv(0x30, der_oid(DIGEST_OIDS[hash_name]))
        infos: list[bytes] = []
        attributes: list[bytes] = []
        taken: list[tuple[SigningAllowance, int]] = []
        for imprint in message_imprints:
            allowance, serial = self._take(unit)
            taken.append((allowance, serial))
            tst_info = der_tlv(
                0x30,
                self._tst_head
                + der_tlv(0x30, hash_oid + der_tlv(0x04, bytes(imprint)))
                + der_integer(serial)
                + gen_time
                + self._accuracy
                + unit.tsa_name,
            )
            infos.append(tst_info)
            digest = hashlib.new(unit.digest_name, tst_info).digest()
            attributes.append(unit.template.signed_attributes(digest, None))
        signatures = _sign_taken(taken, [unit.signer.digest(a) for a in attributes])
        return [
            unit.template.assemble(a, sig, econtent=info, certificates=cert_req)
            for info, a, sig in zip(infos, attributes, signatures, strict=True)
        ]

    def respond(self, request_der: bytes) -> bytes:
        """A DER TimeStampResp for any input; never raises."""
        try:
            request = _parse_request(bytes(request_der), self._policies)
        except _Reject as reject:
            return reject.response()
        except Exception:  # pragma: no cover - the parser only raises _Reject
            log.exception("timestamp request parser failed")
            return rejection("bad_data_format", "malformed request")
        try:
            token = self._token(request.imprint_tlv, request.nonce_tlv, request.cert_req)
        except ClockUntrustedError:
            return rejection("time_not_available", "the time source is not trusted")
        except MedsignError as exc:
            log.error("timestamp not issued: %s", exc, extra={"code": exc.code})
            return rejection("system_failure", "the TSA cannot sign now")
        except Exception:
            log.exception("timestamp not issued")
            return rejection("system_failure", "the TSA cannot sign now")
        return der_tlv(0x30, _GRANTED_STATUS + token)

    # -- alerts ------------------------------------------------------------------------------

    def _record_refusal(self, reading: ClockReading, reason: str) -> None:
        offset = None if reading.offset_ms is None else round(reading.offset_ms * 1000)
        with self._db.session() as session:
            record_event(
                session,
                self._clock.now(),
                "tsa:refuse",
                reason=reason,
                source=reading.source,
                offset_us=offset,
            )


def _sign_taken(taken: list[tuple[SigningAllowance, int]], digests: list[bytes]) -> list[bytes]:
    """Sign each digest with the allowance its serial came from, a run of serials at a time
    (a batch spans two reservations when a block runs out in its middle)."""
    signatures: list[bytes] = []
    start = 0
    while start < len(taken):
        allowance = taken[start][0]
        end = start + 1
        while end < len(taken) and taken[end][0] is allowance:
            end += 1
        items = [(taken[i][1], digests[i]) for i in range(start, end)]
        signatures.extend(allowance.sign_digests(items))
        start = end
    return signatures


def _accuracy(accuracy_ms: int) -> bytes:
    seconds, millis = divmod(accuracy_ms, 1000)
    body = b""
    if seconds:
        body += der_integer(seconds)
    if millis:
        body += der_tlv(0x80, der_integer(millis)[2:])  # millis [0] IMPLICIT INTEGER
    return der_tlv(0x30, body)
