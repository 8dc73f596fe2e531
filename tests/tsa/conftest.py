"""Fixtures for the time-stamping tests: the installation's TSA, and TSAs built around it with
other keys, clocks and clock references."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import cms, core, tsp

from medsign.clock import Clock
from medsign.crypto import KeyAlgorithm
from medsign.tsa import ClockGuard, TimestampAuthority, TSACredentials


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


def roots(runtime: Any) -> list[bytes]:
    return [ca.certificate_der for ca in runtime.authority.list_cas() if ca.level == "root"]


def intermediates(runtime: Any) -> list[bytes]:
    return [ca.certificate_der for ca in runtime.authority.list_cas() if ca.level != "root"]


def tsa_credentials(runtime: Any, algorithm: KeyAlgorithm) -> TSACredentials:
    key = runtime.keystore.generate(algorithm, label=f"test-tsa:{algorithm}")
    record = runtime.authority.issue_for_key(
        key.id, {"CN": f"Test TSA {algorithm}", "O": "Test"}, "tsa", actor="test"
    )
    return TSACredentials(key.id, record.certificate_der)


TSAFactory = Callable[..., TimestampAuthority]


@pytest.fixture(scope="module")
def make_tsa(runtime: Any) -> TSAFactory:
    """A TSA on the installation's database and key store with chosen parts replaced."""
    default = runtime.tsa._credentials()
    cache: dict[KeyAlgorithm, TSACredentials] = {}

    def factory(
        *,
        algorithm: KeyAlgorithm | None = None,
        clock: Clock | None = None,
        guard: ClockGuard | None = None,
        **kwargs: Any,
    ) -> TimestampAuthority:
        credentials = default
        if algorithm is not None:
            if algorithm not in cache:
                cache[algorithm] = tsa_credentials(runtime, algorithm)
            credentials = cache[algorithm]
        return TimestampAuthority(
            runtime.database,
            runtime.keystore,
            clock or runtime.clock,
            lambda: credentials,
            guard=guard,
            **kwargs,
        )

    return factory


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp; asn1crypto's own makes the token mandatory, which rejections
    (rightly) do not carry."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]
