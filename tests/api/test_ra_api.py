"""RA mode over HTTP: a CSR for an external CA (played by the openssl CLI), then import."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.test_admin_ca import assert_problem

SUBJECT = "CN=李四,serialNumber=E3001,O=示例人民医院,C=CN"


def run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def external_ca(tmp: Path) -> Path:
    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ext.key",
        "-out",
        "ext.pem",
        "-days",
        "30",
        "-subj",
        "/CN=Licensed CA/C=CN",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=tmp,
    )
    return tmp / "ext.pem"


def sign(tmp: Path, csr_pem: str, name: str) -> Path:
    (tmp / f"{name}.csr").write_text(csr_pem)
    (tmp / "leaf.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n"
    )
    run(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ext.pem",
        "-CAkey",
        "ext.key",
        "-days",
        "10",
        "-extfile",
        "leaf.ext",
        "-out",
        f"{name}.pem",
        cwd=tmp,
    )
    return tmp / f"{name}.pem"


def test_ra_round_trip(client: TestClient, admin_headers: dict[str, str], tmp_path: Path) -> None:
    root = external_ca(tmp_path)
    created = client.post(
        "/admin/v1/ra/csrs",
        headers=admin_headers,
        json={"algorithm": "ec-p256", "subject": SUBJECT, "profile": "staff-signing"},
    )
    assert created.status_code == 201, created.text
    csr = created.json()
    text = subprocess.run(
        ["openssl", "req", "-noout", "-verify", "-subject"],
        input=csr["csr_pem"].encode(),
        capture_output=True,
        check=True,
    )
    assert "verify OK" in (text.stdout + text.stderr).decode()

    cert = sign(tmp_path, csr["csr_pem"], "leaf")
    imported = client.post(
        f"/admin/v1/ra/csrs/{csr['id']}/certificate",
        headers=admin_headers,
        json={"certificate": cert.read_text(), "chain": [root.read_text()]},
    )
    assert imported.status_code == 201, imported.text
    record = imported.json()
    assert record["key_id"] and record["issuer_ca_id"] is None
    assert (
        client.get(f"/admin/v1/certificates/{record['serial']}", headers=admin_headers).status_code
        == 200
    )

    # Importing again, or a certificate for some other key, is refused.
    again = client.post(
        f"/admin/v1/ra/csrs/{csr['id']}/certificate",
        headers=admin_headers,
        json={"certificate": cert.read_text(), "chain": [root.read_text()]},
    )
    assert again.status_code in (409, 422)
    assert again.headers["content-type"].startswith("application/problem+json")


def test_ra_refuses_a_certificate_for_another_key(
    client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    root = external_ca(tmp_path)
    csr = client.post(
        "/admin/v1/ra/csrs",
        headers=admin_headers,
        json={"algorithm": "ec-p256", "subject": SUBJECT, "profile": "staff-signing"},
    ).json()
    run(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "other.key",
        "-out",
        "other.csr",
        "-subj",
        "/CN=Other",
        cwd=tmp_path,
    )
    other = sign(tmp_path, (tmp_path / "other.csr").read_text(), "other")
    response = client.post(
        f"/admin/v1/ra/csrs/{csr['id']}/certificate",
        headers=admin_headers,
        json={"certificate": other.read_text(), "chain": [root.read_text()]},
    )
    assert_problem(response, 422, "invalid-input")
    bad = client.post(
        "/admin/v1/ra/csrs",
        headers=admin_headers,
        json={
            "algorithm": "ec-p256",
            "subject": "CN=x,emailAddress=a@b.c",
            "profile": "staff-signing",
        },
    )
    assert_problem(bad, 422, "invalid-input")
    unknown = client.post(
        "/admin/v1/ra/csrs/csr_nope/certificate",
        headers=admin_headers,
        json={"certificate": other.read_text(), "chain": [root.read_text()]},
    )
    assert_problem(unknown, 404, "not-found")
