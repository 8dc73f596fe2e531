"""The acceptance path with real tools: the `medsign` CLI as operators type it, a running
server, and the OpenSSL CLI fetching the chain through AIA, CRLs through the CRL DP and
asking the OCSP responder by URL."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_database_url, openssl
from tests.live import LiveServer, live_server

pytestmark = pytest.mark.interop

Server = LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("live")
    urls = make_database_url(data_dir)
    with live_server(data_dir, next(urls)) as running:
        yield running
    for _ in urls:
        pass


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def der_to_pem(der: bytes, path: Path, kind: str) -> Path:
    cmd = "crl" if kind == "crl" else "x509"
    openssl(
        cmd, "-inform", "DER", "-in", str(_write(path.with_suffix(".der"), der)), "-out", str(path)
    )
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def extension_url(cert: Path, pattern: str) -> str:
    text = openssl("x509", "-in", str(cert), "-noout", "-text")
    match = re.search(pattern, text)
    assert match, text
    return match.group(1)


def ca_issuers(cert: Path) -> str:
    return extension_url(cert, r"CA Issuers - URI:(\S+)")


def crl_dp(cert: Path) -> str:
    return extension_url(cert, r"X509v3 CRL Distribution Points:\s+Full Name:\s+URI:(\S+)")


def make_csr(tmp: Path, family: str) -> Path:
    key = tmp / "leaf.key"
    if family == "sm2":
        openssl("genpkey", "-algorithm", "SM2", "-out", str(key))
        digest = "-sm3"
    elif family == "p256":
        openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)
        )
        digest = "-sha256"
    else:
        openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)
        )
        digest = "-sha256"
    csr = tmp / "leaf.csr"
    openssl(
        "req",
        "-new",
        "-key",
        str(key),
        digest,
        "-utf8",
        "-subj",
        "/CN=王医生/serialNumber=E2001/O=示例人民医院/C=CN",
        "-out",
        str(csr),
    )
    return csr


SM2_ID = "distid:1234567812345678"


def openssl_sm2_verify(tmp: Path, signer_cert: Path, tbs: bytes, signature: bytes) -> None:
    """Check an SM2-with-SM3 signature (standard ID) over `tbs` with `openssl pkeyutl`."""
    pub = tmp / "signer.pub.pem"
    openssl("x509", "-in", str(signer_cert), "-noout", "-pubkey", "-out", str(pub))
    out = openssl(
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(pub),
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        SM2_ID,
        "-in",
        str(_write(tmp / "tbs.der", tbs)),
        "-sigfile",
        str(_write(tmp / "sig.der", signature)),
    )
    assert "Signature Verified Successfully" in out, out


def ocsp_status(
    server: Server, tmp: Path, leaf: Path, issuing: Path, root: Path, family: str
) -> str:
    response = tmp / "ocsp.der"
    args = [
        "ocsp",
        "-url",
        f"{server.base}/pki/ocsp",
        "-issuer",
        str(issuing),
        "-cert",
        str(leaf),
        "-CAfile",
        str(root),
        "-nonce",
        "-resp_text",
        "-respout",
        str(response),
    ]
    if family == "sm2":
        # OpenSSL 3.0 checks SM2 OCSP signatures with an empty ID and has no option to set
        # one (docs/adr/0003): it fetches and parses, and pkeyutl checks the signature below.
        args.append("-noverify")
    out = openssl(*args)
    if family == "sm2":
        from asn1crypto import ocsp

        basic = ocsp.OCSPResponse.load(response.read_bytes())["response_bytes"]["response"].parsed
        responder = tmp / "responder.pem"
        responder.write_bytes(pem_bytes(basic["certs"][0].dump()))
        openssl(
            "verify", "-vfyopt", SM2_ID, "-partial_chain", "-CAfile", str(issuing), str(responder)
        )
        openssl_sm2_verify(
            tmp, responder, basic["tbs_response_data"].dump(), basic["signature"].native
        )
    else:
        assert "Response verify OK" in out, out
    match = re.search(rf"{re.escape(str(leaf))}: (\w+)", out)
    assert match, out
    return match.group(1) + ("/" + m.group(1) if (m := re.search(r"Reason: (\w+)", out)) else "")


def pem_bytes(der: bytes) -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


def verify_with_crl(
    tmp: Path, root: Path, issuing: Path, leaf: Path, family: str = "p256"
) -> subprocess.CompletedProcess[str]:
    crl_der = fetch(crl_dp(leaf))
    crl_pem = der_to_pem(crl_der, tmp / "issuing.crl.pem", "crl")
    root_crl_der = fetch(crl_dp(issuing))
    root_crl = der_to_pem(root_crl_der, tmp / "root.crl.pem", "crl")
    if family != "sm2":
        return subprocess.run(
            [
                "openssl",
                "verify",
                "-crl_check_all",
                "-CAfile",
                str(root),
                "-untrusted",
                str(issuing),
                "-CRLfile",
                str(crl_pem),
                "-CRLfile",
                str(root_crl),
                str(leaf),
            ],
            capture_output=True,
            text=True,
        )
    return verify_sm2_with_crl(tmp, root, issuing, leaf, crl_der, root_crl_der)


def verify_sm2_with_crl(
    tmp: Path, root: Path, issuing: Path, leaf: Path, crl_der: bytes, root_crl_der: bytes
) -> subprocess.CompletedProcess[str]:
    """The SM2 form of `verify -crl_check_all` that OpenSSL 3.0 can express.

    OpenSSL 3.0 applies `-vfyopt distid:` only to the certificate being verified and checks
    CRL signatures with an empty ID (docs/adr/0003), so each link is verified on its own with
    the standard ID, each CRL signature with `pkeyutl`, and the revocation status is read
    from OpenSSL's own parse of the CRL."""
    from asn1crypto import crl as asn1_crl

    openssl("verify", "-vfyopt", SM2_ID, "-CAfile", str(root), str(issuing))
    openssl("verify", "-vfyopt", SM2_ID, "-partial_chain", "-CAfile", str(issuing), str(leaf))
    for der, signer in ((crl_der, issuing), (root_crl_der, root)):
        parsed = asn1_crl.CertificateList.load(der)
        openssl_sm2_verify(tmp, signer, parsed["tbs_cert_list"].dump(), parsed["signature"].native)
        openssl(
            "crl", "-inform", "DER", "-in", str(_write(tmp / "c.der", der)), "-noout", "-nextupdate"
        )
    serial = openssl("x509", "-in", str(leaf), "-noout", "-serial").strip().split("=", 1)[1]
    listed = openssl("crl", "-in", str(tmp / "issuing.crl.pem"), "-noout", "-text")
    revoked = f"Serial Number: {serial}" in listed
    return subprocess.CompletedProcess(
        args=["sm2-crl-check"],
        returncode=2 if revoked else 0,
        stdout=(f"{leaf}: certificate revoked" if revoked else f"{leaf}: OK"),
        stderr=listed,
    )


