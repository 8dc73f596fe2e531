"""Helpers for the signing API tests: enrol a signer through the real flow."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_enrolment import code_from_outbox, new_staff, open_enrolment

PIN = "258036"


def enrol(client: TestClient, admin_headers: dict[str, str], his: Any, algorithm: str) -> str:
    """A staff member enrolled with a key of ``algorithm`` and PIN ``PIN``; returns the
    employee number."""
    employee_no, national_id, last4 = new_staff(his)
    _, token = open_enrolment(his, employee_no, algorithm)
    base = f"/m/api/enrolments/{token}"
    assert client.post(f"{base}/send-code").status_code == 200
    code = code_from_outbox(client, admin_headers, last4)
    assert client.post(f"{base}/verify-code", json={"code": code}).status_code == 200
    assert (
        client.post(f"{base}/confirm-identity", json={"national_id": national_id}).status_code
        == 200
    )
    done = client.post(f"{base}/pin", json={"pin": PIN})
    assert done.status_code == 200, done.text
    return employee_no


def write_chain(tmp: Path, signature: dict[str, Any]) -> tuple[Path, Path]:
    """(root.pem, untrusted.pem with the intermediates) from a signature result."""
    chain = signature["chain_pem"]
    root = tmp / "root.pem"
    root.write_text(chain[-1])
    untrusted = tmp / "untrusted.pem"
    untrusted.write_text("".join(chain[:-1]))
    return root, untrusted


def openssl_cms_verify(tmp: Path, signature: dict[str, Any], content: bytes) -> str:
    root, untrusted = write_chain(tmp, signature)
    (tmp / "sig.p7s").write_bytes(base64.b64decode(signature["cms"]))
    (tmp / "content.bin").write_bytes(content)
    proc = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp / "sig.p7s"),
            "-content",
            str(tmp / "content.bin"),
            "-CAfile",
            str(root),
            "-certfile",
            str(untrusted),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    return proc.stdout + proc.stderr if proc.returncode == 0 else f"FAILED {proc.stderr}"


def ts_verify(
    tmp: Path, token_der: bytes, cms_der: bytes, hash_name: str, ca_file: Path, untrusted: Path
) -> str:
    """`openssl ts -verify` of a CMS signature's timestamp token over its signature value."""
    from medsign.crypto.cms import signature_timestamp_imprint

    (tmp / "token.der").write_bytes(token_der)
    imprint = signature_timestamp_imprint(cms_der, hash_name).hex()
    proc = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            imprint,
            "-token_in",
            "-in",
            str(tmp / "token.der"),
            "-CAfile",
            str(ca_file),
            "-untrusted",
            str(untrusted),
        ],
        capture_output=True,
        text=True,
    )
    return proc.stdout + proc.stderr


def openssl_ts_verify(tmp: Path, signature: dict[str, Any], runtime: Any) -> str:
    """`openssl ts -verify` of the signature timestamp against the TSA chain."""
    tsa_cert = runtime.tsa.certificate()
    tsa = next(
        r for r in runtime.authority.list(profile="tsa", limit=10) if r.certificate_der == tsa_cert
    )
    chain = runtime.authority.chain(tsa.serial_hex)
    (tmp / "tsa-root.pem").write_text(_pem(chain[-1]))
    (tmp / "tsa-untrusted.pem").write_text(_pem(tsa_cert) + "".join(_pem(c) for c in chain[:-1]))
    hash_name = "sm3" if signature["scheme"] == "sm2-sm3" else "sha256"
    return ts_verify(
        tmp,
        base64.b64decode(signature["timestamp_token"]),
        base64.b64decode(signature["cms"]),
        hash_name,
        tmp / "tsa-root.pem",
        tmp / "tsa-untrusted.pem",
    )


def _pem(der: bytes) -> str:
    from medsign.ca.authority import pem_encode

    return pem_encode(der)
