from __future__ import annotations

from fastapi.testclient import TestClient


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_key_store(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "keystore": "ok"},
    }


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "medsign"
    for path in (
        "/healthz",
        "/readyz",
        "/pki/ocsp",
        "/admin/v1/certificates",
        "/admin/v1/certificates/{serial}/revoke",
    ):
        assert path in spec["paths"], path
    assert "Problem" in spec["components"]["schemas"]
    assert "swagger" in client.get("/docs").text.lower()


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not-found"


def test_readyz_is_503_when_the_key_store_is_unreachable(runtime: object, tmp_path: object) -> None:
    import dataclasses

    from medsign.api.app import create_app
    from medsign.keys import PKCS11KeyStore

    assert dataclasses.is_dataclass(runtime)
    broken = dataclasses.replace(
        runtime,  # type: ignore[type-var]
        keystore=PKCS11KeyStore(
            runtime.database,  # type: ignore[attr-defined]
            "/nonexistent/libpkcs11.so",
            "medsign",
            "1234",
            runtime.clock,  # type: ignore[attr-defined]
        ),
    )
    with TestClient(create_app(broken, schedule=False)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not-ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["keystore"] != "ok"
    assert "1234" not in response.text
