"""CA throughput: certificate issuance and OCSP responses, against baselines from the same run.

    .venv/bin/python bench/bench_ca.py [--seconds 3] [--families p256,rsa,sm2] [--profile]

Set-up: a temporary SQLite database (migrated), a software key store and the CA hierarchy.
Measured:

(a) P-256 issuance per second from pre-made CSRs (``issue_from_csr``, CSR check, signing,
    key-use record and certificate row included). Baseline: ``openssl speed ecdsap256``
    sign/s, the raw rate of the CA key's algorithm. Target: 500 issuances/s on one core.
(b) OCSP responses per second (``respond`` on a pre-built request with a nonce) per family.
    Baselines: the raw sign rate of the responder key's algorithm (``openssl speed``), and the
    rate of ``KeyStore.sign_digest`` on the responder key itself, which every response must
    pay (the key store records each signature in the database). Target: ratio >= 0.5.

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
from pathlib import Path

from asn1crypto import ocsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medsign.ca.authority import CertificateAuthority
from medsign.ca.ocsp import OCSPResponder
from medsign.clock import SystemClock
from medsign.crypto import AlgorithmFamily
from medsign.db import Database
from medsign.keys import MasterKeyring, SoftwareKeyStore

SPEED_NAMES = {
    AlgorithmFamily.P256: "ecdsap256",
    AlgorithmFamily.RSA: "rsa3072",
    AlgorithmFamily.SM2: "sm2",
}
ISSUANCE_TARGET = 500.0
OCSP_RATIO_TARGET = 0.5


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
    """CSRs as a client would send them: keys generated outside medsign."""
    out = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            cx509.CertificateSigningRequestBuilder()
            .subject_name(
                cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, f"Patient {index}")])
            )
            .sign(key, hashes.SHA256())
        )
        out.append(csr.public_bytes(serialization.Encoding.DER))
    return out


def ocsp_request(issuer_der: bytes, serial_hex: str) -> bytes:
    issuer = x509.Certificate.load(issuer_der)
    key_bits = bytes(issuer.public_key["public_key"].contents)[1:]
    cert_id = {
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": hashlib.sha1(issuer.subject.dump()).digest(),
        "issuer_key_hash": hashlib.sha1(key_bits).digest(),
        "serial_number": int(serial_hex, 16),
    }
    request = ocsp.OCSPRequest(
        {
            "tbs_request": {
                "request_list": [{"req_cert": cert_id}],
                "request_extensions": [{"extn_id": "nonce", "extn_value": os.urandom(16)}],
            }
        }
    )
    return bytes(request.dump())


def bench_ocsp(
    family: AlgorithmFamily,
    authority: CertificateAuthority,
    keystore: SoftwareKeyStore,
    responder: OCSPResponder,
    seconds: float,
    profiler: cProfile.Profile | None,
) -> tuple[float, float]:
    """(responses/s, key-store signatures/s with the responder key) for one family."""
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
    return responses, store_rate


def line(metric: str, value: float, baseline: float | None, target: str) -> None:
    ratio = f"{value / baseline:.4f}" if baseline else "-"
    base = f"{baseline:.1f}" if baseline else "-"
    print(f"{metric:<34} {value:>10.1f} {base:>10} {ratio:>8}  {target}", flush=True)


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
        csrs = make_csrs(int(args.seconds * 1500) + 200)
        authority.issue_from_csr(csrs[-1], "patient-event", actor="bench")  # warm caches
        if profiler:
            profiler.enable()
        issued = rate(
            lambda i: authority.issue_from_csr(csrs[i], "patient-event", actor="bench"),
            args.seconds,
        )
        if profiler:
            profiler.disable()
        raw_p256 = openssl_sign_rate(AlgorithmFamily.P256, args.speed_seconds)
        print(f"{'metric':<34} {'value':>10} {'baseline':>10} {'ratio':>8}  target")
        line("issue_p256_per_s (vs raw sign)", issued, raw_p256, f">= {ISSUANCE_TARGET:.0f}/s")

        # (b) OCSP per family
        responder = OCSPResponder(database, keystore, clock, validity=dt.timedelta(minutes=60))
        for family in families:
            responses, store_rate = bench_ocsp(
                family, authority, keystore, responder, args.seconds, profiler
            )
            raw = (
                raw_p256
                if family is AlgorithmFamily.P256
                else openssl_sign_rate(family, args.speed_seconds)
            )
            target = f">= {OCSP_RATIO_TARGET}"
            line(f"ocsp_{family}_per_s (vs raw sign)", responses, raw, target)
            line(f"ocsp_{family}_per_s (vs key store)", responses, store_rate, target)

        if profiler:
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(35)
        database.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
