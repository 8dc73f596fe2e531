"""CA throughput: certificate issuance and OCSP responses, against baselines from the same run.

    .venv/bin/python bench/bench_ca.py [--seconds 3] [--families p256,rsa,sm2] [--profile]

Set-up: a temporary SQLite database (migrated), a software key store and the CA hierarchy.
Every rate is single-threaded wall-clock throughput on this machine, in this run. Measured:

(a) Issuance per second from pre-made CSRs (``issue_from_csr``: CSR parse and self-signature
    check, profile check, TBSCertificate, signature through the key store with its key-use
    record, post-signing verification, certificate row and event). P-256 (CA key P-256),
    RSA-2048 CSRs (CA key RSA-3072) and SM2. Target: 500 P-256 issuances/s on one core. The
    ratio column is against the raw sign rate of the CA key's algorithm (``openssl speed``),
    for scale only.
(b) OCSP responses per second per family, ``respond`` on a pre-built request WITH a nonce
    (always signed afresh). Two ratios: to the raw sign rate of the responder key's algorithm
    (``openssl speed``, same run) -- the issue's target, >= 0.5 -- and to the rate of
    ``KeyStore.sign_digest`` with the responder key itself, which every signed response must
    pay (the key store records each signature in the database, in the same transaction).
(c) P-256 OCSP for a request WITHOUT a nonce: may be answered with a response pre-produced
    for the same CertIDs (RFC 5019) after the status is read from the database. Reported
    separately; it is not the (b) number.
(d) Where one signed P-256 OCSP response spends its time (microseconds per stage).

Output lines: ``metric value baseline ratio target``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import ocsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from sqlalchemy import text as sql_text

from medsign.ca import ocsp as ocsp_module
from medsign.ca.authority import CertificateAuthority
from medsign.ca.csr import build_csr
from medsign.ca.names import build_name
from medsign.ca.ocsp import OCSPResponder
from medsign.clock import SystemClock
from medsign.crypto import AlgorithmFamily, KeyAlgorithm
from medsign.db import Database
from medsign.keys import MasterKeyring, SoftwareKeyStore

# openssl speed names for the CA and responder keys, which are the family's default algorithm.
SPEED_NAMES = {
    AlgorithmFamily.P256: "ecdsap256",
    AlgorithmFamily.RSA: "rsa3072",
    AlgorithmFamily.SM2: "sm2",
}
# The subject keys of the CSRs used for each family's issuance line.
CSR_KEYS = {
    AlgorithmFamily.P256: "P-256",
    AlgorithmFamily.RSA: "RSA-2048",
    AlgorithmFamily.SM2: "SM2",
}
ISSUANCE_TARGET = 500.0
OCSP_RATIO_TARGET = 0.5


def library_sign_rate(family: AlgorithmFamily, seconds: float) -> float | None:
    """Sign/s of the same algorithm through ``cryptography`` in this process (its own OpenSSL,
    which may differ from the system ``openssl``); None for SM2, which medsign signs through
    the system libcrypto that ``openssl speed`` measures."""
    digest = hashlib.sha256(b"bench").digest()
    if family is AlgorithmFamily.P256:
        ec_key = ec.generate_private_key(ec.SECP256R1())
        algorithm = ec.ECDSA(Prehashed(hashes.SHA256()))
        return rate(lambda _: ec_key.sign(digest, algorithm), seconds)
    if family is AlgorithmFamily.RSA:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        pkcs1 = padding.PKCS1v15()
        return rate(lambda _: rsa_key.sign(digest, pkcs1, Prehashed(hashes.SHA256())), seconds)
    return None


def openssl_sign_rate(family: AlgorithmFamily, seconds: int) -> float:
    """Single-core sign/s from ``openssl speed`` (its machine-readable -mr output)."""
    name = SPEED_NAMES[family]
    result = subprocess.run(
        ["openssl", "speed", "-mr", "-seconds", str(seconds), name],
        capture_output=True,
        text=True,
        check=True,
    )
    # -mr summary line: "+F<n>:<index>:<bits>[:<curve>]:<sign/s>:<verify/s>".
    for text in result.stdout.splitlines():
        if text.startswith("+F"):
            numbers = [float(f) for f in text.split(":")[3:] if re.fullmatch(r"[\d.]+", f)]
            return numbers[0]
    raise RuntimeError(f"cannot parse openssl speed output:\n{result.stdout}{result.stderr}")


def rate(func: Callable[[int], object], seconds: float, *, batch: int = 20) -> float:
    """Calls per second of ``func(i)`` over about ``seconds`` of wall time."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(batch):
            func(done)
            done += 1
    return done / (time.perf_counter() - start)


