"""The PKCS#11 key store: keys are generated on a token (HSM, SoftHSM2) and never leave it.

The database keeps only what is public — the SubjectPublicKeyInfo, the label and the token
object id (CKA_ID, our key id in ASCII) — so a database copy reveals nothing secret.

One logged-in session is shared behind a lock: python-pkcs11 sessions are not thread-safe,
and in PKCS#11 login state belongs to the whole application, so closing one of several
logged-in sessions would log the others out. Tokens serialise private-key operations anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pkcs11
from asn1crypto import keys as asn1_keys
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11_errors
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from sqlalchemy.exc import SQLAlchemyError

from medsign.clock import Clock
from medsign.crypto.public import PublicKey, raw_to_der
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.db.tables import KeyRow
from medsign.errors import KeyStoreUnavailableError, KeyUseError
from medsign.ids import KeyId, new_id
from medsign.keys.base import Claim, KeyRef, SigningAllowance
from medsign.keys.usage import (
    ACTIVE,
    DESTROYED,
    Allowance,
    AllowanceRegistry,
    SigningKey,
    check_label,
    check_message_request,
    check_reservation_request,
    check_signing_request,
    key_ref,
    load_for_signing,
    load_key_row,
    parse_algorithm,
    parse_digest_scheme,
    parse_message_scheme,
    record_key_use,
    record_reservation,
)

KIND = "pkcs11"
SUPPORTED = frozenset({KeyAlgorithm.RSA_2048, KeyAlgorithm.RSA_3072, KeyAlgorithm.EC_P256})
UNSUPPORTED = {
    KeyAlgorithm.SM2: "the token has no SM2 mechanism",
    KeyAlgorithm.ED25519: "Ed25519 is not offered by the PKCS#11 store",
}
PSS_SALT_LENGTH = 32
# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1): CKM_RSA_PKCS signs raw input.
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

# Errors meaning the session or device went away: drop the session and reconnect next time.
_CONNECTION_LOST: tuple[type[Exception], ...] = (
    p11_errors.SessionClosed,
    p11_errors.SessionHandleInvalid,
    p11_errors.DeviceRemoved,
    p11_errors.DeviceError,
    p11_errors.TokenNotPresent,
    p11_errors.TokenNotRecognised,
    p11_errors.UserNotLoggedIn,
)
_PIN_REJECTED: tuple[type[Exception], ...] = (
    p11_errors.PinIncorrect,
    p11_errors.PinInvalid,
    p11_errors.PinLenRange,
)


def _rsa_spki(public: Any) -> bytes:
    modulus = int.from_bytes(public[Attribute.MODULUS], "big")
    exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
    info = asn1_keys.PublicKeyInfo(
        {
            "algorithm": {"algorithm": "rsa", "parameters": None},
            "public_key": asn1_keys.RSAPublicKey({"modulus": modulus, "public_exponent": exponent}),
        }
    )
    return bytes(info.dump())


class PKCS11KeyStore:
    """Keys on a PKCS#11 token, found by CKA_ID; the PIN is never shown in reprs or errors."""

    kind = KIND

    def __init__(
        self,
        database: Database,
        module_path: str | Path,
        token_label: str,
        pin: str,
        clock: Clock,
    ) -> None:
        self._database = database
        self._module_path = str(module_path)
        self._token_label = token_label
        self._pin = pin
        self._clock = clock
        self._lock = threading.RLock()
        self._session: Any = None
        self._keys: dict[str, Any] = {}
        self._allowances = AllowanceRegistry()

    def __repr__(self) -> str:
        return f"<PKCS11KeyStore module={self._module_path} token={self._token_label!r}>"

    def supported_algorithms(self) -> frozenset[KeyAlgorithm]:
        # SM2 has no standard PKCS#11 mechanism and SoftHSM2 does not implement one. Ed25519
        # (CKM_EDDSA, PKCS#11 3.0) is not offered: tokens differ in whether and how they
        # support it, and the transparency log's witness key lives in the software store.
        return SUPPORTED

    # -- sessions -----------------------------------------------------------------------

    def _open(self) -> Any:
        where = f"PKCS#11 token {self._token_label!r}"
        if not Path(self._module_path).is_file():
            raise KeyStoreUnavailableError(f"PKCS#11 module {self._module_path} does not exist")
        try:
            library = pkcs11.lib(self._module_path)
        except p11_errors.PKCS11Error as exc:
            raise KeyStoreUnavailableError(
                f"cannot load PKCS#11 module {self._module_path}: {exc}"
            ) from exc
        try:
            token = library.get_token(token_label=self._token_label)
        except p11_errors.NoSuchToken as exc:
            raise KeyStoreUnavailableError(f"no {where} in module {self._module_path}") from exc
        except p11_errors.MultipleTokensReturned as exc:
            raise KeyStoreUnavailableError(f"more than one {where}") from exc
        except p11_errors.PKCS11Error as exc:
            raise KeyStoreUnavailableError(f"{where}: {type(exc).__name__}") from exc
        try:
            return token.open(rw=True, user_pin=self._pin)
        except _PIN_REJECTED as exc:
            raise KeyStoreUnavailableError(f"{where}: the PIN was rejected") from exc
        except p11_errors.PinLocked as exc:
            raise KeyStoreUnavailableError(f"{where}: the PIN is locked") from exc
        except p11_errors.UserAlreadyLoggedIn:
            # Another store object in this process is logged in to the same token; login
            # state is shared, so a plain session can use the keys.
            return token.open(rw=True)
        except p11_errors.PKCS11Error as exc:
            raise KeyStoreUnavailableError(
                f"{where}: cannot open a session ({type(exc).__name__})"
            ) from exc

    @contextmanager
    def _token_session(self) -> Iterator[Any]:
        with self._lock:
            if self._session is None:
                self._session = self._open()
            try:
                yield self._session
            except _CONNECTION_LOST as exc:
                self._forget_session()
                raise KeyStoreUnavailableError(
                    f"PKCS#11 token {self._token_label!r} lost ({type(exc).__name__})"
                ) from exc

    def _forget_session(self) -> None:
        self._keys.clear()
        session, self._session = self._session, None
        if session is not None:
            # A session that is already gone has nothing left to release.
            with suppress(p11_errors.PKCS11Error):
                session.close()

    def close(self) -> None:
        """Log out and close the session (it reopens on next use)."""
        with self._lock:
            self._forget_session()

    def check(self) -> None:
        with self._token_session() as session:
            try:
                # A search proves the session and login are alive without touching a key.
                for _ in session.get_objects({Attribute.ID: b"medsign-check"}):
                    break
            except p11_errors.PKCS11Error as exc:
                if isinstance(exc, _CONNECTION_LOST):
                    raise
                raise KeyStoreUnavailableError(
                    f"PKCS#11 token {self._token_label!r}: {type(exc).__name__}"
                ) from exc

    # -- keys ---------------------------------------------------------------------------

    def generate(self, algorithm: KeyAlgorithm, *, label: str) -> KeyRef:
        algorithm = parse_algorithm(algorithm)
        check_label(label)
        if algorithm not in SUPPORTED:
            raise KeyUseError(
                f"the PKCS#11 key store cannot hold {algorithm} keys ({UNSUPPORTED[algorithm]});"
                f" use the software key store for {algorithm}"
            )
        key_id = KeyId(new_id("key"))
        cka_id = key_id.encode("ascii")
        private_template = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True}
        options: dict[str, Any] = {
            "id": cka_id,
            "label": label,
            "store": True,
            "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
            "public_template": public_template,
            "private_template": private_template,
        }
        with self._token_session() as session:
            try:
                if algorithm is KeyAlgorithm.EC_P256:
                    params = session.create_domain_parameters(
                        KeyType.EC,
                        {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                        local=True,
                    )
                    public, private = params.generate_keypair(**options)
                    spki = bytes(encode_ec_public_key(public))
                else:
                    bits = 2048 if algorithm is KeyAlgorithm.RSA_2048 else 3072
                    public, private = session.generate_keypair(KeyType.RSA, bits, **options)
                    spki = _rsa_spki(public)
            except _CONNECTION_LOST:
                raise
            except p11_errors.PKCS11Error as exc:
                raise KeyUseError(f"PKCS#11 key generation failed ({type(exc).__name__})") from exc
            if PublicKey.from_der(spki).algorithm is not algorithm:
                self._destroy_objects(session, cka_id)
                raise KeyUseError(f"token produced a key that is not {algorithm}")
            row = KeyRow(
                id=key_id,
                store=KIND,
                algorithm=str(algorithm),
                label=label,
                public_key_der=spki,
                wrapped_key=None,
                master_version=None,
                token_object_id=cka_id.hex(),
                state=ACTIVE,
                created_at=self._clock.now(),
            )
            try:
                with self._database.session() as db:
                    db.add(row)
                    ref = key_ref(row)
            except SQLAlchemyError:
                # No row means no one could ever use or find the key: do not leave it behind.
                self._destroy_objects(session, cka_id)
                raise
            self._keys[key_id] = private
        return ref

    def get(self, key_id: KeyId) -> KeyRef:
        with self._database.session() as db:
            return key_ref(load_key_row(db, key_id, KIND))

    def sign_digest(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        digest: bytes,
        *,
        actor: str,
        purpose: str,
    ) -> bytes:
        scheme = parse_digest_scheme(scheme)
        with self._database.session() as db:
            row = load_for_signing(db, key_id, KIND, scheme, digest, actor=actor, purpose=purpose)
            if row.token_object_id is None:
                raise KeyUseError(f"key {key_id} has no token object")
            signature = self._sign_on_token(
                row.id, bytes.fromhex(row.token_object_id), scheme, digest
            )
            record_key_use(db, self._clock, key_id, scheme, digest, actor=actor, purpose=purpose)
        return signature

    def sign_message(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        message: bytes,
        *,
        actor: str,
        purpose: str,
    ) -> bytes:
        """Always refused: the only scheme that signs messages is Ed25519, which this store
        does not offer (and it holds no Ed25519 key that could sign)."""
        scheme = parse_message_scheme(scheme)
        check_message_request(message, actor=actor, purpose=purpose)
        raise KeyUseError(f"{UNSUPPORTED[KeyAlgorithm.ED25519]} (key {key_id}, {scheme})")

    def sign_digests(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        digests: Sequence[bytes],
        *,
        actor: str,
        purpose: str,
    ) -> list[bytes]:
        """Sign many digests; all uses are recorded in one transaction (all or nothing)."""
        scheme = parse_digest_scheme(scheme)
        if not digests:
            return []
        with self._database.session() as db:
            row = load_for_signing(
                db, key_id, KIND, scheme, digests[0], actor=actor, purpose=purpose
            )
            if row.token_object_id is None:
                raise KeyUseError(f"key {key_id} has no token object")
            cka_id = bytes.fromhex(row.token_object_id)
            signatures = []
            for digest in digests:
                check_signing_request(digest, actor=actor, purpose=purpose)
                signatures.append(self._sign_on_token(row.id, cka_id, scheme, digest))
                record_key_use(
                    db, self._clock, key_id, scheme, digest, actor=actor, purpose=purpose
                )
        return signatures

    def reserve(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        count: int,
        *,
        actor: str,
        purpose: str,
        seconds: float,
        claim: Claim,
    ) -> SigningAllowance:
        """Record one key-use row for up to ``count`` signatures (``KeyStore.reserve``); the
        allowance then signs on the token without touching the database."""
        scheme = parse_digest_scheme(scheme)
        check_reservation_request(count, seconds, actor=actor, purpose=purpose, claim=claim)
        cka_ids: list[bytes] = []

        def prepare(row: SigningKey) -> None:
            if row.token_object_id is None:
                raise KeyUseError(f"key {key_id} has no token object")
            cka_ids.append(bytes.fromhex(row.token_object_id))

        with self._database.engine.begin() as connection:
            reservation = record_reservation(
                connection,
                self._clock,
                key_id,
                KIND,
                scheme,
                count,
                actor=actor,
                purpose=purpose,
                seconds=seconds,
                claim=claim,
                prepare=prepare,
            )
            cka_id = cka_ids[0]

            def sign(digest: bytes) -> bytes:
                return self._sign_on_token(key_id, cka_id, scheme, digest)

            allowance = Allowance(
                reservation, self._clock, sign, lambda digests: [sign(d) for d in digests]
            )
            # Registered before the commit: a destroy that commits after it revokes it.
            self._allowances.add(allowance)
        return allowance

    def destroy(self, key_id: KeyId) -> None:
        """Delete the key objects from the token and mark the key destroyed."""
        with self._database.session() as db:
            row = load_key_row(db, key_id, KIND)
            if row.token_object_id is not None:
                with self._token_session() as session:
                    self._destroy_objects(session, bytes.fromhex(row.token_object_id))
                    self._keys.pop(key_id, None)
            row.state = DESTROYED
        self._allowances.revoke(key_id, "is destroyed")

    # -- token operations ---------------------------------------------------------------

    def _sign_on_token(
        self, key_id: str, cka_id: bytes, scheme: SignatureScheme, digest: bytes
    ) -> bytes:
        with self._token_session() as session:
            private = self._keys.get(key_id)
            try:
                if private is None:
                    private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=cka_id)
                    self._keys[key_id] = private
                if scheme is SignatureScheme.ECDSA_SHA256:
                    raw = private.sign(digest, mechanism=Mechanism.ECDSA)
                    return raw_to_der(bytes(raw))
                if scheme is SignatureScheme.RSA_PKCS1_SHA256:
                    return bytes(
                        private.sign(SHA256_DIGEST_INFO + digest, mechanism=Mechanism.RSA_PKCS)
                    )
                if scheme is SignatureScheme.RSA_PSS_SHA256:
                    return bytes(
                        private.sign(
                            digest,
                            mechanism=Mechanism.RSA_PKCS_PSS,
                            mechanism_param=(
                                Mechanism.SHA256,
                                pkcs11.MGF.SHA256,
                                PSS_SALT_LENGTH,
                            ),
                        )
                    )
            except p11_errors.NoSuchKey as exc:
                raise KeyUseError(f"key {key_id} is not on token {self._token_label!r}") from exc
            except _CONNECTION_LOST:
                raise
            except p11_errors.PKCS11Error as exc:
                self._keys.pop(key_id, None)
                raise KeyUseError(
                    f"PKCS#11 signing with key {key_id} failed ({type(exc).__name__})"
                ) from exc
        raise KeyUseError(f"scheme {scheme} is not supported by the PKCS#11 key store")

    def _destroy_objects(self, session: Any, cka_id: bytes) -> None:
        for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for obj in list(
                session.get_objects({Attribute.CLASS: object_class, Attribute.ID: cka_id})
            ):
                obj.destroy()
