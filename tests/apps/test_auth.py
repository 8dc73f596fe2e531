"""Request authentication: every refusal with its exact code, replay across processes, rate
limits, rotation and nonce purging, at the level of the authenticator (no HTTP)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from medsign.apps.auth import RateLimiter, RequestAuthenticator, SignedRequest
from medsign.apps.registry import ApplicationRegistry
from medsign.client import signed_headers
from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.db.tables import ApplicationNonceRow
from medsign.errors import MedsignError, TooManyRequestsError
from tests.apps.conftest import Apps

PATH = "/api/v1/things"


def sign(
    app_id: str,
    secret: str,
    clock: FixedClock,
    *,
    method: str = "POST",
    path: str = PATH,
    query: str = "",
    body: bytes = b'{"a":1}',
    nonce: str = "nonce-0000000000001",
    algorithm: str = "hmac-sha256",
    timestamp: int | None = None,
) -> SignedRequest:
    headers = signed_headers(
        algorithm=algorithm,  # type: ignore[arg-type]
        app_id=app_id,
        secret=secret,
        method=method,
        path=path,
        query=query,
        body=body,
        timestamp=int(clock.now().timestamp()) if timestamp is None else timestamp,
        nonce=nonce,
    )
    return SignedRequest(method, path, query, {k.lower(): v for k, v in headers.items()}, body)


def refused(auth: RequestAuthenticator, request: SignedRequest) -> MedsignError:
    with pytest.raises(MedsignError) as info:
        auth.authenticate(request)
    return info.value


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    headers = dict(request.headers)
    for name, value in changes.items():
        key = name.replace("_", "-").lower()
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    return SignedRequest(request.method, request.path, request.query, headers, request.body)


@pytest.fixture
def registered(apps: Apps) -> tuple[str, str]:
    app, secret = apps.registry.register(name="EMR", code="emr")
    return app.id, secret


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hmac-sm3"])
def test_a_signed_request_authenticates(
    apps: Apps, registered: tuple[str, str], algorithm: str
) -> None:
    app_id, secret = registered
    request = sign(app_id, secret, apps.clock, query="b=2&a=x%20y", algorithm=algorithm)
    app = apps.auth.authenticate(request)
    assert (app.id, app.code, app.organization_id) == (app_id, "emr", apps.organization_id)
    assert app.algorithm == algorithm.removeprefix("hmac-")


def test_refusals_have_stable_codes(apps: Apps, registered: tuple[str, str]) -> None:
    app_id, secret = registered
    good = sign(app_id, secret, apps.clock)
    auth = apps.auth

    err = refused(auth, with_headers(good, x_medsign_nonce=None, authorization=None))
    assert err.code == "auth-missing" and err.status == 401
    assert err.extra["missing"] == ["X-Medsign-Nonce", "Authorization"]

    sig = good.headers["authorization"].split("=", 1)[1]
    for bad in (
        {"authorization": f"Bearer {sig}"},
        {"authorization": f"MEDSIGN-HMAC-MD5 Signature={sig}"},
        {"authorization": "MEDSIGN-HMAC-SHA256 Signature=!!!"},
        {"authorization": "MEDSIGN-HMAC-SHA256 Signature=" + base64.b64encode(b"x" * 16).decode()},
        {"x_medsign_timestamp": "-5"},
        {"x_medsign_timestamp": "1.5e9"},
        {"x_medsign_nonce": "short"},
        {"x_medsign_nonce": "has space in it 123456"},
        {"x_medsign_content_digest": "ABC"},
        {"x_medsign_app": "emr"},
    ):
        assert refused(auth, with_headers(good, **bad)).code == "auth-malformed", bad

    for delta in (dt.timedelta(seconds=301), dt.timedelta(seconds=-301)):
        stale = sign(
            app_id, secret, apps.clock, timestamp=int((apps.clock.now() + delta).timestamp())
        )
        err = refused(auth, stale)
        assert err.code == "auth-stale-timestamp"
        assert err.extra["server_time"] == int(apps.clock.now().timestamp())
    edge = sign(
        app_id,
        secret,
        apps.clock,
        timestamp=int(apps.clock.now().timestamp()) - 300,
        nonce="nonce-edge-00000001",
    )
    auth.authenticate(edge)

    tampered_body = SignedRequest(good.method, good.path, good.query, good.headers, b'{"a":2}')
    assert refused(auth, tampered_body).code == "auth-digest-mismatch"

    unknown = sign("app_unknown0000000", secret, apps.clock)
    assert refused(auth, unknown).code == "auth-unknown-application"

    wrong_secret = sign(app_id, "mss_" + "A" * 43, apps.clock, nonce="nonce-wrong-secret-1")
    assert refused(auth, wrong_secret).code == "auth-signature"
    other_path = SignedRequest("POST", "/api/v1/other", "", good.headers, good.body)
    assert refused(auth, other_path).code == "auth-signature"
    other_method = SignedRequest("PUT", PATH, "", good.headers, good.body)
    assert refused(auth, other_method).code == "auth-signature"
    other_query = SignedRequest("POST", PATH, "admin=1", good.headers, good.body)
    assert refused(auth, other_query).code == "auth-signature"

    # None of those used up the nonce: the genuine request still goes through, once.
    auth.authenticate(good)
    assert refused(auth, good).code == "auth-replayed-nonce"

    big = sign(app_id, secret, apps.clock, body=b"x" * (auth.max_body_bytes + 1))
    err = refused(auth, big)
    assert (err.code, err.status) == ("payload-too-large", 413)


def test_a_sm3_signature_does_not_pass_as_sha256(apps: Apps, registered: tuple[str, str]) -> None:
    app_id, secret = registered
    sm3 = sign(app_id, secret, apps.clock, algorithm="hmac-sm3")
    sig = sm3.headers["authorization"].split(" ", 1)[1]
    swapped = with_headers(sm3, authorization=f"MEDSIGN-HMAC-SHA256 {sig}")
    assert refused(apps.auth, swapped).code in ("auth-digest-mismatch", "auth-signature")


def test_frozen_and_deregistered_applications_are_refused(
    apps: Apps, registered: tuple[str, str]
) -> None:
    app_id, secret = registered
    apps.registry.freeze(app_id)
    err = refused(apps.auth, sign(app_id, secret, apps.clock, nonce="nonce-frozen-000001"))
    assert (err.code, err.status) == ("application-frozen", 403)
    apps.registry.unfreeze(app_id)
    apps.auth.authenticate(sign(app_id, secret, apps.clock, nonce="nonce-frozen-000001"))
    apps.registry.deregister(app_id)
    err = refused(apps.auth, sign(app_id, secret, apps.clock, nonce="nonce-gone-00000001"))
    assert (err.code, err.status) == ("application-deregistered", 403)
    # Without the right secret the state is not revealed.
    wrong = sign(app_id, "mss_" + "B" * 43, apps.clock, nonce="nonce-gone-00000002")
    assert refused(apps.auth, wrong).code == "auth-signature"


def test_previous_secret_works_during_the_grace_period_only(
    apps: Apps, registered: tuple[str, str]
) -> None:
    app_id, old = registered
    _, new = apps.registry.rotate_secret(app_id, grace=dt.timedelta(hours=2))
    apps.auth.authenticate(sign(app_id, old, apps.clock, nonce="nonce-old-000000001"))
    apps.auth.authenticate(sign(app_id, new, apps.clock, nonce="nonce-new-000000001"))
    apps.clock.advance(dt.timedelta(hours=2))
    err = refused(apps.auth, sign(app_id, old, apps.clock, nonce="nonce-old-000000002"))
    assert err.code == "auth-signature"
    apps.auth.authenticate(sign(app_id, new, apps.clock, nonce="nonce-new-000000002"))


def test_replay_is_refused_across_processes(
    apps: Apps, registered: tuple[str, str], database_url: str, clock: FixedClock
) -> None:
    """Two nodes: separate engines, registries and authenticators on one database."""
    app_id, secret = registered
    other_db = Database(database_url)
    try:
        other_registry = ApplicationRegistry(other_db, apps.sealer, clock)
        other_node = RequestAuthenticator(other_db, other_registry, clock)
        request = sign(app_id, secret, clock, nonce="nonce-shared-0000001")
        apps.auth.authenticate(request)
        assert refused(other_node, request).code == "auth-replayed-nonce"
        second = sign(app_id, secret, clock, nonce="nonce-shared-0000002")
        other_node.authenticate(second)
        assert refused(apps.auth, second).code == "auth-replayed-nonce"
    finally:
        other_db.dispose()


def test_nonces_are_per_application(apps: Apps, registered: tuple[str, str]) -> None:
    app_id, secret = registered
    other, other_secret = apps.registry.register(name="LIS", code="lis")
    apps.auth.authenticate(sign(app_id, secret, apps.clock, nonce="nonce-same-00000001"))
    apps.auth.authenticate(sign(other.id, other_secret, apps.clock, nonce="nonce-same-00000001"))


def nonce_count(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(ApplicationNonceRow)) or 0)


def test_old_nonces_are_purged_but_replays_stay_refused(
    apps: Apps, registered: tuple[str, str]
) -> None:
    app_id, secret = registered
    first = sign(app_id, secret, apps.clock, nonce="nonce-purge-0000001")
    apps.auth.authenticate(first)
    assert nonce_count(apps.database) == 1
    # Just inside the window the nonce is still remembered.
    apps.clock.advance(dt.timedelta(minutes=4, seconds=59))
    assert refused(apps.auth, first).code == "auth-replayed-nonce"
    # Past 2 x skew it is forgotten, and the old request is stale anyway.
    apps.clock.advance(dt.timedelta(minutes=6))
    apps.auth.authenticate(sign(app_id, secret, apps.clock, nonce="nonce-purge-0000002"))
    assert nonce_count(apps.database) == 1
    assert refused(apps.auth, first).code == "auth-stale-timestamp"
    assert apps.auth.purge_nonces() == 0


def test_rate_limit_per_application(apps: Apps) -> None:
    limited, secret = apps.registry.register(name="EMR", code="emr", rate_limit_per_minute=3)
    other, other_secret = apps.registry.register(name="LIS", code="lis")
    for i in range(3):
        apps.auth.authenticate(sign(limited.id, secret, apps.clock, nonce=f"nonce-rate-{i:08d}"))
    err = refused(apps.auth, sign(limited.id, secret, apps.clock, nonce="nonce-rate-99999999"))
    assert isinstance(err, TooManyRequestsError)
    assert (err.code, err.status, err.extra["retry_after"]) == ("rate-limited", 429, 20)
    # Another application is not affected.
    apps.auth.authenticate(sign(other.id, other_secret, apps.clock, nonce="nonce-rate-other001"))
    # A refused request did not use its nonce; after 20 s one token is back.
    apps.clock.advance(dt.timedelta(seconds=20))
    apps.auth.authenticate(sign(limited.id, secret, apps.clock, nonce="nonce-rate-99999999"))
    # A raised limit refills at the new rate from the next call on.
    apps.registry.edit(limited.id, rate_limit_per_minute=600)
    apps.clock.advance(dt.timedelta(seconds=1))
    apps.auth.authenticate(sign(limited.id, secret, apps.clock, nonce="nonce-rate-raised01"))


def test_token_bucket_refills_and_caps(clock: FixedClock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(60):
        limiter.take("app_a", 60)
    with pytest.raises(TooManyRequestsError) as info:
        limiter.take("app_a", 60)
    assert info.value.extra["retry_after"] == 1
    clock.advance(dt.timedelta(hours=1))
    for _ in range(60):  # refilled to the cap (one minute's worth), not beyond
        limiter.take("app_a", 60)
    with pytest.raises(TooManyRequestsError):
        limiter.take("app_a", 60)


def test_secrets_never_appear_in_errors_or_logs(
    apps: Apps, registered: tuple[str, str], caplog: Any
) -> None:
    app_id, secret = registered
    caplog.set_level("DEBUG")
    wrong = sign(app_id, secret, apps.clock, body=b"{}")
    tampered = SignedRequest(wrong.method, wrong.path, wrong.query, wrong.headers, b"[]")
    err = refused(apps.auth, tampered)
    for text in (str(err), err.public_message(), caplog.text, repr(apps.auth), repr(apps.registry)):
        assert secret not in text and secret[4:20] not in text
    logged = [vars(r) for r in caplog.records if r.name == "medsign.apps.auth"]
    assert [(r["code"], r["app"]) for r in logged] == [("auth-digest-mismatch", app_id)]
    assert secret not in repr(logged)


header_text = st.text(
    alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.fixed_dictionaries(
        {},
        optional={
            "x-medsign-app": st.one_of(header_text, st.just("app_abcdefgh")),
            "x-medsign-timestamp": st.one_of(header_text, st.integers(0, 10**13).map(str)),
            "x-medsign-nonce": header_text,
            "x-medsign-content-digest": st.one_of(header_text, st.just("0" * 64)),
            "authorization": st.one_of(
                header_text,
                header_text.map(lambda s: "MEDSIGN-HMAC-SHA256 Signature=" + s),
                st.binary(min_size=30, max_size=34).map(
                    lambda b: "MEDSIGN-HMAC-SM3 Signature=" + base64.b64encode(b).decode()
                ),
            ),
        },
    ),
    body=st.binary(max_size=64),
)
def test_arbitrary_headers_are_refused_cleanly(
    apps: Apps, values: dict[str, str], body: bytes
) -> None:
    request = SignedRequest("POST", PATH, "", values, body)
    with pytest.raises(MedsignError) as info:
        apps.auth.authenticate(request)
    assert info.value.status in (401, 403) and info.value.code.startswith("auth-")
