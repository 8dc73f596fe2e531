"""The composition root: builds every stage from settings and wires them together.

Adapters (API, CLI) get a ``Runtime`` and never construct stages themselves; stages never
import each other's wiring.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from asn1crypto import x509
from sqlalchemy.orm import Session

from medsign.apps import ApplicationRegistry, RequestAuthenticator, WebhookDispatcher
from medsign.apps.webhooks import enqueue_webhooks
from medsign.ca.authority import CertificateAuthority, CertificateRecord
from medsign.ca.crl import CRLPublisher
from medsign.ca.ocsp import OCSPResponder
from medsign.clock import Clock, SystemClock
from medsign.config import Environment, Settings
from medsign.crypto import PublicKey
from medsign.crypto.types import KeyAlgorithm
from medsign.db.session import Database
from medsign.db.tables import OrganizationRow
from medsign.documents.sealing import Sealer, SealImages, SealJobs, SealOptions
from medsign.documents.service import DocumentService
from medsign.documents.signing import (
    PDF_MECHANISMS,
    PdfSigner,
    SignedPdf,
    SigningKey,
    ValidationMaterial,
)
from medsign.errors import (
    ConfigurationError,
    NotFoundError,
    StateError,
    TimestampUnavailableError,
)
from medsign.evidence.checkpoints import CheckpointService
from medsign.evidence.log import EvidenceLog
from medsign.evidence.witness import WitnessService
from medsign.identity.devices import PhoneSessions
from medsign.identity.enrolment import EnrolmentService
from medsign.identity.providers import (
    IdentityCheckProvider,
    SMSProvider,
    open_identity_check_provider,
    open_sms_provider,
)
from medsign.identity.staff import StaffDirectory
from medsign.intake.requests import Intake, IntakeLimits
from medsign.intake.scenes import SceneRegistry
from medsign.intent.assertions import LoginAssertions
from medsign.intent.challenges import Challenge, IntentChallenges
from medsign.intent.logins import LoginService
from medsign.intent.otp import OneTimeCodes
from medsign.intent.passkeys import PasskeyService, check_relying_party
from medsign.intent.pin import SigningPINs
from medsign.keys import (
    KeyStore,
    MasterKeyring,
    SoftwareKeyStore,
    keyring_directory,
    open_key_store,
    open_keyring,
)
from medsign.keys.sealing import DataSealer
from medsign.tsa import TimestampAuthority
from medsign.verify import Verifier
from medsign.verify.installation import installation_verifier
from medsign.workflow import SecretChecker, SigningWorkflow

log = logging.getLogger(__name__)


class _PINSecret:
    """The signing PIN as an intention method."""

    def __init__(self, pins: SigningPINs) -> None:
        self._pins = pins

    def begin(self, challenge: Challenge) -> None:
        return None

    def check(self, challenge: Challenge, secret: str, *, client: str) -> None:
        self._pins.verify_pin(challenge.staff_id, secret, client=client, challenge_id=challenge.id)


class _SMSSecret:
    """An SMS one-time code sent to the signer's registered phone, bound to the challenge."""

    def __init__(self, codes: OneTimeCodes) -> None:
        self._codes = codes

    def begin(self, challenge: Challenge) -> None:
        self._codes.issue_code(challenge.staff_id, "intent", challenge.id)

    def check(self, challenge: Challenge, secret: str, *, client: str) -> None:
        self._codes.verify_code(challenge.staff_id, "intent", challenge.id, secret, client=client)


class _WebhookNotifier:
    def enqueue_many(
        self,
        session: Session,
        at: dt.datetime,
        application_id: str,
        notifications: Sequence[tuple[str, str, dict[str, Any]]],
    ) -> list[str]:
        return enqueue_webhooks(session, at, application_id, notifications)


