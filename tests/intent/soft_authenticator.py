"""A software WebAuthn authenticator for tests: real P-256 keys, real CBOR, real signatures.

It answers the options JSON the server sends with what a page posts back after
``navigator.credentials.create()`` / ``get()`` (the JSON form: binary members as unpadded
base64url). Flags, counters, origin, RP id and challenge can be overridden per call, so a
test can build exactly the faulty response it needs while everything else stays genuine.

Layouts (WebAuthn Level 2, §6.1 authenticator data, §6.5.4 attestation object, §8.7 "none"):
``authenticatorData = SHA-256(rpId) || flags || signCount(4, big-endian) || attested``, with
``attested = aaguid(16) || len(credentialId)(2) || credentialId || COSE_Key`` at registration;
an assertion signs ``authenticatorData || SHA-256(clientDataJSON)`` (ECDSA, DER signature).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40
COSE_EC2, COSE_ES256, COSE_P256 = 2, -7, 1


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """One credential on one authenticator.

    ``counting=False`` behaves like a synchronised passkey, whose signature count stays 0."""

    def __init__(self, *, origin: str, counting: bool = True) -> None:
        self.origin = origin
        self.counting = counting
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle: bytes | None = None

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: COSE_EC2,
                3: COSE_ES256,
                -1: COSE_P256,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        flags: int = UP | UV | AT,
    ) -> dict[str, Any]:
        """The registration response for ``options`` (PublicKeyCredentialCreationOptions)."""
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data(
            "webauthn.create", challenge or unb64url(options["challenge"]), origin
        )
        attested = (
            bytes(16)
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self.cose_key()
        )
        authenticator_data = self._authenticator_data(
            rp_id or options["rp"]["id"], flags, self.sign_count, attested
        )
        attestation_object = cbor2.dumps(
            {"fmt": "none", "attStmt": {}, "authData": authenticator_data}
        )
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["internal", "hybrid"],
            },
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        flags: int = UP | UV,
        count: int | None = None,
        cross_origin: bool = False,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> dict[str, Any]:
        """The assertion for ``options`` (PublicKeyCredentialRequestOptions).

        Unlike a real authenticator it does not check ``allowCredentials``: tests also play
        a hostile page that offers any credential it holds."""
        if count is None:
            if self.counting:
                self.sign_count += 1
            count = self.sign_count
        client_data = self._client_data(
            "webauthn.get",
            challenge or unb64url(options["challenge"]),
            origin,
            cross_origin=cross_origin,
        )
        authenticator_data = self._authenticator_data(rp_id or options["rpId"], flags, count)
        signature = (key or self.key).sign(
            authenticator_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(authenticator_data),
            "signature": b64url(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": response,
        }

    def _client_data(
        self, kind: str, challenge: bytes, origin: str | None, *, cross_origin: bool = False
    ) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": b64url(challenge),
                "origin": origin or self.origin,
                "crossOrigin": cross_origin,
            },
            separators=(",", ":"),
        ).encode("utf-8")

    @staticmethod
    def _authenticator_data(rp_id: str, flags: int, count: int, attested: bytes = b"") -> bytes:
        return (
            hashlib.sha256(rp_id.encode("utf-8")).digest()
            + bytes([flags])
            + count.to_bytes(4, "big")
            + attested
        )
