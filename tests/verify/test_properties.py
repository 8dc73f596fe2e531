"""Arbitrary and mutated input: always a report, never an exception."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsign.verify import CMSSignature, Indication, SignedContent
from tests.verify.support import openssl_signer

DATA = b"lab result 42"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=400))
def test_arbitrary_bytes_are_a_format_failure(runtime: Any, blob: bytes) -> None:
    report = runtime.verifier.verify(CMSSignature(blob, SignedContent(DATA)))
    assert report.indication is not Indication.PASSED


def test_mutated_cms_never_raises(runtime: Any, work: Path) -> None:
    signed = openssl_signer(runtime, work).sign_cms(DATA, work)
    rng = random.Random(20261123)
    outcomes = set()
    for _ in range(300):
        mutated = bytearray(signed)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        report = runtime.verifier.verify(CMSSignature(bytes(mutated), SignedContent(DATA)))
        outcomes.add(report.indication)
    # Bytes outside the signed parts (e.g. the version) may change harmlessly; the property
    # is that every mutation gets a report.
    assert outcomes & {Indication.FAILED, Indication.INDETERMINATE}
