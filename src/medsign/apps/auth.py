"""Authentication of requests from registered applications (the medsign HMAC scheme).

Every call carries five headers (``X-Medsign-App``, ``X-Medsign-Timestamp``,
``X-Medsign-Nonce``, ``X-Medsign-Content-Digest``, ``Authorization: MEDSIGN-HMAC-SHA256
Signature=...`` or ``MEDSIGN-HMAC-SM3``). The canonical string is built by
:func:`medsign.client.canonical_request`, the one definition client and server share; the
byte-by-byte description is docs/integration/authentication.md.

Checks run in a fixed order so each refusal has one stable code: size, presence, syntax,
timestamp window, body digest, application, signature, application state, rate limit, nonce.
The nonce is recorded only after the signature verified, so unauthenticated traffic cannot
fill the nonce table or burn another application's nonces and rate budget.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from medsign.apps.registry import ApplicationRegistry, SignerScope, ensure_usable
from medsign.client import (
    ALGORITHMS,
    HEADER_APP,
    HEADER_CONTENT_DIGEST,
    HEADER_NONCE,
    HEADER_TIMESTAMP,
    canonical_request,
    content_digest,
)
from medsign.clock import Clock
from medsign.crypto.mac import MacAlgorithm, verify_hmac
from medsign.db import rowcount
from medsign.db.session import Database
from medsign.db.tables import ApplicationNonceRow, ApplicationRow
from medsign.errors import (
    AuthDigestMismatchError,
    AuthMalformedError,
    AuthMissingError,
    AuthReplayedNonceError,
    AuthSignatureError,
    AuthStaleTimestampError,
    AuthUnknownApplicationError,
    MedsignError,
    PayloadTooLargeError,
    TooManyRequestsError,
    VerificationError,
)

log = logging.getLogger(__name__)

NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
TIMESTAMP_PATTERN = re.compile(r"^[0-9]{1,12}$")
DIGEST_PATTERN = re.compile(r"^[0-9a-f]{64}$")
APP_ID_PATTERN = re.compile(r"^app_[a-z0-9]{1,60}$")
AUTHORIZATION_PATTERN = re.compile(r"^(MEDSIGN-HMAC-[A-Z0-9]+) Signature=([A-Za-z0-9+/=]+)$")
DEFAULT_MAX_SKEW = dt.timedelta(minutes=5)
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
PURGE_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class SignedRequest:
    """What the scheme looks at, independent of the web framework."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class AuthenticatedApplication:
    """The application a request verifiably came from. Every query a handler makes on its
    behalf filters by ``id``, so one application never sees another's data."""

    id: str
    organization_id: str
    code: str
    name: str
    signer_scope: SignerScope
    rate_limit_per_minute: int
    webhook_url: str | None
    algorithm: MacAlgorithm
    nonce: str


@dataclass
class _Bucket:
    tokens: float
    updated: dt.datetime


