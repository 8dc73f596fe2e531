"""Evidence packages: built for a request signed through the API, checked fully offline, and
refused (exit 1, or 3 where nothing can be decided) once anything in them is altered."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medsign.evidence.package import build_package, verify_package
from medsign.verify import Indication
from tests.api.signing_support import PIN, enrol
from tests.identity.support import register_application, signed_client

ORDER = {"order_no": "MO-7", "drug": "阿莫西林胶囊", "dose": "0.5 g"}


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def employee_no(client: TestClient, admin_headers: dict[str, str], his: Any) -> str:
    return enrol(client, admin_headers, his, "ec-p256")


@pytest.fixture(scope="module")
def signed_id(his: Any, employee_no: str) -> str:
    opened = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": employee_no,
            "scene": "medical-order",
            "summary": "阿莫西林 0.5g",
            "record_id": "pkg-1",
            "record": ORDER,
            "idempotency_key": "pkg-1",
        },
    )
    assert opened.status_code == 201, opened.text
    request_id = str(opened.json()["id"])
    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": employee_no, "request_ids": [request_id], "method": "pin"},
    )
    assert intent.status_code == 201, intent.text
    confirmed = his.request(
        "POST", f"/api/v1/intents/{intent.json()['id']}/confirm", json={"pin": PIN}
    )
    assert confirmed.status_code == 200, confirmed.text
    # A CRL has whole seconds: one issued in the signing second cannot show it came after.
    time.sleep(1.05)
    return request_id


@pytest.fixture(scope="module")
def package(runtime: Any, signed_id: str) -> bytes:
    return build_package(runtime, signed_id, include_content=True)


def names(report: Any) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


def test_a_signed_request_verifies_offline(package: bytes, signed_id: str) -> None:
    report = verify_package(package)
    assert report.indication is Indication.PASSED, report.as_dict()
    checks = names(report)
    for name in (
        "package",
        "content",
        "signature",
        "signature timestamp",
        "signature chain",
        "signature status",
        "raw-signature",
        "checkpoint",
        "checkpoint-timestamp",
        "events",
        "trail",
    ):
        assert checks[name].indication is Indication.PASSED, (name, checks[name])
    assert report.request_id == signed_id
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        listed = archive.namelist()
        assert listed[0] == "manifest.json" and listed[1:] == sorted(listed[1:])
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        manifest = json.loads(archive.read("manifest.json"))
        intent = json.loads(archive.read("intent.json"))
    assert manifest["format"] == "medsign-evidence-package" and manifest["version"] == 1
    assert {"signature.raw", "signature.p7s", "timestamp.tsr", "revocation/issuer.crl"} <= {
        f["path"] for f in manifest["files"]
    }
    assert intent["method"] == "pin" and PIN not in json.dumps(intent)


def test_without_content_and_with_trust_anchors(
    runtime: Any, signed_id: str, package: bytes
) -> None:
    bare = build_package(runtime, signed_id, include_content=False)
    assert "content.json" not in zipfile.ZipFile(io.BytesIO(bare)).namelist()
    assert verify_package(bare).indication is Indication.PASSED
    root = _member(package, _chain_names(package)[-1])
    tsa = [n for n in _names(package) if n.startswith("tsa/")]
    anchors = [root, _member(package, tsa[-1])]
    assert verify_package(package, trust_anchors=anchors).passed
    # Trusting only the TSA's own certificate: the package's root is not an anchor.
    other = verify_package(package, trust_anchors=[_member(package, tsa[0])])
    assert other.indication is Indication.INDETERMINATE, other.as_dict()
    sub = names(other)["trust-anchor"].sub_indication
    assert sub is not None and sub.value == "NO_CERTIFICATE_CHAIN_FOUND"


def test_the_api_serves_the_applications_own_packages(
    his: Any, client: TestClient, admin_headers: dict[str, str], signed_id: str
) -> None:
    response = his.request("GET", f"/api/v1/sign-requests/{signed_id}/evidence-package")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert verify_package(response.content).passed
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as stranger:
        refused = stranger.request("GET", f"/api/v1/sign-requests/{signed_id}/evidence-package")
    assert refused.status_code == 404


def test_only_a_signed_request_has_a_package(his: Any, employee_no: str) -> None:
    pending = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": employee_no,
            "scene": "medical-order",
            "summary": "x",
            "record_id": "pkg-pending",
            "record": ORDER,
            "idempotency_key": "pkg-pending",
        },
    )
    assert pending.status_code == 201, pending.text
    response = his.request("GET", f"/api/v1/sign-requests/{pending.json()['id']}/evidence-package")
    assert response.status_code == 409
    assert response.json()["code"] == "evidence-package-not-ready"


# -- the CLI --------------------------------------------------------------------------------


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    return subprocess.run(
        [sys.executable, "-m", "medsign.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_verifies_a_package(package: bytes, tmp_path: Path) -> None:
    path = tmp_path / "evidence.bin"  # recognised by content, not by name
    path.write_bytes(package)
    result = run_cli("verify", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok] signature:" in result.stdout
    assert "[ok] events:" in result.stdout
    assert "[ok] trail:" in result.stdout
    assert "result: PASSED" in result.stdout
    assert "Traceback" not in result.stderr


def test_cli_options_that_do_not_apply_are_a_usage_error(package: bytes, tmp_path: Path) -> None:
    path = tmp_path / "evidence.zip"
    path.write_bytes(package)
    result = run_cli("verify", path, "--scheme", "ecdsa-sha256")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "only --trust and --json apply" in result.stderr


def test_cli_builds_a_package(runtime: Any, signed_id: str, tmp_path: Path) -> None:
    out = tmp_path / "built.zip"
    env = {**os.environ, "MEDSIGN_DATABASE_URL": runtime.settings.resolved_database_url}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medsign.cli",
            "log",
            "package",
            signed_id,
            "--content",
            "--out",
            str(out),
            "--data-dir",
            str(runtime.settings.data_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert verify_package(out.read_bytes()).passed


# -- tampering ------------------------------------------------------------------------------


def _names(package: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(package)).namelist()


def _chain_names(package: bytes) -> list[str]:
    return [n for n in _names(package) if n.startswith("chain/")]


def _member(package: bytes, name: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(package)).read(name)


def rewrite(
    package: bytes, changes: dict[str, bytes | None], *, fix_manifest: bool = True
) -> bytes:
    """The package with files replaced (None: removed), its manifest updated to match unless
    ``fix_manifest`` is false: a forger can always rewrite the manifest."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    for name, data in changes.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    if fix_manifest:
        manifest = json.loads(files["manifest.json"])
        entries = {e["path"]: e for e in manifest["files"]}
        manifest["files"] = [
            {
                **entries.get(name, {"role": "?"}),
                "path": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
            for name, data in sorted(files.items())
            if name != "manifest.json"
        ]
        files["manifest.json"] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _flip_cms_signature(cms: bytes) -> bytes:
    """One bit of the signer's signature value flipped; everything else (the timestamp's
    certificates, the signed attributes) left as it was."""
    from medsign.verify.signed_data import parse_signed_data

    value = parse_signed_data(cms).signer["signature"].native
    at = cms.index(value) + len(value) // 2
    return _flip(cms, at)


def _events(package: bytes) -> dict[str, Any]:
    return json.loads(_member(package, "log/events.json"))  # type: ignore[no-any-return]


def _with_events(package: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    trail = _events(package)
    change(trail)
    return rewrite(package, {"log/events.json": json.dumps(trail).encode()})


def _alter_record(trail: dict[str, Any]) -> None:
    event = next(e for e in trail["events"] if '"signature:apply"' in e["record"])
    record = json.loads(event["record"])
    record["signature_sha256"] = "00" * 32
    event["record"] = json.dumps(record, sort_keys=True, separators=(",", ":"))


def _other_index(trail: dict[str, Any]) -> None:
    first, second = trail["events"][0], trail["events"][1]
    first["proof"] = second["proof"]


def _bad_checkpoint(package: bytes) -> bytes:
    note = _member(package, "log/checkpoint.txt").decode()
    text, _, signatures = note.rpartition("\n\n")
    lines = text.split("\n")
    lines[1] = str(int(lines[1]) + 1)  # claims a larger tree under the same signature
    return rewrite(
        package, {"log/checkpoint.txt": ("\n".join(lines) + "\n\n" + signatures).encode()}
    )


CASES: dict[str, tuple[Callable[[bytes], bytes], int, str]] = {
    "truncated": (lambda p: p[: len(p) // 2], 1, "not a readable ZIP archive"),
    "cms signature value changed": (
        lambda p: rewrite(p, {"signature.p7s": _flip_cms_signature(_member(p, "signature.p7s"))}),
        1,
        "[FAILED] signature signature SIG_CRYPTO_FAILURE",
    ),
    "event record altered": (
        lambda p: _with_events(p, _alter_record),
        1,
        "is not in the checkpointed log",
    ),
    "proof of another index": (
        lambda p: _with_events(p, _other_index),
        1,
        "is not in the checkpointed log",
    ),
    "checkpoint signature bad": (
        _bad_checkpoint,
        1,
        "[FAILED] checkpoint SIG_CRYPTO_FAILURE: the checkpoint is not signed",
    ),
    "file missing": (
        lambda p: rewrite(p, {"log/events.json": None}, fix_manifest=False),
        1,
        "log/events.json is listed but missing",
    ),
    "file altered, manifest kept": (
        lambda p: rewrite(p, {"signature.raw": b"\x00" * 64}, fix_manifest=False),
        1,
        "does not match its SHA-256",
    ),
    "raw signature replaced": (
        lambda p: rewrite(p, {"signature.raw": _flip(_member(p, "signature.raw"), 10)}),
        1,
        "[FAILED",
    ),
    "unknown version": (
        lambda p: rewrite(
            p,
            {
                "manifest.json": _member(p, "manifest.json").replace(
                    b'"version": 1', b'"version": 9'
                )
            },
            fix_manifest=False,
        ),
        1,
        "unknown package format",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_refused(package: bytes, tmp_path: Path, case: str) -> None:
    tamper, exit_code, message = CASES[case]
    path = tmp_path / "tampered.zip"
    path.write_bytes(tamper(package))
    result = run_cli("verify", path)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert message in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    report = verify_package(path.read_bytes())
    assert report.indication is not Indication.PASSED


def test_garbage_never_crashes() -> None:
    package = base64.b64decode("UEsDBBQAAAAAAAAAIQAAAAAAAAAAAAAAAAAAAAAA")
    assert verify_package(package).indication is Indication.FAILED
    assert verify_package(b"PK\x05\x06" + b"\x00" * 18).indication is Indication.FAILED


def test_damaged_bytes_anywhere_give_a_report_never_an_exception(package: bytes) -> None:
    """A flipped byte in compressed data raises zlib errors deep inside zipfile; a flipped
    byte in ZIP bookkeeping (times, CRC copies) changes nothing that is verified. Either way
    the verifier answers with a report, and never passes altered content."""
    for position in range(0, len(package), 211):
        damaged = bytearray(package)
        damaged[position] ^= 0xFF
        report = verify_package(bytes(damaged))
        assert report.indication.value in ("passed", "failed", "indeterminate")
        if report.indication.value == "passed":  # only ZIP metadata was hit
            with zipfile.ZipFile(io.BytesIO(bytes(damaged))) as archive:
                originals = zipfile.ZipFile(io.BytesIO(package))
                for name in originals.namelist():
                    assert archive.read(name) == originals.read(name)
