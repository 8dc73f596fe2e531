"""The admin CA API: issuance and status changes, and bad input that changes nothing."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"


def make_csr(tmp_path: Path, family: str, subject: str = "/CN=Li Lei/serialNumber=E1001") -> str:
    key = tmp_path / f"{family}.key"
    if family == "sm2":
        subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(key)], check=True)
        extra = ["-sm3"]
    elif family == "p256":
        subprocess.run(
            [
                "openssl",
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                str(key),
            ],
            check=True,
        )
        extra = ["-sha256"]
    else:
        subprocess.run(
            [
                "openssl",
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                str(key),
            ],
            check=True,
        )
        extra = ["-sha256"]
    out = subprocess.run(
        ["openssl", "req", "-new", "-key", str(key), *extra, "-subj", subject, "-utf8"],
        check=True,
        capture_output=True,
    )
    return out.stdout.decode()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    return body


def count(client: TestClient, headers: dict[str, str]) -> int:
    response = client.get("/admin/v1/certificates?limit=500", headers=headers)
    assert response.status_code == 200
    return len(response.json())


@pytest.mark.parametrize("family", ["rsa", "p256", "sm2"])
def test_issue_and_lifecycle(
    client: TestClient, admin_headers: dict[str, str], tmp_path: Path, family: str
) -> None:
    csr = make_csr(tmp_path, family)
    response = client.post(
        "/admin/v1/certificates",
        headers=admin_headers,
        json={"csr": csr, "profile": "staff-signing"},
    )
    assert response.status_code == 201, response.text
    cert = response.json()
    serial = cert["serial"]
    assert cert["status"] == "good"
    assert cert["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    printed = (
        subprocess.run(
            ["openssl", "x509", "-noout", "-serial"],
            input=cert["certificate_pem"].encode(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    assert printed == f"serial={serial}"

    base = f"/admin/v1/certificates/{serial}"
    assert client.post(f"{base}/hold", headers=admin_headers).json()["status"] == "hold"
    assert client.post(f"{base}/release", headers=admin_headers).json()["status"] == "good"
    revoked = client.post(
        f"{base}/revoke", headers=admin_headers, json={"reason": "keyCompromise"}
    ).json()
    assert revoked["status"] == "revoked"
    assert revoked["revocation_reason"] == "keyCompromise"
    history = [e["action"] for e in client.get(f"{base}/history", headers=admin_headers).json()]
    assert history == ["issue", "hold", "release", "revoke"]

    # Revoking twice and releasing a revoked certificate are state errors that change nothing.
    assert_problem(
        client.post(f"{base}/revoke", headers=admin_headers, json={"reason": "superseded"}),
        409,
        "invalid-state",
    )
    assert_problem(client.post(f"{base}/release", headers=admin_headers), 409, "invalid-state")
    after = client.get(base, headers=admin_headers).json()
    assert after["revocation_reason"] == "keyCompromise"
    assert len(client.get(f"{base}/history", headers=admin_headers).json()) == 4


def test_release_of_a_certificate_not_on_hold(
    client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    csr = make_csr(tmp_path, "p256")
    serial = client.post(
        "/admin/v1/certificates",
        headers=admin_headers,
        json={"csr": csr, "profile": "staff-signing"},
    ).json()["serial"]
    assert_problem(
        client.post(f"/admin/v1/certificates/{serial}/release", headers=admin_headers),
        409,
        "invalid-state",
    )


def test_bad_input_is_refused_and_changes_nothing(
    client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    before = count(client, admin_headers)
    good_csr = make_csr(tmp_path, "p256")
    der = base64.b64decode("".join(good_csr.strip().splitlines()[1:-1]))
    tampered = bytearray(der)
    tampered[-5] ^= 0x01  # inside the signature: the self-signature no longer verifies
    tampered_pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(tampered)).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    cases = [
        ({"csr": "not a csr", "profile": "staff-signing"}, 422, "invalid-input"),
        ({"csr": tampered_pem, "profile": "staff-signing"}, 422, "invalid-input"),
        ({"csr": good_csr, "profile": "no-such-profile"}, 422, "invalid-input"),
        (
            {
                "csr": make_csr(tmp_path, "p256", "/CN=x/emailAddress=a@b.c/serialNumber=E1"),
                "profile": "staff-signing",
            },
            422,
            "invalid-input",
        ),
        ({"csr": good_csr}, 422, "invalid-input"),
        ({"csr": good_csr, "profile": "staff-signing", "extra": 1}, 422, "invalid-input"),
    ]
    for body, status, code in cases:
        assert_problem(
            client.post("/admin/v1/certificates", headers=admin_headers, json=body), status, code
        )
    response = client.post(
        "/admin/v1/certificates",
        headers={**admin_headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert_problem(response, 422, "invalid-input")
    assert count(client, admin_headers) == before


def test_unknown_serial(client: TestClient, admin_headers: dict[str, str]) -> None:
    assert_problem(
        client.post(
            "/admin/v1/certificates/0BADC0DE/revoke",
            headers=admin_headers,
            json={"reason": "keyCompromise"},
        ),
        404,
        "not-found",
    )
    assert_problem(
        client.get("/admin/v1/certificates/ZZZ", headers=admin_headers), 422, "invalid-input"
    )


def test_unknown_reason(client: TestClient, admin_headers: dict[str, str]) -> None:
    assert_problem(
        client.post(
            "/admin/v1/certificates/01/revoke",
            headers=admin_headers,
            json={"reason": "certificateHold"},
        ),
        422,
        "invalid-input",
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer msadm_wrong"},
        {"Authorization": "Bearer something-else"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
    ],
)
def test_wrong_admin_token(client: TestClient, headers: dict[str, str], tmp_path: Path) -> None:
    response = client.post(
        "/admin/v1/certificates", headers=headers, json={"csr": "x", "profile": "staff-signing"}
    )
    assert_problem(response, 401, "access-denied")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_demo_hospital_has_its_seal_certificate(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    seals = client.get(
        "/admin/v1/certificates?profile=organization-seal", headers=admin_headers
    ).json()
    assert len(seals) == 1
    assert "示例人民医院" in seals[0]["subject"]
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text"],
        input=seals[0]["certificate_pem"].encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "id-ecPublicKey" in text and "prime256v1" in text  # a key that signs PDFs
    assert "Non Repudiation" in text


def test_api_reasons_are_the_authority_reasons() -> None:
    from typing import get_args

    from medsign.api.schemas import RevocationReasonName
    from medsign.ca.authority import REVOCATION_REASONS

    assert set(get_args(RevocationReasonName)) == REVOCATION_REASONS