@dataclass
class Runtime:
    settings: Settings
    database: Database
    clock: Clock
    keystore: KeyStore
    authority: CertificateAuthority
    crls: CRLPublisher
    ocsp: OCSPResponder
    sealer: DataSealer
    applications: ApplicationRegistry
    app_auth: RequestAuthenticator
    webhooks: WebhookDispatcher
    staff: StaffDirectory
    sms: SMSProvider
    identity_check: IdentityCheckProvider | None
    codes: OneTimeCodes
    pins: SigningPINs
    enrolments: EnrolmentService
    verifier: Verifier
    tsa: TimestampAuthority
    workflow: SigningWorkflow
    phone: PhoneSessions
    passkeys: PasskeyService | None  # None where the base URL's host cannot be an RP id
    evidence_log: EvidenceLog
    checkpoints: CheckpointService
    witness: WitnessService
    logins: LoginService
    seal_jobs: SealJobs
    seal_images: SealImages
    _closed: bool = field(default=False, repr=False)

    def organization_sealer(self, organization_id: str) -> Sealer:
        """Applies ``organization_id``'s seal: its `organization-seal` key in the key store,
        the seal image for the purpose asked (drawn in the standard form if none was
        uploaded). The caller has checked the right to use it."""
        documents = self.workflow.documents
        assert documents is not None
        with self.database.session() as session:
            organization = session.get(OrganizationRow, organization_id)
            if organization is None:
                raise NotFoundError(f"no organisation {organization_id}")
            name = organization.name
        record = seal_certificate(self)
        assert record.key_id is not None
        key_id = record.key_id
        chain = tuple(self.authority.chain(record.serial_hex))
        spki = x509.Certificate.load(record.certificate_der).public_key.dump()
        scheme = PublicKey.from_der(spki).default_scheme
        actor = f"organization:{organization_id}"

        def seal(pdf: bytes, options: SealOptions) -> SignedPdf:
            with self.database.session() as session:
                png = self.seal_images.active(session, organization_id, name, options.purpose)
            key = SigningKey.for_certificate(
                record.certificate_der,
                chain,
                lambda digest: self.keystore.sign_digest(
                    key_id, scheme, digest, actor=actor, purpose="organization-seal"
                ),
            )
            return documents.seal(pdf, options, key, seal_png=png, at=self.clock.now())

        return seal

    def run_seal_jobs(self, *, limit: int = 5) -> int:
        """Work through queued seal jobs; returns how many records were decided."""
        decided = 0
        for job_id in self.seal_jobs.queued(limit):
            before = self.seal_jobs.get(job_id, with_items=False)
            sealer = self.organization_sealer(before.organization_id)
            after = self.seal_jobs.run(job_id, sealer)
            decided += (after.sealed + after.failed) - (before.sealed + before.failed)
        return decided

    def close(self) -> None:
        if not self._closed:
            self.database.dispose()
            self._closed = True


def seal_certificate(runtime: Runtime) -> CertificateRecord:
    """The newest valid `organization-seal` certificate whose key can sign PDFs."""
    now = runtime.clock.now()
    for record in runtime.authority.list(profile="organization-seal", status="good", limit=50):
        if record.key_id is None or not record.not_before <= now < record.not_after:
            continue
        der = x509.Certificate.load(record.certificate_der).public_key.dump()
        if PublicKey.from_der(der).algorithm in PDF_MECHANISMS:
            return record
    raise StateError("the organisation has no seal certificate that can sign PDFs")


def is_initialised(settings: Settings) -> bool:
    return (settings.data_dir / ".initialised").is_file()


def open_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    """Open an initialised installation (the database schema is brought up to date)."""
    if not is_initialised(settings):
        raise ConfigurationError(
            f"{settings.data_dir} is not an initialised medsign data directory;"
            " run `medsign init` first"
        )
    clock = clock or SystemClock()
    database = Database(settings.resolved_database_url)
    database.upgrade()
    keystore = open_key_store(settings, database, clock)
    return _assemble(settings, database, clock, keystore)


