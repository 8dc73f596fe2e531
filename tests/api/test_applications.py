"""Applications over HTTP: the operator API, HMAC-authenticated calls through the Python
client, every refusal as problem+json, and isolation between applications."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from medsign.client import MedsignAPIError, MedsignClient, raise_for_problem, signed_headers

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


def register(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    code = fields.pop("code", "app-" + secrets.token_hex(4))
    response = client.post(
        "/admin/v1/applications",
        json={"name": "住院医生工作站", "code": code, **fields},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def app_client(client: TestClient) -> Iterator[Any]:
    opened: list[MedsignClient] = []

    def make(app_id: str, secret: str, algorithm: str = "hmac-sha256") -> MedsignClient:
        medsign = MedsignClient(
            "http://testserver",
            app_id,
            secret,
            algorithm=algorithm,  # type: ignore[arg-type]
            transport=client._transport,
        )
        opened.append(medsign)
        return medsign

    yield make
    for medsign in opened:
        medsign.close()


def raw_signed(
    client: TestClient,
    app_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    headers = signed_headers(
        algorithm="hmac-sha256",
        app_id=app_id,
        secret=secret,
        method=method,
        path=path.split("?")[0],
        query=path.split("?", 1)[1] if "?" in path else "",
        body=body,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        nonce=nonce or secrets.token_hex(16),
    )
    headers.update(extra or {})
    if body:
        headers["Content-Type"] = "application/json"
    response: httpx.Response = client.request(method, path, content=body, headers=headers)
    return response


def test_operator_lifecycle(
    client: TestClient, admin_headers: dict[str, str], app_client: Any
) -> None:
    created = register(
        client,
        admin_headers,
        code="emr-inpatient",
        signer_scope={"departments": ["心内科"]},
        rate_limit_per_minute=120,
        webhook_url="https://emr.example/hook",
    )
    app, secret = created["application"], created["secret"]
    assert app["id"].startswith("app_") and secret.startswith("mss_")
    assert app["signer_scope"] == {"departments": ["心内科"], "staff_ids": []}
    assert app["state"] == "active" and "secret" not in app

    listed = client.get("/admin/v1/applications", headers=admin_headers).json()
    assert app["id"] in [a["id"] for a in listed]
    assert "mss_" not in str(listed)
    shown = client.get("/admin/v1/applications/emr-inpatient", headers=admin_headers).json()
    assert shown["id"] == app["id"]

    patched = client.patch(
        f"/admin/v1/applications/{app['id']}",
        json={"webhook_url": None, "rate_limit_per_minute": 60},
        headers=admin_headers,
    ).json()
    assert (patched["webhook_url"], patched["rate_limit_per_minute"]) == (None, 60)
    assert patched["signer_scope"] == shown["signer_scope"]

    medsign = app_client(app["id"], secret)
    assert medsign.get("/api/v1/application")["code"] == "emr-inpatient"

    frozen = client.post(f"/admin/v1/applications/{app['id']}/freeze", headers=admin_headers)
    assert frozen.json()["state"] == "frozen"
    assert_problem(medsign.request("GET", "/api/v1/application"), 403, "application-frozen")
    again = client.post(f"/admin/v1/applications/{app['id']}/freeze", headers=admin_headers)
    assert_problem(again, 409, "invalid-state")
    client.post(f"/admin/v1/applications/{app['id']}/unfreeze", headers=admin_headers)
    assert medsign.get("/api/v1/application")["id"] == app["id"]

    rotated = client.post(
        f"/admin/v1/applications/{app['id']}/rotate-secret",
        json={"grace_hours": 1},
        headers=admin_headers,
    )
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    new_secret = rotated.json()["secret"]
    assert new_secret != secret and rotated.json()["application"]["previous_secret_expires_at"]
    assert medsign.get("/api/v1/application")["id"] == app["id"]  # old secret, in grace
    assert app_client(app["id"], new_secret).get("/api/v1/application")["id"] == app["id"]
    no_body = client.post(
        f"/admin/v1/applications/{app['id']}/rotate-secret", headers=admin_headers
    )
    assert no_body.status_code == 200

    gone = client.post(f"/admin/v1/applications/{app['id']}/deregister", headers=admin_headers)
    assert gone.json()["state"] == "deregistered"
    newest = app_client(app["id"], no_body.json()["secret"])
    assert_problem(newest.request("GET", "/api/v1/application"), 403, "application-deregistered")
    with pytest.raises(MedsignAPIError) as info:
        newest.get("/api/v1/application")
    assert (info.value.status, info.value.code) == (403, "application-deregistered")


def test_operator_api_needs_the_admin_token_and_valid_input(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    assert_problem(client.get("/admin/v1/applications"), 401, "access-denied")
    assert_problem(
        client.post("/admin/v1/applications", json={"name": "x", "code": "xx"}),
        401,
        "access-denied",
    )
    for body in (
        {"name": "x", "code": "Bad Code"},
        {"name": "x", "code": "ok-code", "webhook_url": "file:///etc/passwd"},
        {"name": "x", "code": "ok-code", "signer_scope": {"all": True, "departments": ["a"]}},
        {"name": "x", "code": "ok-code", "rate_limit_per_minute": 0},
        {"name": "x", "code": "ok-code", "secret": "mine"},
    ):
        response = client.post("/admin/v1/applications", json=body, headers=admin_headers)
        assert_problem(response, 422, "invalid-input")
    register(client, admin_headers, code="dupe-code")
    dupe = client.post(
        "/admin/v1/applications", json={"name": "x", "code": "dupe-code"}, headers=admin_headers
    )
    assert_problem(dupe, 409, "invalid-state")
    assert_problem(
        client.get("/admin/v1/applications/app_nope", headers=admin_headers), 404, "not-found"
    )


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hmac-sm3"])
def test_each_application_sees_only_itself(
    client: TestClient, admin_headers: dict[str, str], app_client: Any, algorithm: str
) -> None:
    one = register(client, admin_headers)
    two = register(client, admin_headers, signer_scope={"staff_ids": ["stf_1"]})
    first = app_client(one["application"]["id"], one["secret"], algorithm)
    second = app_client(two["application"]["id"], two["secret"], algorithm)
    me = first.get("/api/v1/application")
    assert me["id"] == one["application"]["id"] and me["algorithm"] == algorithm[5:]
    other = second.get("/api/v1/application")
    assert other["id"] == two["application"]["id"]
    assert other["signer_scope"] == {"departments": [], "staff_ids": ["stf_1"]}
    # One application's secret cannot speak for another.
    impostor = app_client(two["application"]["id"], one["secret"], algorithm)
    assert_problem(impostor.request("GET", "/api/v1/application"), 401, "auth-signature")


def test_refusals_over_http(
    client: TestClient, admin_headers: dict[str, str], app_client: Any
) -> None:
    created = register(client, admin_headers, webhook_url="http://127.0.0.1:9/h")
    app_id, secret = created["application"]["id"], created["secret"]

    missing = client.get("/api/v1/application")
    body = assert_problem(missing, 401, "auth-missing")
    assert "X-Medsign-App" in body["missing"]
    assert "MEDSIGN-HMAC-SHA256" in missing.headers["www-authenticate"]

    path = "/api/v1/application/webhook-test"
    payload = b'{"note":"replay me"}'
    nonce = secrets.token_hex(16)
    first = raw_signed(client, app_id, secret, "POST", path, payload, nonce=nonce)
    assert first.status_code == 202, first.text
    replay = raw_signed(client, app_id, secret, "POST", path, payload, nonce=nonce)
    assert_problem(replay, 401, "auth-replayed-nonce")

    stale = raw_signed(client, app_id, secret, "GET", "/api/v1/application", timestamp=1)
    assert_problem(stale, 401, "auth-stale-timestamp")
    unknown = raw_signed(client, "app_unknownunknown", secret, "GET", "/api/v1/application")
    assert_problem(unknown, 401, "auth-unknown-application")
    wrong_digest = raw_signed(
        client,
        app_id,
        secret,
        "POST",
        path,
        payload,
        extra={"X-Medsign-Content-Digest": "0" * 64},
    )
    assert_problem(wrong_digest, 401, "auth-digest-mismatch")
    query_added = raw_signed(client, app_id, secret, "GET", "/api/v1/application")
    assert query_added.status_code == 200
    tampered = client.get(
        "/api/v1/application?extra=1",
        headers={
            k: v
            for k, v in signed_headers(
                algorithm="hmac-sha256",
                app_id=app_id,
                secret=secret,
                method="GET",
                path="/api/v1/application",
                query="",
                body=b"",
                timestamp=int(time.time()),
                nonce=secrets.token_hex(16),
            ).items()
        },
    )
    assert_problem(tampered, 401, "auth-signature")

    # Auth first, then the pydantic body: a well-signed body that breaks the schema is 422.
    bad_schema = raw_signed(client, app_id, secret, "POST", path, b'{"unexpected":1}')
    assert_problem(bad_schema, 422, "invalid-input")


def test_oversized_bodies_are_refused(
    client: TestClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    created = register(client, admin_headers, webhook_url="http://127.0.0.1:9/h")
    app_id, secret = created["application"]["id"], created["secret"]
    limit = runtime.settings.app_max_body_bytes
    big = b'{"note":"' + b"x" * limit + b'"}'
    response = raw_signed(client, app_id, secret, "POST", "/api/v1/application/webhook-test", big)
    assert_problem(response, 413, "payload-too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    headers = signed_headers(
        algorithm="hmac-sha256",
        app_id=app_id,
        secret=secret,
        method="GET",
        path="/api/v1/application",
        query="",
        body=b"",
        timestamp=int(time.time()),
        nonce=secrets.token_hex(16),
    )
    streamed = client.request("GET", "/api/v1/application", content=chunks(), headers=headers)
    assert_problem(streamed, 413, "payload-too-large")


def test_rate_limit_over_http(
    client: TestClient, admin_headers: dict[str, str], app_client: Any
) -> None:
    created = register(client, admin_headers, rate_limit_per_minute=2)
    medsign = app_client(created["application"]["id"], created["secret"])
    medsign.get("/api/v1/application")
    medsign.get("/api/v1/application")
    response = medsign.request("GET", "/api/v1/application")
    assert_problem(response, 429, "rate-limited")
    assert int(response.headers["retry-after"]) >= 1
    with pytest.raises(MedsignAPIError) as info:
        raise_for_problem(medsign.request("GET", "/api/v1/application"))
    assert info.value.code == "rate-limited" and info.value.retry_after


def test_webhook_test_and_deliveries_api(
    client: TestClient, admin_headers: dict[str, str], app_client: Any
) -> None:
    polling = register(client, admin_headers)
    medsign = app_client(polling["application"]["id"], polling["secret"])
    response = medsign.request("POST", "/api/v1/application/webhook-test", json={"note": "hi"})
    assert_problem(response, 409, "invalid-state")

    created = register(client, admin_headers, webhook_url="http://127.0.0.1:9/hook")
    app_id = created["application"]["id"]
    medsign = app_client(app_id, created["secret"])
    delivery_id = medsign.post("/api/v1/application/webhook-test", json={"note": "床旁"})[
        "delivery_id"
    ]
    listed = client.get(
        f"/admin/v1/applications/{app_id}/webhook-deliveries", headers=admin_headers
    ).json()
    assert [d["id"] for d in listed] == [delivery_id]
    assert listed[0]["event_type"] == "webhook:test" and listed[0]["state"] == "pending"
    one = client.get(f"/admin/v1/webhook-deliveries/{delivery_id}", headers=admin_headers)
    assert one.json()["subject_id"] == app_id
    again = client.post(
        f"/admin/v1/webhook-deliveries/{delivery_id}/redeliver", headers=admin_headers
    )
    assert again.json()["attempts"] == 0
    assert_problem(
        client.get("/admin/v1/webhook-deliveries/whd_nope", headers=admin_headers),
        404,
        "not-found",
    )
    # Another application cannot see this delivery through any application endpoint, and
    # the operator listing of the polling application is empty.
    other = client.get(
        f"/admin/v1/applications/{polling['application']['id']}/webhook-deliveries",
        headers=admin_headers,
    ).json()
    assert other == []
