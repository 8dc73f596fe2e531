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
    """Who used which key to sign which digest, and when.

    A row with ``uses`` NULL is one signature over ``digest_hex``. A row with ``uses`` set is
    a reservation written before its signatures: up to ``uses`` signatures, each carrying one
    number of ``serial_first..serial_last`` (TSA serials), made before ``valid_until``; its
    ``digest_hex`` is the SHA-256 of the reservation's canonical description
    (``medsign.keys.usage.reservation_description``).
    """

    __tablename__ = "key_uses"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("keys.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(64))
    scheme: Mapped[str] = mapped_column(String(32))
    digest_hex: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    serial_first: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    serial_last: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


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


# --- signing service: applications, staff, enrolment, requests, intention, evidence ---------


class ApplicationRow(Base):
    """A registered hospital system (HIS, EMR, LIS, PACS, nursing, ...)."""

    __tablename__ = "applications"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="active")
    # The HMAC secret must be recoverable to check signatures, so it is sealed (AES-GCM under
    # the data keyring), never hashed; the previous one stays valid for a grace period.
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )
    secret_rotated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    signer_scope: Mapped[str] = mapped_column(Text, default='{"all": true}')  # JSON
    # The organisation seals it may apply, by purpose ("" the official seal); JSON list.
    seal_purposes: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=600)
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApplicationNonceRow(Base):
    """Nonces seen inside the replay window; the primary key refuses a second use."""

    __tablename__ = "application_nonces"
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class StaffRow(Base):
    """A clinician or technician synchronised from HIS."""

    __tablename__ = "staff"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    employee_no: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    national_id_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Keyed digest (HMAC under the data keyring) to find duplicates without decrypting.
    national_id_digest: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    national_id_masked: Mapped[str | None] = mapped_column(String(32), nullable=True)
    phone_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone_masked: Mapped[str | None] = mapped_column(String(32), nullable=True)
    department: Mapped[str] = mapped_column(String(100), default="")
    title: Mapped[str] = mapped_column(String(100), default="")
    roles: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    state: Mapped[str] = mapped_column(String(16), default="active")
    pin_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    pin_lock_level: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pin_set_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    key_id: Mapped[str | None] = mapped_column(ForeignKey("keys.id"), nullable=True)
    certificate_id: Mapped[str | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when the signing key is held by a phone (WebCrypto) rather than by the key store.
    signing_device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    __table_args__ = (
        UniqueConstraint("organization_id", "employee_no", name="uq_staff_org_employee"),
    )


class EnrolmentRow(Base):
    """Real-name authentication and enrolment of one staff member (one-time URL)."""

    __tablename__ = "enrolments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    step: Mapped[str] = mapped_column(String(32), default="start")
    key_algorithm: Mapped[str] = mapped_column(String(16))
    # "server": the key store makes the key; "device": the phone makes it (WebCrypto).
    key_location: Mapped[str] = mapped_column(String(16), default="server")
    failure_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The certificate this enrolment produced (the staff row moves on at re-enrolment).
    certificate_id: Mapped[str | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)


class OneTimeCodeRow(Base):
    """An SMS code: stored as a keyed digest, limited in time and tries, used once."""

    __tablename__ = "one_time_codes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # enrolment | intent
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    code_digest: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SMSMessageRow(Base):
    """Messages handed to an SMS provider. Only the development provider keeps the text."""

    __tablename__ = "sms_messages"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    phone_masked: Mapped[str] = mapped_column(String(32))
    staff_id: Mapped[str | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16))  # sent | failed
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SignBatchRow(Base):
    __tablename__ = "sign_batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"))
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    body_digest: Mapped[str] = mapped_column(String(64))
    item_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    __table_args__ = (
        UniqueConstraint("application_id", "idempotency_key", name="uq_sign_batches_app_key"),
    )


