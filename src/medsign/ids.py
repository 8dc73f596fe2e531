"""Opaque identifiers: a short type prefix and 128 random bits in Crockford-free base32."""

from __future__ import annotations

import base64
import secrets
from typing import NewType

KeyId = NewType("KeyId", str)
CertificateId = NewType("CertificateId", str)
OrganizationId = NewType("OrganizationId", str)


def new_id(prefix: str) -> str:
    raw = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()
    return f"{prefix}_{raw}"