@pytest.mark.parametrize("family", ["p256", "rsa", "sm2"])
def test_openssl_against_the_running_server(server: Server, tmp_path: Path, family: str) -> None:
    csr = make_csr(tmp_path, family)
    leaf = tmp_path / "leaf.pem"
    issued = server.cli(
        "ca", "issue", "--csr", str(csr), "--profile", "staff-signing", "--out", str(leaf)
    )
    serial = openssl("x509", "-in", str(leaf), "-noout", "-serial").strip().split("=", 1)[1]
    assert f"serial={serial}" in issued.stdout

    # The chain, fetched through AIA caIssuers: leaf -> issuing CA -> root.
    issuing = der_to_pem(fetch(ca_issuers(leaf)), tmp_path / "issuing.pem", "cert")
    root = der_to_pem(fetch(ca_issuers(issuing)), tmp_path / "root.pem", "cert")
    subject = openssl("x509", "-in", str(root), "-noout", "-subject", "-issuer")
    lines = subject.strip().splitlines()
    assert lines[0].split("=", 1)[1] == lines[1].split("=", 1)[1], "root must be self-issued"

    ok = verify_with_crl(tmp_path, root, issuing, leaf, family)
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    assert ocsp_status(server, tmp_path, leaf, issuing, root, family) == "good"

    server.cli("ca", "hold", serial)
    assert ocsp_status(server, tmp_path, leaf, issuing, root, family) == "revoked/certificateHold"
    held = verify_with_crl(tmp_path, root, issuing, leaf, family)
    assert held.returncode != 0 and "revoked" in held.stdout + held.stderr

    server.cli("ca", "release", serial)
    assert ocsp_status(server, tmp_path, leaf, issuing, root, family) == "good"
    assert verify_with_crl(tmp_path, root, issuing, leaf, family).returncode == 0

    server.cli("ca", "revoke", serial, "--reason", "keyCompromise")
    assert ocsp_status(server, tmp_path, leaf, issuing, root, family) == "revoked/keyCompromise"
    revoked = verify_with_crl(tmp_path, root, issuing, leaf, family)
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr

    # Revoking twice is refused and changes nothing.
    again = server.cli("ca", "revoke", serial, "--reason", "superseded", check=False)
    assert again.returncode != 0 and "error:" in again.stderr
    crl_text = openssl("crl", "-in", str(tmp_path / "issuing.crl.pem"), "-noout", "-text")
    assert "Key Compromise" in crl_text