@dataclass
class RateLimiter:
    """Token bucket per application, per process: a node allows up to the limit per minute
    with bursts of one minute's worth. With N nodes an application may get N times that."""

    clock: Clock
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, app_id: str, per_minute: int) -> None:
        """Spend one token or raise ``TooManyRequestsError`` with ``retry_after`` seconds."""
        now = self.clock.now()
        rate = per_minute / 60.0
        with self._lock:
            bucket = self._buckets.get(app_id)
            if bucket is None:
                bucket = self._buckets[app_id] = _Bucket(float(per_minute), now)
            elapsed = max(0.0, (now - bucket.updated).total_seconds())
            bucket.tokens = min(float(per_minute), bucket.tokens + elapsed * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / rate
        retry_after = max(1, int(wait + 0.999))
        raise TooManyRequestsError(
            f"application {app_id} exceeded {per_minute} requests per minute",
            public=f"rate limit of {per_minute} requests per minute exceeded",
            retry_after=retry_after,
        )


class RequestAuthenticator:
    def __init__(
        self,
        database: Database,
        registry: ApplicationRegistry,
        clock: Clock,
        *,
        max_skew: dt.timedelta = DEFAULT_MAX_SKEW,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._database = database
        self._registry = registry
        self._clock = clock
        self.max_skew = max_skew
        self.max_body_bytes = max_body_bytes
        self.rate_limiter = RateLimiter(clock)
        self._last_purge: dt.datetime | None = None
        self._purge_lock = threading.Lock()

    def __repr__(self) -> str:
        return "<RequestAuthenticator>"

    @property
    def nonce_retention(self) -> dt.timedelta:
        # A timestamp accepted at t stays acceptable until t + skew, and t itself may have
        # been up to skew in the future: 2 x skew covers every replay that could still pass.
        return 2 * self.max_skew

    def check_size(self, size: int, limit: int | None = None) -> None:
        """``limit``: a route's own bound (PDF uploads), else the configured one."""
        limit = limit or self.max_body_bytes
        if size > limit:
            raise PayloadTooLargeError(
                f"request body of {size} bytes exceeds {limit}",
                public=f"request body exceeds {limit} bytes",
                max_bytes=limit,
            )

    def authenticate(
        self, request: SignedRequest, *, max_body_bytes: int | None = None
    ) -> AuthenticatedApplication:
        """Return the application a request came from, or raise the refusal."""
        try:
            return self._authenticate(request, max_body_bytes)
        except MedsignError as exc:
            # The claimed app id is logged to spot a misconfigured system; never the headers.
            claimed = request.headers.get(HEADER_APP.lower(), "")[:64]
            log.info("application request refused", extra={"code": exc.code, "app": claimed})
            raise

    def _authenticate(
        self, request: SignedRequest, max_body_bytes: int | None
    ) -> AuthenticatedApplication:
        self.check_size(len(request.body), max_body_bytes)
        headers = request.headers
        names = (HEADER_APP, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_CONTENT_DIGEST)
        values = {name: headers.get(name.lower()) for name in (*names, "Authorization")}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise AuthMissingError(
                f"missing request authentication headers: {', '.join(missing)}",
                missing=missing,
            )
        app_id = values[HEADER_APP] or ""
        timestamp = values[HEADER_TIMESTAMP] or ""
        nonce = values[HEADER_NONCE] or ""
        digest = values[HEADER_CONTENT_DIGEST] or ""
        scheme, tag = _parse_authorization(values["Authorization"] or "")
        algorithm = ALGORITHMS[scheme]
        if not APP_ID_PATTERN.match(app_id):
            raise AuthMalformedError(f"{HEADER_APP} is not an application id")
        if not TIMESTAMP_PATTERN.match(timestamp):
            raise AuthMalformedError(f"{HEADER_TIMESTAMP} must be unix seconds (digits only)")
        if not NONCE_PATTERN.match(nonce):
            raise AuthMalformedError(f"{HEADER_NONCE} must be 16-128 characters of A-Z a-z 0-9 - _")
        if not DIGEST_PATTERN.match(digest):
            raise AuthMalformedError(f"{HEADER_CONTENT_DIGEST} must be 64 lower-case hex digits")

        now = self._clock.now()
        skew = abs(now.timestamp() - int(timestamp))
        if skew > self.max_skew.total_seconds():
            raise AuthStaleTimestampError(
                f"request timestamp is {int(skew)} s away from server time",
                server_time=int(now.timestamp()),
                max_skew_seconds=int(self.max_skew.total_seconds()),
            )
        if not hmac.compare_digest(content_digest(algorithm, request.body), digest):
            raise AuthDigestMismatchError(
                f"{HEADER_CONTENT_DIGEST} is not the {algorithm} digest of the body"
            )

        canonical = canonical_request(
            scheme=scheme,
            method=request.method,
            path=request.path,
            query=request.query,
            timestamp=timestamp,
            nonce=nonce,
            app_id=app_id,
            digest=digest,
        )
        with self._database.session() as session:
            row = session.get(ApplicationRow, app_id)
            if row is None:
                raise AuthUnknownApplicationError(f"no application {app_id}")
            keys = self._registry.valid_secrets(row, now)
            if not _matches_any(algorithm, keys, canonical, tag):
                raise AuthSignatureError("request signature does not verify")
            ensure_usable(row)
            authenticated = AuthenticatedApplication(
                id=row.id,
                organization_id=row.organization_id,
                code=row.code,
                name=row.name,
                signer_scope=SignerScope.from_json(row.signer_scope),
                rate_limit_per_minute=row.rate_limit_per_minute,
                webhook_url=row.webhook_url,
                algorithm=algorithm,
                nonce=nonce,
            )
        self.rate_limiter.take(authenticated.id, authenticated.rate_limit_per_minute)
        self._remember_nonce(app_id, nonce, now)
        return authenticated

    def _remember_nonce(self, app_id: str, nonce: str, now: dt.datetime) -> None:
        # Committed on its own, before the handler runs: the primary key makes a second use
        # fail in any process sharing the database, whatever the handler does afterwards.
        try:
            with self._database.session() as session:
                session.add(ApplicationNonceRow(application_id=app_id, nonce=nonce, seen_at=now))
        except IntegrityError as exc:
            raise AuthReplayedNonceError(f"nonce reused by {app_id}") from exc
        self._purge_if_due(now)

    def _purge_if_due(self, now: dt.datetime) -> None:
        with self._purge_lock:
            if self._last_purge is not None and now - self._last_purge < PURGE_EVERY:
                return
            self._last_purge = now
        self.purge_nonces()

    def purge_nonces(self) -> int:
        """Forget nonces too old to be replayed (their timestamps are refused anyway)."""
        cutoff = self._clock.now() - self.nonce_retention
        with self._database.session() as session:
            result = session.execute(
                delete(ApplicationNonceRow).where(ApplicationNonceRow.seen_at < cutoff)
            )
            return rowcount(result)


def _parse_authorization(value: str) -> tuple[str, bytes]:
    match = AUTHORIZATION_PATTERN.match(value.strip())
    if match is None or match.group(1) not in ALGORITHMS:
        raise AuthMalformedError(
            "Authorization must be `MEDSIGN-HMAC-SHA256 Signature=<base64>`"
            " or `MEDSIGN-HMAC-SM3 Signature=<base64>`"
        )
    try:
        tag = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthMalformedError("Authorization signature is not base64") from exc
    if len(tag) != 32:
        raise AuthMalformedError("Authorization signature must be 32 bytes")
    return match.group(1), tag


def _matches_any(algorithm: MacAlgorithm, keys: list[bytes], message: bytes, tag: bytes) -> bool:
    matched = False
    # Every key is tried, so timing does not tell whether the current or previous one matched.
    for key in keys:
        try:
            verify_hmac(algorithm, key, message, tag, min_tag_length=32)
            matched = True
        except VerificationError:
            pass
    return matched