def _assemble(settings: Settings, database: Database, clock: Clock, keystore: KeyStore) -> Runtime:
    from datetime import timedelta

    authority = CertificateAuthority(database, keystore, clock, settings.public_base_url)
    crls = CRLPublisher(
        database, keystore, clock, validity=timedelta(hours=settings.crl_validity_hours)
    )
    ocsp = OCSPResponder(
        database, keystore, clock, validity=timedelta(minutes=settings.ocsp_validity_minutes)
    )
    authority.add_status_listener(crls.on_status_change)
    authority.add_status_listener(ocsp.on_status_change)
    # The sealer shares the software store's keyring object so a rotation is seen by both.
    keyring = keystore.keyring if isinstance(keystore, SoftwareKeyStore) else open_keyring(settings)
    sealer = DataSealer(keyring, database)
    applications = ApplicationRegistry(
        database, sealer, clock, secret_grace=timedelta(hours=settings.app_secret_grace_hours)
    )
    app_auth = RequestAuthenticator(
        database,
        applications,
        clock,
        max_skew=timedelta(seconds=settings.app_auth_max_skew_seconds),
        max_body_bytes=settings.app_max_body_bytes,
    )
    webhooks = WebhookDispatcher(
        database, sealer, clock, max_attempts=settings.webhook_max_attempts
    )
    staff = StaffDirectory(database, sealer, clock, authority=authority)
    # Refuses the development SMS provider in production (ConfigurationError).
    sms = open_sms_provider(settings, database, clock)
    identity_check = open_identity_check_provider(settings)
    codes = OneTimeCodes(database, sealer, clock, sms)
    pins = SigningPINs(
        database, clock, pepper=lambda pin: sealer.lookup_digest(pin, context="signing-pin")
    )
    phone = PhoneSessions(
        database,
        clock,
        lifetime=timedelta(minutes=settings.phone_session_minutes),
        idle=timedelta(minutes=min(settings.phone_idle_minutes, settings.phone_session_minutes)),
        authority=authority,
    )
    enrolments = EnrolmentService(
        database,
        clock,
        sealer,
        staff=staff,
        codes=codes,
        pins=pins,
        keystore=keystore,
        authority=authority,
        public_base_url=settings.public_base_url,
        lifetime=timedelta(minutes=settings.enrolment_lifetime_minutes),
        identity_check=identity_check,
        devices=phone,
    )
    tsa = _timestamp_authority(settings, database, clock, keystore, authority)
    passkeys = _passkeys(settings, database, clock)
    host = urlsplit(settings.public_base_url).netloc or "medsign"
    checkpoints_ref: list[CheckpointService] = []
    evidence_log = EvidenceLog(
        database, verify_checkpoint=lambda note: checkpoints_ref[0].verify_note(note)
    )
    checkpoints = CheckpointService(
        database,
        clock,
        keystore,
        authority,
        evidence_log,
        origin=settings.log_origin or f"{host}/medsign-log",
        stamp=lambda imprint: tsa.stamp(imprint, "sha256"),
        quorum=settings.log_witness_quorum,
    )
    checkpoints_ref.append(checkpoints)
    secrets: dict[str, SecretChecker] = {"pin": _PINSecret(pins), "sms": _SMSSecret(codes)}
    if passkeys is not None:
        secrets["passkey"] = passkeys
    return Runtime(
        settings,
        database,
        clock,
        keystore,
        authority,
        crls,
        ocsp,
        sealer,
        applications=applications,
        app_auth=app_auth,
        webhooks=webhooks,
        staff=staff,
        sms=sms,
        identity_check=identity_check,
        codes=codes,
        pins=pins,
        enrolments=enrolments,
        verifier=_verifier(settings, database, clock, authority),
        tsa=tsa,
        workflow=SigningWorkflow(
            database=database,
            clock=clock,
            keystore=keystore,
            intake=Intake(
                SceneRegistry(),
                IntakeLimits(
                    max_record_bytes=settings.sign_max_record_bytes,
                    max_batch_items=settings.sign_max_batch_items,
                ),
            ),
            intents=IntentChallenges(),
            secrets=secrets,
            stamper=tsa,
            notifier=_WebhookNotifier(),
            chain_for=authority.chain,
            documents=_documents(settings, authority, crls, ocsp, tsa, sealer),
        ),
        phone=phone,
        passkeys=passkeys,
        evidence_log=evidence_log,
        checkpoints=checkpoints,
        witness=WitnessService(
            database, clock, keystore, name=settings.witness_name or f"{host}/medsign-witness"
        ),
        logins=LoginService(
            database,
            clock,
            assertions=LoginAssertions(keystore, authority, clock, issuer=settings.public_base_url),
            public_base_url=settings.public_base_url,
            lifetime=timedelta(seconds=settings.login_lifetime_seconds),
        ),
        seal_jobs=SealJobs(database, clock, max_bytes=settings.document_max_bytes),
        seal_images=SealImages(clock),
    )


