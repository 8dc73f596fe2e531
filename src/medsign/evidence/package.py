"""Evidence packages: everything needed to check one signature request offline, in one ZIP.

A package holds the signature (raw and CMS), the certificates up to the root, the issuer's CRL
and an OCSP response, the signature timestamp, the intention record, every evidence event of
the request with an inclusion proof against a signed (and, where witnesses exist, cosigned)
checkpoint of the evidence log, and the keys to check that checkpoint. ``verify_package``
needs nothing else: no server, no network, no database.

Layout (``manifest.json`` first, then the other files in name order; fixed timestamps, so
the same evidence gives the same bytes)::

    manifest.json            {"format", "version", "request_id", "log_origin", "files": [
                              {"path", "role", "sha256", "size"}, ...]}
    request.json             ids, scheme, digest (hex), times; never the summary or record id
    content.json             the signed JSON record (RFC 8785 bytes), only on request
    signature.raw            the raw signature
    signature.p7s            CMS SignedData, DER (detached; carries the timestamp too)
    timestamp.tsr            the RFC 3161 token over the CMS signature value
    chain/NN.der             signer certificate, intermediates, root (00 is the signer)
    tsa/NN.der               the TSA certificate and its chain
    revocation/issuer.crl    the issuer's CRL, issued after the signing time when possible
    revocation/signer.ocsp   an OCSP response for the signer certificate (informational)
    intent.json              challenge id, method, times and attempts (outcome, client label)
    log/events.json          [{"leaf_index", "record" (exact canonical text), "proof": [b64]}]
    log/checkpoint.txt       the signed checkpoint note with witness cosignature lines
    log/checkpoint.tsr       RFC 3161 token over the checkpoint note, if it has one
    log/log.vkey             the log's note verifier key
    log/witnesses.vkeys      the witnesses' verifier keys, one a line (may be empty)

What the manifest hashes prove is only that the files belong together: anyone can rewrite a
manifest. The trust comes from the signatures inside (signer, TSA, log key, witnesses) and
from the ``signature:apply`` event, logged under the checkpoint, naming the SHA-256 of the
raw signature, the CMS and the timestamp.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from asn1crypto import crl as asn1_crl
from asn1crypto import x509
from sqlalchemy import select

from medsign.ca.authority import CertificateAuthority
from medsign.ca.crl import CRLPublisher
from medsign.ca.ocsp import OCSPResponder
from medsign.clock import Clock, SystemClock, ensure_utc
from medsign.crypto.types import SignatureScheme
from medsign.db.session import Database
from medsign.db.tables import IntentAttemptRow, IntentChallengeRow, SignRequestRow
from medsign.errors import InputError, MedsignError, NotFoundError, StateError
from medsign.evidence.checkpoints import CheckpointService, StoredCheckpoint
from medsign.evidence.events import list_events
from medsign.evidence.log import EvidenceLog
from medsign.evidence.merkle import leaf_hash, verify_inclusion
from medsign.evidence.notes import (
    Checkpoint,
    Note,
    NoteSignatureError,
    NoteUnverifiedError,
    NoteVerifier,
    open_note,
    parse_note,
)
from medsign.verify.chain import TrustStore, parse_certificate
from medsign.verify.data import CMSSignature, RawSignature, SignedContent, Verifier
from medsign.verify.report import (
    CheckFailure,
    CheckName,
    Indication,
    Report,
    SubIndication,
    failed,
    indeterminate,
)
from medsign.verify.signed_data import digest as compute_digest
from medsign.verify.signed_data import find_certificate, parse_signed_data, unsigned_attributes
from medsign.verify.status import StatusEvidence, crl_evidence
from medsign.verify.timestamp import verify_timestamp_token

FORMAT = "medsign-evidence-package"
VERSION = 1
MANIFEST = "manifest.json"
MEDIA_TYPE = "application/zip"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# Stops a zip bomb before it is inflated: a real package is a few hundred kilobytes.
MAX_PACKAGE_BYTES = 32 * 1024 * 1024
MAX_MEMBER_BYTES = 16 * 1024 * 1024
MAX_MEMBERS = 256
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# Events a signature cannot lack, in the order they happen.
REQUIRED_EVENTS = ("request:open", "intent:confirm", "signature:apply")


def is_package(blob: bytes) -> bool:
    """True for anything that starts like a ZIP archive (checked by content, not by name)."""
    return blob.startswith(ZIP_MAGIC)


# -- building ----------------------------------------------------------------------------------


class PackageSources(Protocol):
    """What building a package reads; ``medsign.runtime.Runtime`` provides all of it."""

    @property
    def database(self) -> Database: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def authority(self) -> CertificateAuthority: ...
    @property
    def crls(self) -> CRLPublisher: ...
    @property
    def ocsp(self) -> OCSPResponder: ...
    @property
    def evidence_log(self) -> EvidenceLog: ...
    @property
    def checkpoints(self) -> CheckpointService: ...


class PackageNotReadyError(StateError):
    code = "evidence-package-not-ready"
    title = "Only a signed request has an evidence package"


@dataclass
class _Files:
    files: dict[str, bytes] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, role: str, data: bytes) -> None:
        self.files[path] = data
        self.roles[path] = role


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _iso(value: dt.datetime | None) -> str | None:
    return ensure_utc(value).isoformat() if value is not None else None


def build_package(
    sources: PackageSources,
    request_id: str,
    *,
    include_content: bool = False,
    application_id: str | None = None,
) -> bytes:
    """The evidence package of a signed request, as ZIP bytes.

    ``application_id`` scopes the lookup to one application's requests (the API passes it);
    another application's request is reported as not found, as everywhere else."""
    with sources.database.session() as session:
        row = session.get(SignRequestRow, request_id)
        if row is None or (application_id is not None and row.application_id != application_id):
            raise NotFoundError(f"no sign request {request_id}")
        if (
            row.signature is None
            or row.cms is None
            or row.timestamp_token is None
            or row.certificate_id is None
            or row.intent_id is None
        ):
            raise PackageNotReadyError(f"request {request_id} is {row.state}, not signed")
        challenge = session.get(IntentChallengeRow, row.intent_id)
        attempts = session.scalars(
            select(IntentAttemptRow)
            .where(IntentAttemptRow.challenge_id == row.intent_id)
            .order_by(IntentAttemptRow.id)
        ).all()
        request_info = {
            "request_id": row.id,
            "application_id": row.application_id,
            "batch_id": row.batch_id,
            "kind": row.kind,
            "scene": row.scene,
            "record_id_sha256": hashlib.sha256(row.record_id.encode()).hexdigest(),
            "content_kind": row.content_kind,
            "digest_algorithm": row.digest_algorithm,
            "digest": row.digest.hex(),
            "signature_scheme": row.signature_scheme,
            "signed_at": _iso(row.signed_at),
            "timestamp_time": _iso(row.timestamp_time),
            "challenge_id": row.intent_id,
        }
        intent = {
            "challenge_id": row.intent_id,
            "method": challenge.method if challenge else None,
            "binding_digest": challenge.binding_digest if challenge else None,
            "request_ids": json.loads(challenge.request_ids) if challenge else [],
            "created_at": _iso(challenge.created_at) if challenge else None,
            "confirmed_at": _iso(challenge.confirmed_at) if challenge else None,
            "consumed_at": _iso(challenge.consumed_at) if challenge else None,
            # Outcome and the client label only: the secret itself is never stored.
            "attempts": [
                {"method": a.method, "outcome": a.outcome, "client": a.client, "at": _iso(a.at)}
                for a in attempts
            ],
        }
        content = row.content if row.content_kind == "json" else None
        signature, cms, token = bytes(row.signature), bytes(row.cms), bytes(row.timestamp_token)
        signed_at = ensure_utc(row.timestamp_time or row.signed_at or sources.clock.now())
        certificate_id = row.certificate_id

    out = _Files()
    out.add("request.json", "the request: ids, scheme, digest, times", _json(request_info))
    if include_content and content is not None:
        out.add("content.json", "the signed JSON record (RFC 8785 bytes)", bytes(content))
    out.add("signature.raw", "raw signature", signature)
    out.add("signature.p7s", "CMS SignedData, DER, detached", cms)
    out.add("timestamp.tsr", "RFC 3161 token over the CMS signature value", token)

    record = sources.authority.get_by_id(certificate_id)
    issuers = sources.authority.chain(record.serial_hex)
    for position, der in enumerate([record.certificate_der, *issuers]):
        role = "signer certificate" if position == 0 else "CA certificate"
        if position == len(issuers):
            role = "root CA certificate"
        out.add(f"chain/{position:02d}.der", role, der)
    for position, der in enumerate(_tsa_chain(sources.authority, token)):
        out.add(f"tsa/{position:02d}.der", "TSA certificate" if position == 0 else "TSA CA", der)
    if record.issuer_ca_id is not None:
        out.add(
            "revocation/issuer.crl",
            "the issuer's CRL",
            _crl_after(sources.crls, record.issuer_ca_id, signed_at),
        )
        response = sources.ocsp.response_for(record.certificate_der, issuers[0])
        if response is not None:
            out.add("revocation/signer.ocsp", "OCSP response for the signer certificate", response)
    out.add("intent.json", "the intention record (never the secret)", _json(intent))

    events, stored = _trail(sources, request_id, str(request_info["challenge_id"]))
    out.add("log/events.json", "the request's evidence events with inclusion proofs", events)
    out.add("log/checkpoint.txt", "signed checkpoint note", stored.with_cosignatures().encode())
    if stored.timestamp_token is not None:
        out.add(
            "log/checkpoint.tsr", "RFC 3161 token over the checkpoint note", stored.timestamp_token
        )
    out.add(
        "log/log.vkey", "the log's note verifier key", sources.checkpoints.vkey().encode() + b"\n"
    )
    witness_keys = "".join(f"{v.vkey()}\n" for _, _, v in sources.checkpoints.witnesses())
    out.add("log/witnesses.vkeys", "witness verifier keys", witness_keys.encode())
    return _zip(out, request_id, sources.checkpoints.origin)