class SignRequestRow(Base):
    """One item to sign (a medical order, a prescription, a void statement, ...)."""

    __tablename__ = "sign_requests"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("sign_batches.id"), nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Singles carry their own idempotency key; batch items inherit the batch's.
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    body_digest: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="sign")  # sign | void
    voids_request_id: Mapped[str | None] = mapped_column(
        ForeignKey("sign_requests.id"), nullable=True
    )
    scene: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text)
    record_id: Mapped[str] = mapped_column(String(200))
    content_kind: Mapped[str] = mapped_column(String(16))  # json | digest
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # JCS bytes
    digest_algorithm: Mapped[str] = mapped_column(String(16))
    digest: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    voided_by_request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    signature_scheme: Mapped[str | None] = mapped_column(String(32), nullable=True)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    certificate_id: Mapped[str | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    cms: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    timestamp_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    timestamp_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    intent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (
        UniqueConstraint("application_id", "idempotency_key", name="uq_sign_requests_app_key"),
        Index("ix_sign_requests_batch", "batch_id", "position"),
    )


class DocumentRow(Base):
    """The PDF of a document request (``content_kind`` "pdf") and, once signed, the result.

    ``spec`` is the resolved signature specification (field, page and box, level, DocMDP,
    appearance), the JSON whose RFC 8785 bytes with the PDF's hash make the request's content.
    """

    __tablename__ = "documents"
    request_id: Mapped[str] = mapped_column(ForeignKey("sign_requests.id"), primary_key=True)
    original: Mapped[bytes] = mapped_column(LargeBinary)
    original_sha256: Mapped[str] = mapped_column(String(64))
    spec: Mapped[str] = mapped_column(Text)
    signed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    signed_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A signature prepared for a phone-held key: the document with its reserved /Contents
    # and (JSON) the challenge, the signed attributes to sign, the byte-range digest.
    prepared: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    prepared_state: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SignatureImageRow(Base):
    """A clinician's handwritten signature or an organisation's seal image (transparent PNG).

    A new image starts ``proposed`` (the owner sees the background-removed result) and
    becomes ``active`` when confirmed; the previous active one is ``retired``, never deleted,
    so old appearances can still be explained.
    """

    __tablename__ = "signature_images"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # staff | organization
    owner_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # handwriting | seal
    # A seal's purpose text ("" the official seal, "病案专用章", ...); "" for handwriting.
    purpose: Mapped[str] = mapped_column(String(64), default="")
    png: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # proposed | active | retired
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (Index("ix_signature_images_owner", "owner_kind", "owner_id", "state"),)


class SealJobRow(Base):
    """A run of organisation seals over many PDFs (archive sealing): resumable, each record
    sealed at most once, progress counted as it goes."""

    __tablename__ = "seal_jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    application_id: Mapped[str | None] = mapped_column(
        ForeignKey("applications.id"), nullable=True, index=True
    )
    actor: Mapped[str] = mapped_column(String(200))  # app:<id> or admin:<name>
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    body_digest: Mapped[str] = mapped_column(String(64))
    options: Mapped[str] = mapped_column(Text)  # JSON: purpose, level, placement, cross_page
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued|done|cancelled
    total: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (
        UniqueConstraint("application_id", "idempotency_key", name="uq_seal_jobs_app_key"),
    )