def make_csrs(count: int) -> list[bytes]:
    """P-256 CSRs as a client would send them: keys generated outside medsign."""
    out = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        out.append(_csr(key, index))
    return out


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, index: int) -> bytes:
    csr = (
        cx509.CertificateSigningRequestBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, f"Patient {index}")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def make_other_csrs(family: AlgorithmFamily, count: int, keystore: SoftwareKeyStore) -> list[bytes]:
    """RSA-2048 or SM2 CSRs. Key generation is not what is measured, so a few keys are reused
    (RSA-2048 key generation alone would take longer than the measurement); SM2 CSRs are
    signed through the key store, since ``cryptography`` has no SM2."""
    if family is AlgorithmFamily.RSA:
        rsa_keys = [
            rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)
        ]
        return [_csr(rsa_keys[i % len(rsa_keys)], i) for i in range(count)]
    sm2_keys = [keystore.generate(KeyAlgorithm.SM2, label=f"bench-csr-{i}") for i in range(4)]
    return [
        build_csr(
            keystore,
            sm2_keys[i % len(sm2_keys)],
            build_name([("CN", f"Patient {i}")]),
            actor="bench",
        )
        for i in range(count)
    ]


def ocsp_request(issuer_der: bytes, serial_hex: str, *, nonce: bool = True) -> bytes:
    issuer = x509.Certificate.load(issuer_der)
    key_bits = bytes(issuer.public_key["public_key"].contents)[1:]
    cert_id = {
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": hashlib.sha1(issuer.subject.dump()).digest(),
        "issuer_key_hash": hashlib.sha1(key_bits).digest(),
        "serial_number": int(serial_hex, 16),
    }
    tbs: dict[str, object] = {"request_list": [{"req_cert": cert_id}]}
    if nonce:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": os.urandom(16)}]
    return bytes(ocsp.OCSPRequest({"tbs_request": tbs}).dump())


@dataclass(frozen=True)
class OCSPResult:
    responses: float  # signed responses/s, requests with a nonce
    store_rate: float  # KeyStore.sign_digest/s with the responder key
    nonceless: float | None  # responses/s to a request without a nonce (P-256 only)
    stages: dict[str, float] | None  # microseconds per stage (P-256 only)


def microseconds(func: Callable[[], object], seconds: float) -> float:
    return 1e6 / rate(lambda _: func(), seconds)


def ocsp_stages(
    responder: OCSPResponder, keystore: SoftwareKeyStore, request: bytes, seconds: float
) -> dict[str, float]:
    """Where one signed response spends its time, stage by stage (same code as ``respond``)."""
    parsed = ocsp_module._parse_request(request)
    authority = responder._authority_for(parsed.queries)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    current = responder._responder(authority, now)
    serials = [query.serial for query in parsed.queries]
    found = responder._statuses(authority.id, serials)

    def encode() -> bytes:
        return ocsp_module.encode_response_data(
            responder_id_der=current.responder_id_der,
            produced_at=now,
            singles=[(query.cert_id_der, found.get(query.serial)) for query in parsed.queries],
            next_update=now,
            nonce_extension=parsed.nonce_extension,
        )

    tbs = encode()
    digest = current.signer.digest(tbs)
    raw_key = ec.generate_private_key(ec.SECP256R1())
    prehashed = ec.ECDSA(Prehashed(hashes.SHA256()))
    slice_ = seconds / 8
    stages = {
        "parse request": microseconds(lambda: ocsp_module._parse_request(request), slice_),
        "issuer + responder lookup (cached)": microseconds(
            lambda: responder._responder(responder._authority_for(parsed.queries), now), slice_
        ),
        "status lookup (database read)": microseconds(
            lambda: responder._statuses(authority.id, serials), slice_
        ),
        "encode ResponseData": microseconds(encode, slice_),
        "digest": microseconds(lambda: current.signer.digest(tbs), slice_),
        "raw ECDSA P-256 sign (cryptography)": microseconds(
            lambda: raw_key.sign(digest, prehashed), slice_
        ),
        "key store sign_digest (sign + key-use record)": microseconds(
            lambda: keystore.sign_digest(
                current.key.id, current.scheme, digest, actor="ca:ocsp", purpose="ocsp"
            ),
            slice_,
        ),
    }
    stages["(reference: an empty transaction: begin, SELECT 1, commit)"] = microseconds(
        lambda: empty_transaction(responder), slice_
    )
    whole = microseconds(lambda: responder.respond(request), slice_)
    apart = sum(v for k, v in stages.items() if not k.startswith("(") and "raw" not in k)
    stages["sum of the stages above (raw sign is inside the key store)"] = apart
    stages["whole respond(), measured together"] = whole
    return stages