def _zip(out: _Files, request_id: str, origin: str) -> bytes:
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "request_id": request_id,
        "log_origin": origin,
        "files": [
            {
                "path": path,
                "role": out.roles[path],
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
            for path, data in sorted(out.files.items())
        ],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in [(MANIFEST, _json(manifest)), *sorted(out.files.items())]:
            info = zipfile.ZipInfo(path, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _tsa_chain(authority: CertificateAuthority, token: bytes) -> list[bytes]:
    """The TSA certificate named in the token and its issuers, as this installation has them."""
    view = parse_signed_data(token)
    certificate = find_certificate(view.signer, view.certificates)
    if certificate is None:
        return []
    try:
        issuers = authority.chain(format(certificate.serial_number, "x"))
    except NotFoundError:
        issuers = []
    return [certificate.dump(), *issuers]


def _crl_after(crls: CRLPublisher, ca_id: str, signed_at: dt.datetime) -> bytes:
    """The issuer's CRL; a fresh one when the current one predates the signature, since only a
    CRL issued after the signing time shows the certificate was not revoked at that time."""
    current = crls.current(ca_id)
    this_update = ensure_utc(
        asn1_crl.CertificateList.load(current)["tbs_cert_list"]["this_update"].native
    )
    if this_update >= signed_at:
        return current
    return crls.publish(ca_id)


def _trail(
    sources: PackageSources, request_id: str, challenge_id: str
) -> tuple[bytes, StoredCheckpoint]:
    seen: dict[str, int] = {}
    for subject in (request_id, challenge_id):
        for event in list_events(sources.database, subject=subject, limit=10_000):
            seen[event.id] = event.seq
    entries = [
        sources.evidence_log.entry(event_id) for event_id in sorted(seen, key=lambda i: seen[i])
    ]
    needed = max((e.leaf_index for e in entries), default=-1) + 1
    stored = _checkpoint_covering(sources.checkpoints, needed)
    size = stored.checkpoint.size
    items = []
    for entry in entries:
        _, proof = sources.evidence_log.inclusion(entry.leaf_index, size)
        items.append(
            {
                "leaf_index": entry.leaf_index,
                "record": entry.record_text,
                "proof": [_b64(p) for p in proof],
            }
        )
    return _json({"tree_size": size, "events": items}), stored


def _checkpoint_covering(checkpoints: CheckpointService, size: int) -> StoredCheckpoint:
    """The newest witnessed checkpoint covering ``size`` leaves, else the newest, else a new one."""
    for witnessed in (True, False):
        try:
            stored = checkpoints.latest(witnessed=witnessed)
        except NotFoundError:
            continue
        if stored.checkpoint.size >= size:
            return stored
    return checkpoints.make()


# -- verifying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageCheck:
    name: str
    indication: Indication
    message: str
    sub_indication: SubIndication | None = None


@dataclass(frozen=True)
class PackageReport:
    request_id: str | None
    indication: Indication
    sub_indication: SubIndication | None
    checks: tuple[PackageCheck, ...]
    signature: Report | None = None  # the CMS signature's own report, when it got that far
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.indication is Indication.PASSED

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "evidence-package",
            "request_id": self.request_id,
            "indication": self.indication.value,
            "sub_indication": self.sub_indication.value if self.sub_indication else None,
            "checks": [
                {
                    "name": c.name,
                    "indication": c.indication.value,
                    "sub_indication": c.sub_indication.value if c.sub_indication else None,
                    "message": c.message,
                }
                for c in self.checks
            ],
            "signature": self.signature.as_dict() if self.signature is not None else None,
            "notes": list(self.notes),
        }


class _PackageError(Exception):
    """The package itself is unusable: nothing inside it can be relied on."""

    def __init__(self, sub_indication: SubIndication, message: str) -> None:
        super().__init__(message)
        self.sub_indication = sub_indication


class _PackagedStatus:
    """Status from the CRL in the package (the only revocation evidence offline)."""

    def __init__(self, crls: Sequence[asn1_crl.CertificateList]) -> None:
        self._crls = crls

    def evidence(
        self, certificate: x509.Certificate, issuer: x509.Certificate
    ) -> StatusEvidence | None:
        found = crl_evidence(self._crls, certificate, issuer)
        if found is None:
            return None
        return StatusEvidence("CRL in the package", found.complete_at, found.suspensions)


@dataclass
class _Verification:
    files: dict[str, bytes]
    manifest: dict[str, Any]
    trust_anchors: Sequence[bytes]
    clock: Clock
    checks: list[PackageCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signature_report: Report | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def run(self, name: str, step: Callable[[], str]) -> bool:
        try:
            self.checks.append(PackageCheck(name, Indication.PASSED, step()))
            return True
        except CheckFailure as exc:
            self.checks.append(PackageCheck(name, exc.indication, str(exc), exc.sub_indication))
        except MedsignError as exc:
            self.checks.append(
                PackageCheck(name, Indication.FAILED, str(exc), SubIndication.FORMAT_FAILURE)
            )
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            # A malformed structure inside a file of the package (JSON, DER) is a property of
            # the input; the answer is still a report.
            self.checks.append(
                PackageCheck(
                    name,
                    Indication.FAILED,
                    f"malformed content ({type(exc).__name__}: {exc})",
                    SubIndication.FORMAT_FAILURE,
                )
            )
        return False

    def json(self, path: str) -> Any:
        return json.loads(self.files[path].decode("utf-8"))

    def certificates(self, prefix: str) -> list[bytes]:
        return [self.files[p] for p in sorted(self.files) if p.startswith(prefix)]


def verify_package(
    data: bytes, *, trust_anchors: Sequence[bytes] = (), clock: Clock | None = None
) -> PackageReport:
    """Check an evidence package offline; every outcome is a report, never an exception.

    Without ``trust_anchors`` the package's own root certificates are the trust anchors (so a
    pass says the package is internally consistent and rooted in the CA it names); with them,
    a root not among them makes the chain INDETERMINATE."""
    clock = clock or SystemClock()
    try:
        files, manifest = _open(data)
    except _PackageError as exc:
        check = PackageCheck("package", Indication.FAILED, str(exc), exc.sub_indication)
        return PackageReport(None, Indication.FAILED, exc.sub_indication, (check,))
    run = _Verification(files, manifest, trust_anchors, clock)
    run.checks.append(
        PackageCheck(
            "package",
            Indication.PASSED,
            f"format {FORMAT} v{VERSION}, {len(files)} files, every SHA-256 matches the manifest",
        )
    )
    run.run("content", lambda: _check_content(run))
    run.run("signature", lambda: _check_cms(run))
    if run.signature_report is not None:
        for inner in run.signature_report.checks:
            run.checks.append(
                PackageCheck(
                    f"signature {inner.name.value}",
                    inner.indication,
                    inner.message,
                    inner.sub_indication,
                )
            )
        run.notes.extend(run.signature_report.notes)
    run.run("raw-signature", lambda: _check_raw(run))
    if trust_anchors:
        run.run("trust-anchor", lambda: _check_anchor(run))
    checkpoint: list[Checkpoint] = []
    run.run("checkpoint", lambda: _check_checkpoint(run, checkpoint))
    run.run("witnesses", lambda: _check_witnesses(run))
    if "log/checkpoint.tsr" in files:
        run.run("checkpoint-timestamp", lambda: _check_checkpoint_timestamp(run))
    run.run("events", lambda: _check_events(run, checkpoint[0] if checkpoint else None))
    run.run("trail", lambda: _check_trail(run))
    indication, sub = _overall(run.checks)
    return PackageReport(
        str(manifest.get("request_id")),
        indication,
        sub,
        tuple(run.checks),
        run.signature_report,
        tuple(run.notes),
    )


def _overall(checks: Sequence[PackageCheck]) -> tuple[Indication, SubIndication | None]:
    for level in (Indication.FAILED, Indication.INDETERMINATE):
        for check in checks:
            if check.indication is level:
                return level, check.sub_indication
    return Indication.PASSED, None


_REQUIRED_FILES = (
    "request.json",
    "signature.raw",
    "signature.p7s",
    "timestamp.tsr",
    "intent.json",
    "log/events.json",
    "log/checkpoint.txt",
    "log/log.vkey",
    "log/witnesses.vkeys",
    "chain/00.der",
)


def _open(data: bytes) -> tuple[dict[str, bytes], dict[str, Any]]:
    if len(data) > MAX_PACKAGE_BYTES:
        raise _PackageError(SubIndication.FORMAT_FAILURE, "the package is too large")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    # Untrusted bytes: zipfile and zlib raise many kinds of errors on a damaged archive (bad
    # CRC, zlib.error, unknown compression or "encrypted" flags); each is a format failure.
    except Exception as exc:
        raise _PackageError(
            SubIndication.FORMAT_FAILURE, f"not a readable ZIP archive (truncated?): {exc}"
        ) from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _PackageError(SubIndication.FORMAT_FAILURE, "the package has too many files")
        files: dict[str, bytes] = {}
        for info in infos:
            if info.file_size > MAX_MEMBER_BYTES or info.filename in files:
                raise _PackageError(
                    SubIndication.FORMAT_FAILURE, f"{info.filename}: too large or repeated"
                )
            try:
                files[info.filename] = archive.read(info)
            except Exception as exc:
                raise _PackageError(
                    SubIndication.FORMAT_FAILURE, f"{info.filename} cannot be read: {exc}"
                ) from exc
    if MANIFEST not in files:
        raise _PackageError(SubIndication.FORMAT_FAILURE, "manifest.json is missing")
    try:
        manifest = json.loads(files.pop(MANIFEST).decode("utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
        listed = {entry["path"]: entry for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise _PackageError(
            SubIndication.FORMAT_FAILURE, f"manifest.json is malformed: {exc}"
        ) from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise _PackageError(
            SubIndication.FORMAT_FAILURE,
            f"unknown package format {manifest.get('format')!r} version"
            f" {manifest.get('version')!r} (this verifier reads {FORMAT} v{VERSION})",
        )
    for path in sorted(set(listed) | set(files)):
        if path not in files:
            raise _PackageError(SubIndication.FORMAT_FAILURE, f"{path} is listed but missing")
        if path not in listed:
            raise _PackageError(SubIndication.FORMAT_FAILURE, f"{path} is not in the manifest")
        if hashlib.sha256(files[path]).hexdigest() != listed[path].get("sha256"):
            raise _PackageError(
                SubIndication.HASH_FAILURE, f"{path} does not match its SHA-256 in the manifest"
            )
    for path in _REQUIRED_FILES:
        if path not in files:
            raise _PackageError(SubIndication.FORMAT_FAILURE, f"{path} is missing")
    return files, manifest


def _request(run: _Verification) -> dict[str, Any]:
    value = run.json("request.json")
    if not isinstance(value, dict) or value.get("request_id") != run.manifest.get("request_id"):
        raise failed(SubIndication.FORMAT_FAILURE, "request.json names another request")
    return value


def _check_content(run: _Verification) -> str:
    request = _request(run)
    algorithm = str(request["digest_algorithm"])
    if "content.json" not in run.files:
        return f"content not included; the {algorithm} digest {request['digest'][:16]}… is checked"
    found = compute_digest(algorithm, run.files["content.json"])
    if found.hex() != request["digest"]:
        raise failed(SubIndication.HASH_FAILURE, f"content.json's {algorithm} digest differs")
    return f"content.json matches the request's {algorithm} digest"


def _signed_content(run: _Verification) -> SignedContent:
    request = _request(run)
    if "content.json" in run.files:
        return SignedContent(data=run.files["content.json"])
    return SignedContent(
        digest=bytes.fromhex(request["digest"]), digest_algorithm=request["digest_algorithm"]
    )


def _trust(run: _Verification) -> TrustStore:
    if run.trust_anchors:
        return TrustStore.from_certificates(run.trust_anchors, source="given")
    roots = [run.certificates("chain/")[-1]]
    tsa = run.certificates("tsa/")
    if tsa:
        roots.append(tsa[-1])
    return TrustStore.from_certificates(roots, source="package")


def _verifier(run: _Verification) -> Verifier:
    crls = []
    if "revocation/issuer.crl" in run.files:
        crls.append(asn1_crl.CertificateList.load(run.files["revocation/issuer.crl"]))
    return Verifier(_trust(run), _PackagedStatus(crls), run.clock)


def _extra_certificates(run: _Verification) -> tuple[bytes, ...]:
    return (*run.certificates("chain/"), *run.certificates("tsa/"))


def _check_cms(run: _Verification) -> str:
    report = _verifier(run).verify_cms(
        CMSSignature(run.files["signature.p7s"], _signed_content(run), _extra_certificates(run))
    )
    run.signature_report = report
    if report.indication is not Indication.PASSED:
        # The CMS report's own checks follow this one; this line states its outcome.
        raise CheckFailure(
            report.indication,
            report.sub_indication or SubIndication.FORMAT_FAILURE,
            f"the CMS signature did not pass ({report.indication.value}; see below)",
        )
    view = parse_signed_data(run.files["signature.p7s"])
    tokens = unsigned_attributes(view.signer, "signature_time_stamp_token")
    if not tokens or tokens[0].dump() != run.files["timestamp.tsr"]:
        raise failed(SubIndication.TIMESTAMP_FAILURE, "timestamp.tsr is not the CMS's timestamp")
    signer = report.signer
    leaf = parse_certificate(run.files["chain/00.der"])
    if signer is None or leaf.serial_number != int(signer.certificate_serial, 16):
        raise failed(
            SubIndication.FORMAT_FAILURE, "chain/00.der is not the CMS signer's certificate"
        )
    return f"CMS signature by {signer.subject} passed (details below)"


def _check_raw(run: _Verification) -> str:
    request = _request(run)
    scheme = SignatureScheme(str(request["signature_scheme"]))
    content = _signed_content(run)
    candidates = [content]
    if content.data is None and content.digest is not None:
        # A digest-only request: software keys sign it as the hash (SM2 as a message, since
        # SM2 hashes Z_A first); keys on a phone sign it as a message.
        candidates = [SignedContent(data=content.digest), content]
        if scheme is SignatureScheme.SM2_SM3:
            candidates = candidates[:1]
    elif content.data is not None and scheme is not SignatureScheme.SM2_SM3:
        candidates.append(
            SignedContent(
                digest=bytes.fromhex(request["digest"]), digest_algorithm=scheme.hash_name
            )
        )
    chain = run.certificates("chain/")
    last: Report | None = None
    for candidate in candidates:
        try:
            report = _verifier(run).verify_raw(
                RawSignature(
                    signature=run.files["signature.raw"],
                    scheme=scheme,
                    certificate=chain[0],
                    content=candidate,
                    intermediates=tuple(chain[1:]),
                )
            )
        except InputError:
            continue
        last = report
        check = report.check(CheckName.SIGNATURE)
        if check is not None and check.indication is Indication.PASSED:
            return f"raw {scheme} signature verifies under the signer certificate"
    if (
        content.data is None
        and scheme is SignatureScheme.SM2_SM3
        and request["content_kind"] == "json"
    ):
        raise indeterminate(
            SubIndication.SIGNED_DATA_NOT_FOUND,
            "an SM2 raw signature over a JSON record needs the record (build with --content)",
        )
    detail = last.check(CheckName.SIGNATURE) if last is not None else None
    raise failed(
        SubIndication.SIG_CRYPTO_FAILURE,
        detail.message if detail is not None else "the raw signature does not verify",
    )


def _check_anchor(run: _Verification) -> str:
    given = {parse_certificate(der).dump() for der in run.trust_anchors}
    root = run.certificates("chain/")[-1]
    if root not in given:
        raise indeterminate(
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            "the package's root certificate is not among the given trust anchors",
        )
    return "the package's root certificate is a given trust anchor"


def _check_checkpoint(run: _Verification, out: list[Checkpoint]) -> str:
    vkey = run.files["log/log.vkey"].decode("utf-8").strip()
    verifier = NoteVerifier.from_vkey(vkey)
    try:
        text, _ = open_note(run.files["log/checkpoint.txt"], [verifier])
    except (NoteSignatureError, NoteUnverifiedError) as exc:
        raise failed(
            SubIndication.SIG_CRYPTO_FAILURE,
            f"the checkpoint is not signed by the packaged log key {verifier.key}: {exc}",
        ) from exc
    checkpoint = Checkpoint.parse(text)
    if checkpoint.origin != run.manifest.get("log_origin"):
        raise failed(
            SubIndication.SIG_CRYPTO_FAILURE,
            f"the checkpoint is of log {checkpoint.origin!r},"
            f" not {run.manifest.get('log_origin')!r}",
        )
    out.append(checkpoint)
    return (
        f"checkpoint of {checkpoint.origin} at size {checkpoint.size} is signed by {verifier.key}"
    )


def _check_witnesses(run: _Verification) -> str:
    lines = run.files["log/witnesses.vkeys"].decode("utf-8").split()
    verifiers = [NoteVerifier.from_vkey(line) for line in lines]
    if not verifiers:
        return "no witnesses configured: the log's own signature only"
    note = run.files["log/checkpoint.txt"]
    names = {(v.name, v.key_id) for v in verifiers}
    present = [s for s in parse_note(note).signatures if (s.name, s.key_id) in names]
    if not present:
        raise indeterminate(SubIndication.TRY_LATER, "no witness has cosigned this checkpoint yet")
    try:
        _, verified = open_note(note, verifiers)
    except (NoteSignatureError, NoteUnverifiedError) as exc:
        raise failed(SubIndication.SIG_CRYPTO_FAILURE, f"a witness cosignature: {exc}") from exc
    return f"{len(verified)} of {len(verifiers)} witness cosignature(s) verify: " + ", ".join(
        v.name for v in verified
    )


def _check_checkpoint_timestamp(run: _Verification) -> str:
    # The token's imprint is over the note as the log signed it, before witnesses cosigned.
    log_key = NoteVerifier.from_vkey(run.files["log/log.vkey"].decode("utf-8").strip())
    note = parse_note(run.files["log/checkpoint.txt"])
    own = tuple(s for s in note.signatures if (s.name, s.key_id) == (log_key.name, log_key.key_id))
    extra = [parse_certificate(der) for der in run.certificates("tsa/")]
    stamp = verify_timestamp_token(
        run.files["log/checkpoint.tsr"], Note(note.text, own).encode(), _trust(run), extra
    )
    return f"the checkpoint note was timestamped at {stamp.time.isoformat()}"


def _check_events(run: _Verification, checkpoint: Checkpoint | None) -> str:
    if checkpoint is None:
        raise indeterminate(
            SubIndication.SIGNED_DATA_NOT_FOUND,
            "no verified checkpoint to check the events against",
        )
    trail = run.json("log/events.json")
    items = trail["events"]
    if not isinstance(items, list) or not items:
        raise failed(SubIndication.FORMAT_FAILURE, "log/events.json holds no events")
    for item in items:
        index, text = item["leaf_index"], item["record"]
        if not isinstance(index, int) or not isinstance(text, str):
            raise failed(SubIndication.FORMAT_FAILURE, "an event has no leaf index or record")
        try:
            proof = [base64.b64decode(p, validate=True) for p in item["proof"]]
        except (binascii.Error, ValueError, TypeError) as exc:
            raise failed(SubIndication.FORMAT_FAILURE, f"event {index}: malformed proof") from exc
        record = text.encode("utf-8")
        try:
            verify_inclusion(leaf_hash(record), index, checkpoint.size, proof, checkpoint.root_hash)
        except MedsignError as exc:
            raise failed(
                SubIndication.HASH_FAILURE,
                f"event at leaf {index} is not in the checkpointed log: {exc}",
            ) from exc
        run.events.append(json.loads(text))
    return f"{len(items)} event(s) are in the log under the checkpoint (size {checkpoint.size})"


def _check_trail(run: _Verification) -> str:
    if not run.events:
        raise indeterminate(SubIndication.SIGNED_DATA_NOT_FOUND, "no verified events")
    request = _request(run)
    request_id, challenge_id = request["request_id"], request["challenge_id"]
    intent = run.json("intent.json")

    def find(event_type: str, **fields: str) -> dict[str, Any]:
        for event in run.events:
            if event.get("type") == event_type and all(
                event.get(k) == v for k, v in fields.items()
            ):
                return event
        raise failed(
            SubIndication.SIGNED_DATA_NOT_FOUND,
            f"the trail lacks a {event_type} event for this request",
        )

    opened = find("request:open", request_id=request_id)
    confirmed = find("intent:confirm", challenge_id=challenge_id)
    applied = find("signature:apply", request_id=request_id, challenge_id=challenge_id)
    digests = {
        "signature_sha256": ("signature.raw", "raw signature"),
        "cms_sha256": ("signature.p7s", "CMS signature"),
        "timestamp_sha256": ("timestamp.tsr", "timestamp token"),
    }
    for key, (path, what) in digests.items():
        if applied.get(key) != hashlib.sha256(run.files[path]).hexdigest():
            raise failed(
                SubIndication.HASH_FAILURE, f"the logged signature:apply names another {what}"
            )
    if opened.get("digest") != request["digest"] or applied.get("digest") != request["digest"]:
        raise failed(SubIndication.HASH_FAILURE, "the logged digest is not the request's digest")
    if intent.get("challenge_id") != challenge_id or intent.get("method") != confirmed.get(
        "method"
    ):
        raise failed(
            SubIndication.FORMAT_FAILURE, "intent.json does not match the logged intention"
        )
    return (
        f"request:open, intent:confirm ({confirmed.get('method')}) and signature:apply are logged;"
        " signature:apply names this raw signature, CMS and timestamp"
    )


__all__ = [
    "FORMAT",
    "MEDIA_TYPE",
    "VERSION",
    "PackageCheck",
    "PackageNotReadyError",
    "PackageReport",
    "PackageSources",
    "build_package",
    "is_package",
    "verify_package",
]
