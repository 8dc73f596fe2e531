"""The acceptance path with real tools: OpenSSL builds the query, curl posts it to a running
`medsign serve`, OpenSSL verifies the reply against the root, with the chain fetched
through the AIA caIssuers URL of the TSA certificate."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import openssl
from tests.interop.test_live_server import Server, server  # noqa: F401 - the fixture

pytestmark = pytest.mark.interop


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def der_to_pem(der: bytes, path: Path) -> str:
    path.with_suffix(".der").write_bytes(der)
    openssl("x509", "-inform", "DER", "-in", str(path.with_suffix(".der")), "-out", str(path))
    return path.read_text()


def stamp(live: Server, data: Path, *flags: str) -> bytes:
    pipeline = (
        f"openssl ts -query -data {data} -sha256 {' '.join(flags)}"
        f" | curl -sS --fail --data-binary @- -H 'Content-Type: application/timestamp-query'"
        f" {live.base}/pki/tsa"
    )
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def tsa_chain(tmp: Path, reply: Path, live: Server) -> tuple[Path, Path]:
    """root.pem and tsa-chain.pem (TSA certificate + issuing CA found through AIA)."""
    token = tmp / "token.der"
    openssl("ts", "-reply", "-in", str(reply), "-token_out", "-out", str(token))
    certs = openssl("pkcs7", "-inform", "DER", "-in", str(token), "-print_certs")
    tsa_pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", certs, re.S)
    assert tsa_pem, certs
    (tmp / "tsa.pem").write_text(tsa_pem.group(0) + "\n")
    text = openssl("x509", "-in", str(tmp / "tsa.pem"), "-noout", "-text")
    assert re.search(r"Extended Key Usage: critical\s+Time Stamping", text), text
    aia = re.search(r"CA Issuers - URI:(\S+)", text)
    assert aia, text
    issuing = der_to_pem(fetch(aia.group(1)), tmp / "issuing.pem")
    (tmp / "tsa-chain.pem").write_text(tsa_pem.group(0) + "\n" + issuing)
    cas = json.loads(fetch(live.base + "/pki/cas"))
    root = next(ca for ca in cas if ca["family"] == "p256" and ca["level"] == "root")
    (tmp / "root.pem").write_text(root["certificate_pem"])
    return tmp / "root.pem", tmp / "tsa-chain.pem"


@pytest.mark.parametrize("flags", [("-cert",), ("-cert", "-no_nonce"), ()])
def test_openssl_ts_round_trip(server: Server, tmp_path: Path, flags: tuple[str, ...]) -> None:  # noqa: F811
    data = tmp_path / "record.bin"
    data.write_bytes("住院病历 #42".encode() * 100)
    first = tmp_path / "first.tsr"
    first.write_bytes(stamp(server, data, "-cert"))
    root, chain = tsa_chain(tmp_path, first, server)
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(stamp(server, data, *flags))
    out = openssl(
        "ts", "-verify", "-data", str(data), "-in", str(reply),
        "-CAfile", str(root), "-untrusted", str(chain),
    )  # fmt: skip
    assert "Verification: OK" in out
    text = openssl("ts", "-reply", "-in", str(reply), "-text")
    assert "Status: Granted" in text
    assert ("Nonce: unspecified" in text) == ("-no_nonce" in flags)
    assert "Accuracy: 0x01 seconds" in text
    # The wrong data does not verify.
    other = tmp_path / "other.bin"
    other.write_bytes(b"something else")
    out = openssl(
        "ts", "-verify", "-data", str(other), "-in", str(reply),
        "-CAfile", str(root), "-untrusted", str(chain), check=False,
    )  # fmt: skip
    assert "Verification: FAILED" in out


def test_openssl_sees_rejections(server: Server, tmp_path: Path) -> None:  # noqa: F811
    data = tmp_path / "record.bin"
    data.write_bytes(b"x")
    reply = tmp_path / "reply.tsr"
    query = tmp_path / "q.tsq"
    openssl("ts", "-query", "-data", str(data), "-sha1", "-out", str(query))
    pipeline = (
        f"curl -sS --fail --data-binary @{query}"
        f" -H 'Content-Type: application/timestamp-query' {server.base}/pki/tsa"
    )
    reply.write_bytes(subprocess.run(["bash", "-c", pipeline], capture_output=True).stdout)
    text = openssl("ts", "-reply", "-in", str(reply), "-text")
    assert "Status: Rejected" in text
    assert "unsupported algorithm identifier" in text.lower()