def empty_transaction(responder: OCSPResponder) -> None:
    with responder._db.engine.begin() as connection:
        connection.execute(sql_text("SELECT 1"))


def bench_ocsp(
    family: AlgorithmFamily,
    authority: CertificateAuthority,
    keystore: SoftwareKeyStore,
    responder: OCSPResponder,
    seconds: float,
    profiler: cProfile.Profile | None,
) -> OCSPResult:
    """Signed responses/s, key-store signatures/s with the responder key, and for P-256 the
    nonce-less rate and the stage breakdown."""
    key = keystore.generate(family.default_algorithm, label=f"bench-leaf-{family}")
    leaf = authority.issue_for_key(key.id, {"CN": "Bench leaf"}, "patient-event", actor="bench")
    issuing = authority.issuing_ca(family)
    request = ocsp_request(issuing.certificate_der, leaf.serial_hex)
    first = ocsp.OCSPResponse.load(responder.respond(request))
    assert first["response_status"].native == "successful", first.native
    ocsp_cert = authority.ocsp_responder(issuing.id)
    assert ocsp_cert is not None and ocsp_cert.key_id is not None
    responder_key = ocsp_cert.key_id
    digest = hashlib.sha256(b"bench").digest()
    scheme = family.default_scheme

    if profiler:
        profiler.enable()
    responses = rate(lambda _: responder.respond(request), seconds)
    if profiler:
        profiler.disable()
    store_rate = rate(
        lambda _: keystore.sign_digest(responder_key, scheme, digest, actor="b", purpose="b"),
        seconds / 2,
    )
    nonceless = stages = None
    if family is AlgorithmFamily.P256:
        plain = ocsp_request(issuing.certificate_der, leaf.serial_hex, nonce=False)
        nonceless = rate(lambda _: responder.respond(plain), seconds / 2)
        stages = ocsp_stages(responder, keystore, request, seconds)
    return OCSPResult(responses, store_rate, nonceless, stages)


