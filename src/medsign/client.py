"""A small synchronous client for hospital systems calling medsign.

It signs every request with the medsign HMAC scheme (docs/integration/authentication.md):
a canonical string of eight lines, HMAC-SHA256 or HMAC-SM3 under the application secret.
The functions that build the canonical string are the reference implementation of the scheme;
the server checks requests with the very same functions, so client and server cannot drift.

It also checks the assertions medsign returns for QR-code logins, offline, against the
installation's root certificate (:func:`verify_login_assertion`, docs/integration/qr-login.md).

Hospitals may vendor this file: it needs only httpx, ``cryptography``, the standard library
and ``medsign.crypto.mac`` (two functions over :mod:`hmac`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json as jsonlib
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, unquote

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID

from medsign.crypto.mac import MacAlgorithm, hmac_digest

__all__ = [
    "ALGORITHMS",
    "HEADER_APP",
    "HEADER_CONTENT_DIGEST",
    "HEADER_NONCE",
    "HEADER_TIMESTAMP",
    "LOGIN_ASSERTION_POLICY",
    "LOGIN_ASSERTION_TYPE",
    "LoginAssertionError",
    "MedsignAPIError",
    "MedsignClient",
    "WebhookSignatureError",
    "authorization_header",
    "canonical_path",
    "canonical_query",
    "canonical_request",
    "content_digest",
    "raise_for_problem",
    "signed_headers",
    "verify_login_assertion",
    "verify_webhook",
]

HEADER_APP = "X-Medsign-App"
HEADER_TIMESTAMP = "X-Medsign-Timestamp"
HEADER_NONCE = "X-Medsign-Nonce"
HEADER_CONTENT_DIGEST = "X-Medsign-Content-Digest"

AlgorithmName = Literal["hmac-sha256", "hmac-sm3"]

# Authorization scheme name -> MAC (and body digest) algorithm.
ALGORITHMS: dict[str, MacAlgorithm] = {
    "MEDSIGN-HMAC-SHA256": "sha256",
    "MEDSIGN-HMAC-SM3": "sm3",
}
_SCHEME_FOR: dict[str, str] = {"hmac-sha256": "MEDSIGN-HMAC-SHA256", "hmac-sm3": "MEDSIGN-HMAC-SM3"}

# RFC 3986 unreserved characters stay as they are; everything else is %XX (upper-case hex).
_UNRESERVED = "-._~"


def canonical_path(path: str) -> str:
    """The path, percent-decoded and then re-encoded one way (``/`` kept, RFC 3986)."""
    return quote(unquote(path), safe="/" + _UNRESERVED) or "/"


def canonical_query(query: str) -> str:
    """Query pairs decoded (``+`` is a space), re-encoded, sorted, joined with ``&``."""
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted(
        (quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED)) for name, value in pairs
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def content_digest(algorithm: MacAlgorithm, body: bytes) -> str:
    """Lower-case hex SHA-256 (or SM3) of the exact body bytes; of b"" when there is none."""
    return hashlib.new(algorithm, body).hexdigest()


def canonical_request(
    *,
    scheme: str,
    method: str,
    path: str,
    query: str,
    timestamp: str,
    nonce: str,
    app_id: str,
    digest: str,
) -> bytes:
    """The bytes that are MACed: eight fields, one per line, ``\\n``-separated, no final
    newline. ``path`` and ``query`` are canonicalised here; the rest are used verbatim."""
    lines = [
        scheme,
        method.upper(),
        canonical_path(path),
        canonical_query(query),
        timestamp,
        nonce,
        app_id,
        digest,
    ]
    return "\n".join(lines).encode("utf-8")


def authorization_header(scheme: str, secret: str, canonical: bytes) -> str:
    signature = hmac_digest(ALGORITHMS[scheme], secret.encode("utf-8"), canonical)
    return f"{scheme} Signature={base64.b64encode(signature).decode('ascii')}"


def signed_headers(
    *,
    algorithm: AlgorithmName,
    app_id: str,
    secret: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    timestamp: int,
    nonce: str,
) -> dict[str, str]:
    """Every header the scheme needs, for a request described by its parts."""
    scheme = _SCHEME_FOR[algorithm]
    digest = content_digest(ALGORITHMS[scheme], body)
    canonical = canonical_request(
        scheme=scheme,
        method=method,
        path=path,
        query=query,
        timestamp=str(timestamp),
        nonce=nonce,
        app_id=app_id,
        digest=digest,
    )
    return {
        HEADER_APP: app_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_CONTENT_DIGEST: digest,
        "Authorization": authorization_header(scheme, secret, canonical),
    }


class MedsignAPIError(Exception):
    """A problem+json answer from medsign (or any non-2xx answer)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem: dict[str, Any] = dict(problem or {})
        self.retry_after = retry_after


