"""All tables. Rows are persistence only; domain values live in the stage packages."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from medsign.db.base import Base, UTCDateTime


class OrganizationRow(Base):
    """A hospital (or hospital group member) served by this installation."""

    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class KeyRow(Base):
    __tablename__ = "keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store: Mapped[str] = mapped_column(String(16))
    algorithm: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    # Software store: AES-256-GCM wrapped PKCS#8 under the master key version below.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    master_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # PKCS#11 store: the CKA_ID of the private key object on the token.
    token_object_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class KeyUseRow(Base):
    """Who used which key to sign which digest, and when."""

    __tablename__ = "key_uses"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("keys.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(64))
    scheme: Mapped[str] = mapped_column(String(32))
    digest_hex: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CertificateAuthorityRow(Base):
    __tablename__ = "certificate_authorities"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    family: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))  # root | issuing
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("certificate_authorities.id"), nullable=True
    )
    key_id: Mapped[str] = mapped_column(ForeignKey("keys.id"))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    crl_number: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CertificateRow(Base):
    __tablename__ = "certificates"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Lower-case hex without leading zeros: the canonical form of the serial number.
    serial_hex: Mapped[str] = mapped_column(String(64))
    issuer_ca_id: Mapped[str | None] = mapped_column(
        ForeignKey("certificate_authorities.id"), nullable=True
    )
    issuer_name_der: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(16))  # internal | external
    profile: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    key_id: Mapped[str | None] = mapped_column(ForeignKey("keys.id"), nullable=True)
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    chain_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="good")  # good | revoked | hold
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replaces_id: Mapped[str | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    __table_args__ = (
        UniqueConstraint("issuer_name_der", "serial_hex", name="uq_certificates_issuer_serial"),
        Index("ix_certificates_serial_hex", "serial_hex"),
    )


class CertificateEventRow(Base):
    """Status history: issue, renew, revoke, hold, release."""

    __tablename__ = "certificate_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificates.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class CRLRow(Base):
    __tablename__ = "crls"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ca_id: Mapped[str] = mapped_column(ForeignKey("certificate_authorities.id"), index=True)
    crl_number: Mapped[int] = mapped_column(BigInteger)
    this_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    __table_args__ = (UniqueConstraint("ca_id", "crl_number", name="uq_crls_ca_number"),)


class ExternalCSRRow(Base):
    """RA mode: a key generated here whose certificate an external (licensed) CA issues."""

    __tablename__ = "external_csrs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("keys.id"))
    profile: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    csr_der: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | imported
    certificate_id: Mapped[str | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AdminTokenRow(Base):
    __tablename__ = "admin_tokens"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SettingRow(Base):
    """Small installation-wide values (e.g. which CA is the default per family)."""

    __tablename__ = "installation_settings"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
