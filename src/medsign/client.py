"""A small synchronous client for hospital systems calling medsign.

It signs every request with the medsign HMAC scheme (docs/integration/authentication.md):
a canonical string of eight lines, HMAC-SHA256 or HMAC-SM3 under the application secret.
The functions that build the canonical string are the reference implementation of the scheme;
the server checks requests with the very same functions, so client and server cannot drift.

Hospitals may vendor this file: it needs only httpx, the standard library and
``medsign.crypto.mac`` (two functions over :mod:`hmac`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json as jsonlib
import secrets
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote

import httpx

from medsign.crypto.mac import MacAlgorithm, hmac_digest

__all__ = [
    "ALGORITHMS",
    "HEADER_APP",
    "HEADER_CONTENT_DIGEST",
    "HEADER_NONCE",
    "HEADER_TIMESTAMP",
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