def raise_for_problem(response: httpx.Response) -> httpx.Response:
    """Return a 2xx response unchanged; turn anything else into :class:`MedsignAPIError`."""
    if response.is_success:
        return response
    problem: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            problem = parsed
    except ValueError:
        pass
    code = str(problem.get("code") or "http-error")
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    retry_after: float | None = None
    if "retry-after" in response.headers:
        try:
            retry_after = float(response.headers["retry-after"])
        except ValueError:
            retry_after = None
    raise MedsignAPIError(
        response.status_code, code, detail, problem=problem, retry_after=retry_after
    )


class WebhookSignatureError(Exception):
    """A webhook did not carry a valid, fresh medsign signature: do not act on it."""


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_seconds: int = 300,
) -> None:
    """Check a webhook from medsign (docs/integration/webhooks.md) before trusting it.

    ``X-Medsign-Signature`` holds one ``sha256=<base64>`` per secret medsign considers valid
    (two during a rotation); one matching entry is enough. The timestamp must be fresh so a
    captured delivery cannot be replayed later; dedupe on ``X-Medsign-Delivery`` as well.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-medsign-timestamp", "")
    if not timestamp.isdigit():
        raise WebhookSignatureError("missing or malformed X-Medsign-Timestamp")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        raise WebhookSignatureError("webhook timestamp outside the accepted window")
    expected = hmac_digest(
        "sha256", secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body
    )
    for entry in lowered.get("x-medsign-signature", "").split(","):
        name, _, value = entry.strip().partition("=")
        if name != "sha256":
            continue
        try:
            tag = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(tag, expected):
            return
    raise WebhookSignatureError("no X-Medsign-Signature entry matches")


# -- QR-code login assertions -------------------------------------------------------------------

LOGIN_ASSERTION_TYPE = "medsign-login+jwt"
# The certificate policy of medsign's `login-assertion` profile (medsign.ca.profiles): it sets
# the assertion certificate apart from every other certificate the same CA issues.
LOGIN_ASSERTION_POLICY = "2.25.259986585191900661347617386822089060430.1.6"
_MAX_TOKEN_CHARS = 64 * 1024
_MAX_CHAIN = 6
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_E = TypeVar("_E", bound=x509.ExtensionType)
# Extensions whose meaning is checked below or which put no constraint on the path; any other
# extension marked critical makes the certificate unusable (RFC 5280 §4.2).
_UNDERSTOOD_EXTENSIONS = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
        ExtensionOID.OCSP_NO_CHECK,
    }
)


class LoginAssertionError(Exception):
    """A login assertion that must not be trusted; the message says which check failed."""


def _b64url_decode(part: str, what: str) -> bytes:
    # Strict: RFC 7515 base64url without padding, nothing else.
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise LoginAssertionError(f"{what} is not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # RFC 7515 §5.2: a member named twice could be read two ways by two parsers.
            raise LoginAssertionError(f"member {key!r} appears twice")
        result[key] = value
    return result


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = jsonlib.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise LoginAssertionError(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise LoginAssertionError(f"{what} is not a JSON object")
    return value


def _load_anchors(trust_anchors: Sequence[bytes]) -> list[x509.Certificate]:
    anchors: list[x509.Certificate] = []
    for blob in trust_anchors:
        try:
            if b"-----BEGIN" in blob:
                anchors.extend(x509.load_pem_x509_certificates(blob))
            else:
                anchors.append(x509.load_der_x509_certificate(blob))
        except ValueError as exc:
            raise ValueError("a trust anchor is not a DER or PEM certificate") from exc
    if not anchors:
        raise ValueError("at least one trust anchor (medsign's root certificate) is needed")
    return anchors


def _x5c(header: Mapping[str, Any]) -> list[x509.Certificate]:
    chain = header.get("x5c")
    if not isinstance(chain, list) or not 1 <= len(chain) <= _MAX_CHAIN:
        raise LoginAssertionError(f"x5c must list 1 to {_MAX_CHAIN} certificates")
    certificates = []
    for position, entry in enumerate(chain):
        try:
            # RFC 7515 §4.1.6: standard base64 (not base64url) of DER.
            der = base64.b64decode(entry, validate=True) if isinstance(entry, str) else b""
            certificates.append(x509.load_der_x509_certificate(der))
        except (binascii.Error, ValueError) as exc:
            raise LoginAssertionError(f"x5c[{position}] is not a certificate") from exc
    return certificates


def _check_certificate(cert: x509.Certificate, when: dt.datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise LoginAssertionError(f"{what} is not valid at {when.isoformat()}")
    try:
        extensions = list(cert.extensions)
    except ValueError as exc:
        raise LoginAssertionError(f"{what} has a malformed extension") from exc
    for extension in extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD_EXTENSIONS:
            raise LoginAssertionError(f"{what} has an unknown critical extension")


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _spki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm):  # e.g. an SM2 root among the anchors
        return None


def _same(cert: x509.Certificate, anchor: x509.Certificate) -> bool:
    """The anchor itself, or a re-issue of it (same name and key)."""
    if cert.public_bytes(Encoding.DER) == anchor.public_bytes(Encoding.DER):
        return True
    if cert.subject != anchor.subject:
        return False
    key = _spki(cert)
    return key is not None and key == _spki(anchor)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_issuer(cert: x509.Certificate, below: int, what: str) -> None:
    """An untrusted certificate that signs another must be a CA allowed to (RFC 5280 §6.1.4);
    ``below`` counts the CA certificates between it and the leaf."""
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise LoginAssertionError(f"{what} is not a CA certificate")
    if constraints.path_length is not None and below > constraints.path_length:
        raise LoginAssertionError(f"{what} allows a shorter path")
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise LoginAssertionError(f"{what} may not sign certificates")


def _verify_path(
    chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], when: dt.datetime
) -> None:
    """Each link signed by the next, ending in (or signed by) a trust anchor."""
    for position, cert in enumerate(chain):
        what = "the signing certificate" if position == 0 else f"x5c[{position}]"
        _check_certificate(cert, when, what)
        if any(_same(cert, anchor) for anchor in anchors):
            return  # trusted as it is; anything after it in x5c is not needed
        if position > 0:
            _check_issuer(cert, position - 1, what)
        for anchor in anchors:
            if cert.issuer == anchor.subject and _issued_by(cert, anchor):
                _check_certificate(anchor, when, "the trust anchor")
                return
        if position + 1 == len(chain):
            raise LoginAssertionError("the x5c chain does not lead to a trust anchor")
        if not _issued_by(cert, chain[position + 1]):
            raise LoginAssertionError(f"{what} is not signed by x5c[{position + 1}]")
    raise LoginAssertionError("the x5c chain does not lead to a trust anchor")


def _check_signing_certificate(leaf: x509.Certificate, policy: str | None) -> None:
    """The leaf must be a `login-assertion` certificate: a P-256 key for digitalSignature
    only, no CA, no extended key usage (TSA, OCSP), not for non-repudiation (staff)."""
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise LoginAssertionError("the signing certificate is a CA certificate")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None:
        raise LoginAssertionError("the signing certificate has no key usage")
    others = (
        usage.content_commitment,
        usage.key_encipherment,
        usage.data_encipherment,
        usage.key_agreement,
        usage.key_cert_sign,
        usage.crl_sign,
    )
    if not usage.digital_signature or any(others):
        raise LoginAssertionError("the signing certificate is not for digitalSignature only")
    if _extension(leaf, x509.ExtendedKeyUsage) is not None:
        raise LoginAssertionError("the signing certificate is for another purpose (EKU)")
    if policy is not None:
        policies = _extension(leaf, x509.CertificatePolicies)
        named = {p.policy_identifier.dotted_string for p in policies or ()}
        if policy not in named:
            raise LoginAssertionError("the signing certificate is not a login-assertion one")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise LoginAssertionError("the signing certificate's key is not P-256")


def _verify_es256(leaf: x509.Certificate, signing_input: bytes, signature: bytes) -> None:
    # RFC 7518 §3.4: r and s, 32 octets each, big-endian; verifiers take DER.
    if len(signature) != 64:
        raise LoginAssertionError("an ES256 signature is 64 octets")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise LoginAssertionError("the signature does not verify") from exc


def _numeric_date(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LoginAssertionError(f"claim {name!r} must be a whole number of seconds")
    return value


def verify_login_assertion(
    token: str,
    trust_anchors: Sequence[bytes],
    *,
    audience: str,
    now: dt.datetime | None = None,
    leeway_seconds: int = 60,
    issuer: str | None = None,
    policy: str | None = LOGIN_ASSERTION_POLICY,
) -> dict[str, Any]:
    """Check a login assertion from medsign offline and return its claims.

    ``trust_anchors`` are medsign's root certificate(s), DER or PEM (``/pki/cas`` or
    ``/pki/login-assertion.pem``, last block). ``audience`` is your application id. The
    checks: ``alg`` exactly ES256 and ``typ`` ``medsign-login+jwt``; the ``x5c`` chain, link by
    link, to an anchor, every certificate valid at ``now``; the signing certificate is a
    ``login-assertion`` one (key usage digitalSignature only, its certificate policy; pass
    ``policy=None`` if your installation changed the policy arc); the ES256 signature;
    ``aud``; ``exp`` and ``iat`` within ``leeway_seconds``; ``iss`` when ``issuer`` is given.
    Raises :class:`LoginAssertionError` otherwise. Revocation is not checked (offline).
    """
    when = dt.datetime.now(dt.UTC) if now is None else now
    if when.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    when = when.astimezone(dt.UTC)
    anchors = _load_anchors(trust_anchors)
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise LoginAssertionError("not a login assertion")
    parts = token.split(".")
    if len(parts) != 3:
        raise LoginAssertionError("not a compact JWS (three parts separated by dots)")
    header = _json_object(_b64url_decode(parts[0], "header"), "header")
    if header.get("alg") != "ES256":
        raise LoginAssertionError("alg must be ES256")
    if header.get("typ") != LOGIN_ASSERTION_TYPE:
        raise LoginAssertionError(f"typ must be {LOGIN_ASSERTION_TYPE}")
    if "crit" in header:
        raise LoginAssertionError("unsupported critical header parameters")
    chain = _x5c(header)
    _verify_path(chain, anchors, when)
    _check_signing_certificate(chain[0], policy)
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    _verify_es256(chain[0], signing_input, _b64url_decode(parts[2], "signature"))
    claims = _json_object(_b64url_decode(parts[1], "payload"), "payload")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise LoginAssertionError("the assertion is meant for another audience")
    if issuer is not None and claims.get("iss") != issuer:
        raise LoginAssertionError("the assertion comes from another issuer")
    moment = int(when.timestamp())
    if moment > _numeric_date(claims, "exp") + leeway_seconds:
        raise LoginAssertionError("the assertion has expired")
    if _numeric_date(claims, "iat") > moment + leeway_seconds:
        raise LoginAssertionError("the assertion was issued in the future")
    for name in ("sub", "login_id", "jti"):
        if not isinstance(claims.get(name), str):
            raise LoginAssertionError(f"claim {name!r} is missing")
    return claims


class MedsignClient:
    """Signs and sends requests as one registered application.

    Each request gets a fresh 128-bit nonce and the current time, so a request can be sent
    once: retrying means calling :meth:`request` again (use idempotency keys where the
    endpoint offers them).
    """

    def __init__(
        self,
        base_url: str,
        app_id: str,
        secret: str,
        *,
        algorithm: AlgorithmName = "hmac-sha256",
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm not in _SCHEME_FOR:
            raise ValueError(f"algorithm must be one of {sorted(_SCHEME_FOR)}")
        self.app_id = app_id
        self.algorithm: AlgorithmName = algorithm
        self._secret = secret
        self._clock = clock
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<MedsignClient app={self.app_id} {self.algorithm}>"

    def __enter__(self) -> MedsignClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one signed request; the response is returned whatever its status."""
        body = b""
        extra = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            extra.setdefault("Content-Type", "application/json")
        request = self._http.build_request(
            method.upper(), path, params=dict(params) if params else None, content=body
        )
        request.headers.update(extra)
        request.headers.update(
            signed_headers(
                algorithm=self.algorithm,
                app_id=self.app_id,
                secret=self._secret,
                method=request.method,
                path=request.url.path,
                query=request.url.query.decode("ascii"),
                body=body,
                timestamp=int(self._clock()),
                nonce=secrets.token_urlsafe(16),
            )
        )
        return self._http.send(request)

    def get(self, path: str, *, params: Mapping[str, str | int] | None = None) -> Any:
        """GET and return the JSON body; problems raise :class:`MedsignAPIError`."""
        return raise_for_problem(self.request("GET", path, params=params)).json()

    def post(self, path: str, *, json: Any = None) -> Any:
        """POST and return the JSON body; problems raise :class:`MedsignAPIError`."""
        return raise_for_problem(self.request("POST", path, json=json)).json()

    def start_login(
        self,
        workstation: str,
        *,
        employee_no: str | None = None,
        expires_in_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Start a QR-code login; show ``url`` (or the image at ``qr_svg_url``) to the user."""
        body: dict[str, Any] = {"workstation": workstation}
        if employee_no is not None:
            body["employee_no"] = employee_no
        if expires_in_seconds is not None:
            body["expires_in_seconds"] = expires_in_seconds
        result: dict[str, Any] = self.post("/api/v1/logins", json=body)
        return result

    def wait_for_login(
        self,
        login_id: str,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll a login until it is approved, declined or expired, and return it.

        medsign reports ``expired`` once the login's deadline passes, so this ends on its own;
        ``timeout`` (seconds) raises :class:`TimeoutError` earlier. Verify ``assertion`` with
        :func:`verify_login_assertion` before trusting an approval.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            login: dict[str, Any] = self.get(f"/api/v1/logins/{quote(login_id, safe='')}")
            if login.get("state") != "pending":
                return login
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"login {login_id} still pending")
            sleep(interval)
