"""CMS SignedData and CAdES-T: our verifier, OpenSSL (RSA, P-256) and Bouncy Castle (SM2)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from tests.conftest import openssl

from medsign.crypto import KeyAlgorithm, PublicKey, SignatureScheme, message_digest, oids
from medsign.crypto.cms import (
    CMSSignature,
    SignedDataTemplate,
    add_signature_timestamp,
    build_signed_data,
    signature_timestamp_imprint,
    verify_signed_data,
)
from medsign.errors import InputError, VerificationError
from medsign.tsa import verify_token

CONTENT = "出院小结：患者恢复良好。".encode() * 50
BC_JARS = [Path("/usr/share/java") / f"{name}.jar" for name in ("bcprov", "bcpkix", "bcutil")]
BC_SOURCE = Path(__file__).resolve().parent.parent / "interop" / "bc" / "VerifySM2CMS.java"


@dataclass(frozen=True)
class Signer:
    key_id: str
    public_key: PublicKey
    scheme: SignatureScheme
    certificate_der: bytes
    chain_der: list[bytes]
    root_pem: str


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


@pytest.fixture(scope="module")
def signers(runtime: Any) -> dict[str, Signer]:
    out = {}
    for algorithm in (KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256, KeyAlgorithm.SM2):
        key = runtime.keystore.generate(algorithm, label=f"cms-test:{algorithm}")
        record = runtime.authority.issue_for_key(
            key.id, {"CN": "王医生", "serialNumber": "E1"}, "staff-signing", actor="test"
        )
        chain = runtime.authority.chain(record.serial_hex)
        root = next(
            ca
            for ca in runtime.authority.list_cas()
            if ca.level == "root" and ca.family == algorithm.family
        )
        public_key = PublicKey.from_der(key.public_key_der)
        out[algorithm.value] = Signer(
            key.id, public_key, public_key.default_scheme, record.certificate_der, chain, root.pem()
        )
    return out


def sign(runtime: Any, signer: Signer, content: bytes = CONTENT) -> CMSSignature:
    def sign_attributes(signed_attributes: bytes) -> bytes:
        digest = message_digest(signer.public_key, signer.scheme, signed_attributes)
        return bytes(
            runtime.keystore.sign_digest(
                signer.key_id, signer.scheme, digest, actor="test", purpose="cms-test"
            )
        )

    return build_signed_data(
        content_digest=hashlib.new(signer.scheme.hash_name, content).digest(),
        digest_name=signer.scheme.hash_name,
        signer_certificate_der=signer.certificate_der,
        chain_der=signer.chain_der,
        scheme=signer.scheme,
        signing_time=dt.datetime.now(dt.UTC),
        sign=sign_attributes,
    )


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


ALGORITHMS = ["rsa-2048", "ec-p256", "sm2"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip(runtime: Any, signers: dict[str, Signer], algorithm: str) -> None:
    signer = signers[algorithm]
    signature = sign(runtime, signer)
    digest = hashlib.new(signer.scheme.hash_name, CONTENT).digest()
    summary = verify_signed_data(signature.der, content_digest=digest)
    assert summary.signer_certificate_der == signer.certificate_der
    assert summary.certificates_der == (signer.certificate_der, *signer.chain_der)
    assert summary.scheme is signer.scheme
    assert summary.signing_certificate_bound
    assert summary.signing_time == signature.signing_time.replace(microsecond=0)
    assert summary.timestamp_tokens == ()
    info = cms.ContentInfo.load(signature.der)
    signer_info = info["content"]["signer_infos"][0]
    assert signer_info["version"].native == "v1"
    assert info["content"]["encap_content_info"]["content"].native is None  # detached
    if algorithm == "sm2":
        # GB/T 35275-2017: GM content types, SM3 digest, SM2-1 signature algorithm.
        assert info["content_type"].dotted == oids.GM_SIGNED_DATA
        assert info["content"]["encap_content_info"]["content_type"].dotted == oids.GM_DATA
        assert signer_info["digest_algorithm"]["algorithm"].dotted == oids.SM3
        assert signer_info["signature_algorithm"]["algorithm"].dotted == oids.SM2_SIGN
    else:
        assert info["content_type"].native == "signed_data"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_verifier_refuses(runtime: Any, signers: dict[str, Signer], algorithm: str) -> None:
    signer = signers[algorithm]
    signature = sign(runtime, signer)
    digest = hashlib.new(signer.scheme.hash_name, CONTENT).digest()
    with pytest.raises(VerificationError, match="message-digest"):
        verify_signed_data(signature.der, content_digest=hashlib.new("sha256", b"x").digest())
    position = signature.der.rindex(signature.signature) + 10
    with pytest.raises(VerificationError):
        verify_signed_data(flip(signature.der, position), content_digest=digest)
    # A changed signed attribute (the signing time's last digit) breaks the signature.
    position = signature.der.index(b"\x17\x0d") + 13
    with pytest.raises(VerificationError):
        verify_signed_data(flip(signature.der, position), content_digest=digest)
    with pytest.raises(VerificationError):
        verify_signed_data(b"\x30\x03\x02\x01\x01", content_digest=digest)


def test_template_checks(signers: dict[str, Signer]) -> None:
    signer = signers["ec-p256"]
    with pytest.raises(InputError):
        SignedDataTemplate(signer.certificate_der, [], signer.scheme, "sm3")
    template = SignedDataTemplate(signer.certificate_der, [], signer.scheme, "sha256")
    with pytest.raises(InputError):
        template.signed_attributes(b"\x00" * 20, dt.datetime.now(dt.UTC))
    with pytest.raises(InputError):
        SignedDataTemplate(signers["sm2"].certificate_der, [], signer.scheme, "sha256")


def test_signed_attributes_are_der_sorted(signers: dict[str, Signer]) -> None:
    template = SignedDataTemplate(
        signers["ec-p256"].certificate_der, [], SignatureScheme.ECDSA_SHA256, "sha256"
    )
    # Year 2050 switches signingTime to GeneralizedTime, which changes the attribute length.
    for when in (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2050, 1, 1, tzinfo=dt.UTC)):
        attributes = template.signed_attributes(b"\x01" * 32, when)
        parsed = cms.CMSAttributes.load(attributes)
        encodings = [attr.dump() for attr in parsed]
        assert encodings == sorted(encodings)
        assert parsed.dump(force=True) == attributes


def test_timestamp_attribute(runtime: Any, signers: dict[str, Signer]) -> None:
    signer = signers["ec-p256"]
    signature = sign(runtime, signer)
    imprint = signature_timestamp_imprint(signature.der, "sha256")
    assert imprint == hashlib.sha256(signature.signature).digest()
    token = runtime.tsa.stamp(imprint, "sha256")
    once = add_signature_timestamp(signature.der, token)
    twice = add_signature_timestamp(once, token)
    digest = hashlib.sha256(CONTENT).digest()
    assert verify_signed_data(once, content_digest=digest).timestamp_tokens == (token,)
    assert verify_signed_data(twice, content_digest=digest).timestamp_tokens == (token, token)
    # The signature value, and so the imprint, is unchanged by the unsigned attribute.
    assert signature_timestamp_imprint(twice, "sha256") == imprint
    with pytest.raises(InputError):
        add_signature_timestamp(signature.der, b"not a token")


# -- OpenSSL ----------------------------------------------------------------------------------


def write_inputs(tmp: Path, signer: Signer, der: bytes) -> tuple[Path, Path, Path]:
    (tmp / "data").write_bytes(CONTENT)
    (tmp / "sig.p7s").write_bytes(der)
    (tmp / "root.pem").write_text(signer.root_pem)
    return tmp / "sig.p7s", tmp / "data", tmp / "root.pem"


def openssl_cms_verify(sig: Path, data: Path, root: Path, *, check: bool = True) -> str:
    return openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig), "-content", str(data),
        "-CAfile", str(root), "-purpose", "any", "-out", "/dev/null", check=check,
    )  # fmt: skip


@pytest.mark.interop
@pytest.mark.parametrize("algorithm", ["rsa-2048", "ec-p256"])
def test_openssl_verifies_cades_t(
    runtime: Any, signers: dict[str, Signer], algorithm: str, tmp_path: Path
) -> None:
    signer = signers[algorithm]
    signature = sign(runtime, signer)
    sig, data, root = write_inputs(tmp_path, signer, signature.der)
    assert "Verification successful" in openssl_cms_verify(sig, data, root)
    # CAdES-T: the token over the signature value, in the unsigned attributes.
    imprint = signature_timestamp_imprint(signature.der, "sha256")
    token = runtime.tsa.stamp(imprint, "sha256")
    stamped = add_signature_timestamp(signature.der, token)
    sig.write_bytes(stamped)
    assert "Verification successful" in openssl_cms_verify(sig, data, root)
    data.write_bytes(CONTENT + b"!")
    assert "Verification failure" in openssl_cms_verify(sig, data, root, check=False)
    # The embedded token, taken out of the CMS, verifies with `openssl ts` against the TSA chain.
    embedded = verify_signed_data(stamped, content_digest=hashlib.sha256(CONTENT).digest())
    (tmp_path / "token.der").write_bytes(embedded.timestamp_tokens[0])
    tsa_roots = [ca for ca in runtime.authority.list_cas() if ca.family == "p256"]
    (tmp_path / "tsa-root.pem").write_text(
        "".join(ca.pem() for ca in tsa_roots if ca.level == "root")
    )
    (tmp_path / "tsa-chain.pem").write_text(
        "".join(ca.pem() for ca in tsa_roots if ca.level != "root")
    )
    out = openssl(
        "ts", "-verify", "-digest", imprint.hex(), "-token_in", "-in", str(tmp_path / "token.der"),
        "-CAfile", str(tmp_path / "tsa-root.pem"), "-untrusted", str(tmp_path / "tsa-chain.pem"),
    )  # fmt: skip
    assert "Verification: OK" in out
    info = verify_token(
        embedded.timestamp_tokens[0],
        imprint=imprint,
        hash_name="sha256",
        trust=[ca.certificate_der for ca in tsa_roots if ca.level == "root"],
        certificates=[ca.certificate_der for ca in tsa_roots if ca.level != "root"],
    )
    assert info.imprint == hashlib.sha256(signature.signature).digest()


@pytest.mark.interop
def test_openssl_cannot_verify_sm2_cms(
    runtime: Any, signers: dict[str, Signer], tmp_path: Path
) -> None:
    """OpenSSL 3.0 does not know the GB/T 35275 content types (docs record this)."""
    signer = signers["sm2"]
    sig, data, root = write_inputs(tmp_path, signer, sign(runtime, signer).der)
    out = openssl_cms_verify(sig, data, root, check=False)
    assert "Verification failure" in out
    assert "content type not signed data" in out


# -- Bouncy Castle (SM2) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bouncy_castle(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if shutil.which("javac") is None or not all(jar.is_file() for jar in BC_JARS):
        pytest.skip(
            "Bouncy Castle (libbcprov-java, libbcpkix-java, libbcutil-java) or a JDK missing"
        )
    classes = tmp_path_factory.mktemp("bc")
    classpath = ":".join(str(jar) for jar in BC_JARS)
    subprocess.run(["javac", "-cp", classpath, "-d", str(classes), str(BC_SOURCE)], check=True)
    return ["java", "-cp", f"{classpath}:{classes}", "VerifySM2CMS"]


def bc(command: list[str], *args: Path | str) -> str:
    proc = subprocess.run([*command, *map(str, args)], capture_output=True, text=True)
    out = proc.stdout.strip()
    assert (proc.returncode == 0) == out.startswith("OK"), proc.stdout + proc.stderr
    return out


@pytest.mark.interop
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bouncy_castle_verifies(
    runtime: Any,
    signers: dict[str, Signer],
    bouncy_castle: list[str],
    algorithm: str,
    tmp_path: Path,
) -> None:
    signer = signers[algorithm]
    signature = sign(runtime, signer)
    imprint = signature_timestamp_imprint(signature.der, "sha256")
    stamped = add_signature_timestamp(signature.der, runtime.tsa.stamp(imprint, "sha256"))
    sig, data, _ = write_inputs(tmp_path, signer, stamped)
    assert bc(bouncy_castle, sig, data).startswith("OK CN=王医生")
    # What Bouncy Castle prints can fail: a changed signature value, changed content.
    position = stamped.index(signature.signature) + len(signature.signature) // 2
    (tmp_path / "bad.p7s").write_bytes(flip(stamped, position))
    assert bc(bouncy_castle, tmp_path / "bad.p7s", data).startswith("FAIL")
    (tmp_path / "other").write_bytes(CONTENT + b" ")
    assert bc(bouncy_castle, sig, tmp_path / "other").startswith("FAIL")


@pytest.mark.interop
def test_stock_bouncy_castle_lacks_sm2_1(
    runtime: Any, signers: dict[str, Signer], bouncy_castle: list[str], tmp_path: Path
) -> None:
    """BC 1.72 cannot name SM2-1 (1.2.156.10197.1.301.1) without help (docs record this)."""
    sig, data, _ = write_inputs(tmp_path, signers["sm2"], sign(runtime, signers["sm2"]).der)
    out = bc(bouncy_castle, "--stock", sig, data)
    assert out.startswith("FAIL") and "1.2.156.10197.1.301.1" in out