class SealItemRow(Base):
    """One record of a seal job; ``lease_until`` lets one worker at a time hold it."""

    __tablename__ = "seal_items"
    job_id: Mapped[str] = mapped_column(ForeignKey("seal_jobs.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(String(200))
    original: Mapped[bytes] = mapped_column(LargeBinary)
    original_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sealed|failed
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sealed_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sealed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (Index("ix_seal_items_state", "job_id", "state", "position"),)


class IntentChallengeRow(Base):
    """A request for the signer's intention, bound to exactly the digests to be signed."""

    __tablename__ = "intent_challenges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    application_id: Mapped[str | None] = mapped_column(ForeignKey("applications.id"), nullable=True)
    method: Mapped[str] = mapped_column(String(16))  # pin | sms
    request_ids: Mapped[str] = mapped_column(Text)  # JSON list, in signing order
    binding_digest: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="open")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IntentAttemptRow(Base):
    """Every intention attempt, successful or not (never the secret itself)."""

    __tablename__ = "intent_attempts"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    challenge_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    client: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class EvidenceEventRow(Base):
    """Append-only event store; canonical JSON records holding ids and hashes only."""

    __tablename__ = "evidence_events"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    record: Mapped[str] = mapped_column(Text)
    record_sha256: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Position in the Merkle log (RFC 9162): dense, in commit order, assigned on append.
    leaf_index: Mapped[int] = mapped_column(BigInteger, unique=True)


class WebhookDeliveryRow(Base):
    """Outbox of webhook notifications; results stay retrievable whatever happens here."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TimestampSerialRow(Base):
    """Blocks of TSA serial numbers handed to a process; one UPDATE per block keeps every
    serial unique across processes without a write per token."""

    __tablename__ = "timestamp_serials"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_value: Mapped[int] = mapped_column(BigInteger)


class StaffDeviceRow(Base):
    """A phone bound to a staff member at enrolment (a long-lived device cookie)."""

    __tablename__ = "staff_devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    label: Mapped[str] = mapped_column(String(128))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    key_mode: Mapped[str] = mapped_column(String(16), default="server")  # server | device
    # The phone's own signing key (SubjectPublicKeyInfo) when key_mode is "device".
    public_key_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    certificate_id: Mapped[str | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    enrolment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StaffSessionRow(Base):
    """A signed-in staff member on one enrolled device; expires."""

    __tablename__ = "staff_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("staff_devices.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    method: Mapped[str] = mapped_column(String(16))  # enrolment | pin | passkey
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A pending WebAuthn registration ceremony (base64url challenge) and its deadline.
    webauthn_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    webauthn_challenge_expires_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )


class LoginChallengeRow(Base):
    """A QR-code login asked by an application, decided on a clinician's phone."""

    __tablename__ = "login_challenges"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    staff_id: Mapped[str | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    workstation: Mapped[str] = mapped_column(String(128), default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by_staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assertion: Mapped[str | None] = mapped_column(Text, nullable=True)


class PasskeyCredentialRow(Base):
    """A WebAuthn credential (passkey) a staff member registered as an intention method."""

    __tablename__ = "passkey_credentials"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    credential_id: Mapped[str] = mapped_column(String(512), unique=True)  # base64url
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    label: Mapped[str] = mapped_column(String(128), default="")
    transports: Mapped[str] = mapped_column(String(128), default="[]")  # JSON list
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EvidenceLogHeadRow(Base):
    """The Merkle log's head. ``size``: PostgreSQL's leaf counter, taken by a trigger on
    every event INSERT under this row's lock, so leaf indexes are dense and follow commit
    order (SQLite numbers leaves by ``MAX(leaf_index) + 1`` and leaves it alone).
    ``integrated_size``: the leaves whose Merkle nodes are written (integration catches up,
    under this row's lock, before anything is proven)."""

    __tablename__ = "evidence_log_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    integrated_size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class MerkleNodeRow(Base):
    """Hash of every perfect, aligned subtree of the log (level 0: the leaves). Append-only."""

    __tablename__ = "merkle_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpointRow(Base):
    """A signed checkpoint (C2SP signed note) of the log, with its RFC 3161 timestamp."""

    __tablename__ = "log_checkpoints"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    timestamp_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class LogCosignatureRow(Base):
    """A witness's cosignature (C2SP tlog-cosignature) of one checkpoint."""

    __tablename__ = "log_cosignatures"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("log_checkpoints.id"), index=True)
    witness_name: Mapped[str] = mapped_column(String(200))
    signature_line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    __table_args__ = (UniqueConstraint("checkpoint_id", "witness_name", name="uq_cosignature"),)


class WitnessRow(Base):
    """A witness this log asks to cosign its checkpoints."""

    __tablename__ = "log_witnesses"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # 32-byte Ed25519
    state: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class WitnessedLogRow(Base):
    """This installation acting as a witness: the newest checkpoint it saw of another log."""

    __tablename__ = "witnessed_logs"
    origin: Mapped[str] = mapped_column(String(200), primary_key=True)
    key_name: Mapped[str] = mapped_column(String(200))
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
