"""TEST ORACLE ONLY: a slow, variable-time SM2 signer whose nonce k can be injected.

OpenSSL draws k itself, so the published GB/T 32918 answers (which fix k) can only be
reproduced by an implementation that takes k as an argument. This one is written straight
from GB/T 32918.2 §6.1 with affine arithmetic; it is never used outside the tests.
"""

from __future__ import annotations

from medsign.crypto.sm2 import Curve

Point = tuple[int, int] | None  # None is the point at infinity

# GB/T 32918.2 Annex A.1 (and GB/T 32918.5 Annex A): the 256-bit prime-field *test* curve
# the standard's worked example uses. Not a curve for real keys.
GBT32918_TEST_CURVE = Curve(
    name="gbt32918-annexA-fp256",
    p=0x8542D69E_4C044F18_E8B92435_BF6FF7DE_45728391_5C45517D_722EDB8B_08F1DFC3,
    a=0x787968B4_FA32C3FD_2417842E_73BBFEFF_2F3C848B_6831D7E0_EC65228B_3937E498,
    b=0x63E4C6D3_B23B0C84_9CF84241_484BFE48_F61D59A5_B16BA06E_6E12D1DA_27C5249A,
    gx=0x421DEBD6_1B62EAB6_746434EB_C3CC315E_32220B3B_ADD50BDC_4C4E6C14_7FEDD43D,
    gy=0x0680512B_CBB42C07_D47349D2_153B70C4_E5D7FDFC_BFA36EA1_A85841B9_E46E09A2,
    n=0x8542D69E_4C044F18_E8B92435_BF6FF7DD_29772063_0485628D_5AE74EE7_C32E79B7,
)


def add(curve: Curve, p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    p = curve.p
    if x1 == x2:
        if (y1 + y2) % p == 0:
            return None
        lam = (3 * x1 * x1 + curve.a) * pow(2 * y1, -1, p) % p
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, p) % p
    x3 = (lam * lam - x1 - x2) % p
    return x3, (lam * (x1 - x3) - y1) % p


def multiply(curve: Curve, k: int, point: Point) -> Point:
    result: Point = None
    addend = point
    while k:
        if k & 1:
            result = add(curve, result, addend)
        addend = add(curve, addend, addend)
        k >>= 1
    return result


def public_point(curve: Curve, d: int) -> tuple[int, int]:
    point = multiply(curve, d, (curve.gx, curve.gy))
    assert point is not None
    return point


def sign_with_k(curve: Curve, d: int, e: bytes, k: int) -> tuple[int, int]:
    """GB/T 32918.2 §6.1 steps A4–A6 with a caller-chosen k."""
    n = curve.n
    kg = multiply(curve, k, (curve.gx, curve.gy))
    assert kg is not None
    r = (int.from_bytes(e, "big") + kg[0]) % n
    if r == 0 or r + k == n:
        raise ValueError("k unusable; the standard says pick another")
    s = pow(1 + d, -1, n) * (k - r * d) % n
    if s == 0:
        raise ValueError("k unusable; the standard says pick another")
    return r, s


def verify(curve: Curve, point: tuple[int, int], e: bytes, r: int, s: int) -> bool:
    """GB/T 32918.2 §7.1, for cross-checking signatures made by OpenSSL on the test curve."""
    n = curve.n
    if not (1 <= r < n and 1 <= s < n):
        return False
    t = (r + s) % n
    if t == 0:
        return False
    sum_point = add(curve, multiply(curve, s, (curve.gx, curve.gy)), multiply(curve, t, point))
    if sum_point is None:
        return False
    return (int.from_bytes(e, "big") + sum_point[0]) % n == r