def _passkeys(settings: Settings, database: Database, clock: Clock) -> PasskeyService | None:
    """Passkeys for the phone pages' origin: the relying party is the host of the public base
    URL (or ``passkey_rp_id``). Browsers refuse IP addresses as relying parties, so an
    installation reached by IP runs without passkeys (PIN and SMS still work)."""
    parts = urlsplit(settings.public_base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    try:
        rp_id, origins = check_relying_party(
            settings.passkey_rp_id or parts.hostname or "", [origin]
        )
    except ConfigurationError as exc:
        log.info("passkeys are off: %s", exc)
        return None
    return PasskeyService(
        database, clock, rp_id=rp_id, rp_name=settings.passkey_rp_name, origins=origins
    )


LINK_CONTEXT = "verification-link"


def link_token(sealer: DataSealer, request_id: str) -> str:
    """The capability in a signature's public verification URL (an HMAC of its id)."""
    return sealer.lookup_digest(request_id, context=LINK_CONTEXT)[:32]


def verification_url(base_url: str, sealer: DataSealer, request_id: str) -> str:
    """A signature's public verification page: what QR codes on reports and PDFs open."""
    return f"{base_url}/v/r/{request_id}/{link_token(sealer, request_id)}"


def _documents(
    settings: Settings,
    authority: CertificateAuthority,
    crls: CRLPublisher,
    ocsp: OCSPResponder,
    tsa: TimestampAuthority,
    sealer: DataSealer,
) -> DocumentService:
    def material(certificate_der: bytes, chain_der: Sequence[bytes]) -> ValidationMaterial:
        """The DSS of a B-LT signature: both chains (signer's and TSA's), an OCSP response
        for each end-entity certificate and the current CRL of every CA on the way."""
        cas = {ca.certificate_der: ca for ca in authority.list_cas()}
        tsa_der = tsa.certificate()
        tsa_chain = authority.chain(format(x509.Certificate.load(tsa_der).serial_number, "x"))
        responses = [
            ocsp.response_for(leaf, chain[0])
            for leaf, chain in ((certificate_der, chain_der), (tsa_der, tsa_chain))
            if chain
        ]
        issuers = [der for der in (*chain_der, *tsa_chain) if der in cas]
        return ValidationMaterial(
            trust_roots=tuple(der for der, ca in cas.items() if ca.level == "root"),
            certificates=tuple(dict.fromkeys((*chain_der, tsa_der, *tsa_chain))),
            ocsp_responses=tuple(r for r in responses if r is not None),
            crls=tuple(crls.current(cas[der].id) for der in dict.fromkeys(issuers)),
        )

    base = settings.public_base_url
    return DocumentService(
        PdfSigner(tsa.respond, max_bytes=settings.document_max_bytes),
        validation_material=material,
        verification_url=lambda rid: verification_url(base, sealer, rid),
        zone=ZoneInfo(settings.display_timezone),
    )


def _verifier(
    settings: Settings, database: Database, clock: Clock, authority: CertificateAuthority
) -> Verifier:
    anchors = settings.trust_anchors_file
    if anchors is not None and not anchors.is_absolute():
        anchors = settings.data_dir / anchors
    return installation_verifier(
        database,
        clock,
        roots=lambda: [ca.certificate_der for ca in authority.list_cas() if ca.level == "root"],
        intermediates=lambda: [
            ca.certificate_der for ca in authority.list_cas() if ca.level != "root"
        ],
        extra_anchors=anchors,
    )


def initialise(
    settings: Settings,
    *,
    organization_name: str,
    organization_code: str,
    demo: bool,
    clock: Clock | None = None,
) -> tuple[Runtime, str | None]:
    """Create (or complete) an installation. Returns the runtime and, on first run, the
    admin token, which is shown once and stored only as a hash."""
    from medsign.identity.admin_tokens import create_admin_token
    from medsign.identity.organizations import ensure_organization

    if settings.environment is Environment.PRODUCTION and demo:
        raise ConfigurationError("a demo hospital is not created in production")
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    first_run = not is_initialised(settings)
    # The keyring also seals application secrets and personal data, whatever the key store.
    if settings.master_secret is None:
        directory = keyring_directory(settings)
        if not any(directory.glob("master-*.key")):
            MasterKeyring.create(directory)
    database = Database(settings.resolved_database_url)
    database.upgrade()
    keystore = open_key_store(settings, database, clock)
    runtime = _assemble(settings, database, clock, keystore)
    organization = ensure_organization(
        database, clock, code=organization_code, name=organization_name, demo=demo
    )
    runtime.authority.initialise_hierarchy(organization.name)
    for ca in runtime.authority.list_cas():
        runtime.crls.current(ca.id)
    _ensure_seal_certificate(runtime, organization.name)
    _ensure_tsa_certificate(runtime, organization.name)
    runtime.logins.assertions.ensure(actor="system:init")
    token = None
    if first_run:
        _, token = create_admin_token(database, clock, name="initial admin token")
        (settings.data_dir / ".initialised").write_text("medsign data directory\n")
        log.info("initialised data directory", extra={"data_dir": str(settings.data_dir)})
    return runtime, token


def _ensure_seal_certificate(runtime: Runtime, organization_name: str) -> None:
    """Give the hospital its `organization-seal` certificate, with a key that signs PDFs
    (``seal_key_algorithm``, P-256 by default: SM2 seals inside PDFs come later)."""
    try:
        seal_certificate(runtime)
        return
    except StateError:
        pass
    algorithm = KeyAlgorithm(runtime.settings.seal_key_algorithm)
    key = runtime.keystore.generate(algorithm, label=f"seal:{organization_name}")
    runtime.authority.issue_for_key(
        key.id,
        {"CN": organization_name, "O": organization_name, "C": "CN"},
        "organization-seal",
        actor="system:init",
    )


def _timestamp_authority(
    settings: Settings,
    database: Database,
    clock: Clock,
    keystore: KeyStore,
    authority: CertificateAuthority,
) -> TimestampAuthority:
    from medsign.tsa import ClockGuard, TSACredentials
    from medsign.tsa.clockguard import reference_from_setting

    if settings.tsa_max_drift_ms > settings.tsa_accuracy_ms:
        # A token states its accuracy; allowing more drift than that would make it a lie.
        raise ConfigurationError("tsa_max_drift_ms must not exceed tsa_accuracy_ms")

    def credentials() -> TSACredentials:
        now = clock.now()
        for record in authority.list(profile="tsa", status="good", limit=20):
            if record.key_id is not None and record.not_before <= now < record.not_after:
                return TSACredentials(record.key_id, record.certificate_der)
        raise TimestampUnavailableError("no valid TSA certificate; run `medsign init`")

    guard = ClockGuard(
        reference_from_setting(settings.tsa_reference),
        max_drift_ms=settings.tsa_max_drift_ms,
        strict=settings.tsa_strict_clock,
    )
    return TimestampAuthority(
        database,
        keystore,
        clock,
        credentials,
        policy_oid=settings.tsa_policy_oid,
        accuracy_ms=settings.tsa_accuracy_ms,
        time_digits=settings.tsa_time_digits,
        guard=guard,
    )


def _ensure_tsa_certificate(runtime: Runtime, organization_name: str) -> None:
    """Give the time-stamping unit its `tsa` certificate (P-256 by default)."""

    now = runtime.clock.now()
    for record in runtime.authority.list(profile="tsa", status="good", limit=20):
        if record.key_id is not None and record.not_after > now:
            return
    algorithm = KeyAlgorithm(runtime.settings.tsa_key_algorithm)
    key = runtime.keystore.generate(algorithm, label=f"tsa:{organization_name}")
    suffix = " Time-Stamping Unit"
    common_name = organization_name[: 64 - len(suffix)] + suffix  # CN is at most 64 characters
    runtime.authority.issue_for_key(
        key.id,
        {"CN": common_name, "O": organization_name, "C": "CN"},
        "tsa",
        actor="system:init",
    )
    runtime.tsa.reload()
