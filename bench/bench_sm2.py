"""SM2 signing and verification rates: medsign against ``openssl speed sm2`` in the same run.

Run: ``.venv/bin/python bench/bench_sm2.py [--seconds N]``. Prints rates and ratios; the target
is medsign ≥ 0.5 × OpenSSL. Benchmarks report, they do not assert, so this always exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from medsign.crypto import SignatureScheme, message_digest, verify
from medsign.crypto.private import PrivateKey
from medsign.crypto.sm2 import SM2PrivateKey, sm2_verify_digest
from medsign.crypto.types import KeyAlgorithm

TARGET = 0.5
MESSAGE = b"discharge summary " * 64  # ~1 KiB, a typical signed form digest input


def rate(operation: Callable[[], object], seconds: float) -> float:
    operation()  # warm caches (SPKI parse, provider fetch) outside the timed loop
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            operation()
        count += 50
    return count / (time.perf_counter() - start)


def threaded_rate(operation: Callable[[], object], seconds: float, workers: int) -> float:
    def worker() -> int:
        count = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in range(50):
                operation()
            count += 50
        return count

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(lambda _: worker(), range(workers)))
    return total / (time.perf_counter() - start)


def openssl_speed(seconds: int) -> tuple[float, float] | None:
    if shutil.which("openssl") is None:
        return None
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "sm2"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    # e.g. " 256 bits SM2 (CurveSM2)   0.0002s   0.0002s   4212.4   4340.3"
    match = re.search(r"SM2 \(CurveSM2\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", out)
    if match is None:
        print("could not parse `openssl speed sm2` output:\n" + out, file=sys.stderr)
        return None
    return float(match.group(1)), float(match.group(2))


def gmssl_rates(seconds: float) -> tuple[float, float] | None:
    try:
        from gmssl import sm2 as gm  # type: ignore[import-untyped]
    except ImportError:
        return None
    d = os.urandom(32).hex()
    public = gm.CryptSM2(private_key=d, public_key="")._kg(int(d, 16), gm.default_ecc_table["g"])
    signer = gm.CryptSM2(private_key=d, public_key=public)
    signature = signer.sign_with_sm3(MESSAGE)
    return (
        rate(lambda: signer.sign_with_sm3(MESSAGE), seconds),
        rate(lambda: signer.verify_with_sm3(signature, MESSAGE), seconds),
    )


def ratio(value: float, baseline: float | None) -> str:
    if not baseline:
        return "   n/a"
    mark = "ok" if value / baseline >= TARGET else "BELOW TARGET"
    return f"{value / baseline:6.2f}  {mark}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=3, help="openssl speed time per op")
    parser.add_argument("--no-gmssl", action="store_true", help="skip the pure-Python baseline")
    args = parser.parse_args()
    ours = max(1.0, args.seconds / 1.5)

    baseline = openssl_speed(args.seconds)
    ossl_sign, ossl_verify = baseline if baseline else (None, None)

    key = SM2PrivateKey.generate()
    spki = key.public_key_der()
    e = hashlib.new("sm3", MESSAGE).digest()
    signature = key.sign_digest(e)

    wrapped = PrivateKey.generate(KeyAlgorithm.SM2)
    public = wrapped.public_key()
    scheme = SignatureScheme.SM2_SM3
    message_signature = wrapped.sign_digest(scheme, message_digest(public, scheme, MESSAGE))

    results = {
        "sign_digest": rate(lambda: key.sign_digest(e), ours),
        "verify_digest": rate(lambda: sm2_verify_digest(spki, e, signature), ours),
        "sign message (Z+SM3+sign)": rate(
            lambda: wrapped.sign_digest(scheme, message_digest(public, scheme, MESSAGE)), ours
        ),
        "verify message (Z+SM3+verify)": rate(
            lambda: verify(public, scheme, MESSAGE, message_signature), ours
        ),
    }
    workers = os.cpu_count() or 1
    if workers > 1:
        results[f"sign_digest, {workers} threads"] = threaded_rate(
            lambda: key.sign_digest(e), ours, workers
        )

    print(f"openssl speed sm2 ({args.seconds}s/op):", end=" ")
    print(f"{ossl_sign:.0f} sign/s, {ossl_verify:.0f} verify/s" if baseline else "unavailable")
    print(f"\n{'medsign SM2':34} {'ops/s':>9}  ratio vs openssl (target >= {TARGET})")
    for name, value in results.items():
        base = ossl_verify if "verify" in name else ossl_sign
        print(f"  {name:32} {value:9.0f}  {ratio(value, base)}")

    if not args.no_gmssl:
        gm = gmssl_rates(min(2.0, ours))
        if gm is None:
            print("\ngmssl not installed; pure-Python baseline skipped")
        else:
            print(f"\n{'gmssl (pure Python, message level)':34} {'ops/s':>9}  ratio vs openssl")
            print(f"  {'sign_with_sm3':32} {gm[0]:9.1f}  {ratio(gm[0], ossl_sign)}")
            print(f"  {'verify_with_sm3':32} {gm[1]:9.1f}  {ratio(gm[1], ossl_verify)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