def test_cli_crl_and_bad_input(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "all.crl.pem"
    server.cli("ca", "crl", "--out", str(out))
    text = openssl("crl", "-in", str(out), "-noout", "-crlnumber")
    assert "crlNumber=" in text
    bad = tmp_path / "bad.csr"
    bad.write_text("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    proc = server.cli(
        "ca",
        "issue",
        "--csr",
        str(bad),
        "--profile",
        "staff-signing",
        "--out",
        str(tmp_path / "x.pem"),
        check=False,
    )
    assert proc.returncode == 2 and "error:" in proc.stderr
    assert not (tmp_path / "x.pem").exists()
    proc = server.cli("ca", "revoke", "DEADBEEF01", "--reason", "keyCompromise", check=False)
    assert proc.returncode == 2 and "not-found" in proc.stderr
    proc = server.cli("ca", "revoke", "DEADBEEF01", "--reason", "nonsense", check=False)
    assert proc.returncode == 2


def test_ocsp_garbage_is_malformed_request(server: Server) -> None:
    request = urllib.request.Request(
        f"{server.base}/pki/ocsp",
        data=b"garbage",
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    # OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED { malformedRequest (1) } }
    assert body == bytes.fromhex("30030a0101")


def test_ocsp_get_form(server: Server, tmp_path: Path) -> None:
    import base64
    from urllib.parse import quote

    csr = make_csr(tmp_path, "p256")
    leaf = tmp_path / "leaf.pem"
    server.cli("ca", "issue", "--csr", str(csr), "--profile", "staff-signing", "--out", str(leaf))
    issuing = der_to_pem(fetch(ca_issuers(leaf)), tmp_path / "issuing.pem", "cert")
    root = der_to_pem(fetch(ca_issuers(issuing)), tmp_path / "root.pem", "cert")
    request = tmp_path / "req.der"
    openssl(
        "ocsp", "-issuer", str(issuing), "-cert", str(leaf), "-no_nonce", "-reqout", str(request)
    )
    encoded = quote(base64.b64encode(request.read_bytes()).decode(), safe="")
    response = _write(tmp_path / "resp.der", fetch(f"{server.base}/pki/ocsp/{encoded}"))
    out = openssl(
        "ocsp",
        "-respin",
        str(response),
        "-issuer",
        str(issuing),
        "-cert",
        str(leaf),
        "-CAfile",
        str(root),
        "-no_nonce",
        "-resp_text",
    )
    assert "Response verify OK" in out and f"{leaf}: good" in out, out