def line(metric: str, value: float, baseline: float | None, target: str) -> None:
    ratio = f"{value / baseline:.4f}" if baseline else "-"
    base = f"{baseline:.1f}" if baseline else "-"
    print(f"{metric:<46} {value:>10.1f} {base:>10} {ratio:>8}  {target}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--speed-seconds", type=int, default=3, help="openssl speed -seconds")
    parser.add_argument("--families", default="p256,rsa,sm2", help="OCSP families to measure")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured loops")
    args = parser.parse_args()
    families = [AlgorithmFamily(name) for name in args.families.split(",") if name]

    with tempfile.TemporaryDirectory(prefix="medsign-bench-") as tmp:
        directory = Path(tmp)
        database = Database(f"sqlite:///{directory / 'bench.db'}")
        database.upgrade()
        clock = SystemClock()
        keystore = SoftwareKeyStore(database, MasterKeyring.create(directory / "keyring"), clock)
        authority = CertificateAuthority(database, keystore, clock, "http://bench.invalid")
        started = time.perf_counter()
        wanted = sorted({AlgorithmFamily.P256, *families}, key=lambda family: family.value)
        authority.initialise_hierarchy("Bench Hospital", families=wanted)
        print(
            f"# hierarchy for {', '.join(map(str, wanted))} in "
            f"{time.perf_counter() - started:.1f}s; python {sys.version.split()[0]}"
        )
        profiler = cProfile.Profile() if args.profile else None

        # (a) issuance
        # More CSRs than the measurement needs; should it run out, CSRs are issued again.
        csrs = make_csrs(int(args.seconds * 1500) + 200)
        authority.issue_from_csr(csrs[-1], "patient-event", actor="bench")  # warm caches
        if profiler:
            profiler.enable()
        issued = rate(
            lambda i: authority.issue_from_csr(csrs[i % len(csrs)], "patient-event", actor="bench"),
            args.seconds,
        )
        if profiler:
            profiler.disable()
        raw = {AlgorithmFamily.P256: openssl_sign_rate(AlgorithmFamily.P256, args.speed_seconds)}
        for family in families:
            if family not in raw:
                raw[family] = openssl_sign_rate(family, args.speed_seconds)
        print(f"{'metric':<46} {'value':>10} {'baseline':>10} {'ratio':>8}  target")
        print("# issuance from CSRs, certificates/s; baseline: openssl speed sign/s of the CA key")
        target = f">= {ISSUANCE_TARGET:.0f}/s"
        line("issue_p256_per_s (CSR P-256, CA P-256)", issued, raw[AlgorithmFamily.P256], target)
        for family in families:
            if family is AlgorithmFamily.P256:
                continue
            others = make_other_csrs(family, int(args.seconds * 400) + 50, keystore)
            authority.issue_from_csr(others[-1], "patient-event", actor="bench")

            def issue_other(i: int, o: list[bytes] = others) -> object:
                return authority.issue_from_csr(o[i % len(o)], "patient-event", actor="bench")

            other_rate = rate(issue_other, args.seconds / 2, batch=5)
            ca_key = SPEED_NAMES[family]
            name = f"issue_{family}_per_s (CSR {CSR_KEYS[family]}, CA {ca_key})"
            line(name, other_rate, raw[family], "-")

        # (b) OCSP per family
        responder = OCSPResponder(database, keystore, clock, validity=dt.timedelta(minutes=60))
        stages = None
        for family in families:
            result = bench_ocsp(family, authority, keystore, responder, args.seconds, profiler)
            print(
                f"# OCSP {family}, request with nonce (signed every time); target: ratio to "
                f"raw {SPEED_NAMES[family]} sign >= {OCSP_RATIO_TARGET}"
            )
            line(
                f"ocsp_{family}_per_s vs raw sign (TARGET)",
                result.responses,
                raw[family],
                f">= {OCSP_RATIO_TARGET}",
            )
            line(
                f"ocsp_{family}_per_s vs key-store sign",
                result.responses,
                result.store_rate,
                "(context)",
            )
            in_process = library_sign_rate(family, args.seconds / 3)
            if in_process is not None:
                line(
                    f"ocsp_{family}_per_s vs in-process raw sign",
                    result.responses,
                    in_process,
                    "(context: cryptography's OpenSSL)",
                )
            if result.nonceless is not None:
                line(
                    f"ocsp_{family}_no_nonce_per_s vs raw sign",
                    result.nonceless,
                    raw[family],
                    "(RFC 5019 reuse)",
                )
            if result.stages is not None:
                stages = result.stages
        if stages is not None:
            print(
                "# one signed P-256 OCSP response, microseconds per stage (each measured apart; "
                "together they run slower, the caches being shared)"
            )
            for stage, micros in stages.items():
                print(f"#   {stage:<60} {micros:8.1f} us")
            budget = 1e6 / (OCSP_RATIO_TARGET * raw[AlgorithmFamily.P256])
            print(f"#   {'budget per response for the 0.5 x raw target':<60} {budget:8.1f} us")

        if profiler:
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(35)
        database.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
