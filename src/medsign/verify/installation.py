"""The verifier of an installation: its root CAs, extra configured anchors, its status history."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from medsign.clock import Clock
from medsign.db import Database
from medsign.errors import ConfigurationError, InputError
from medsign.verify.chain import TrustStore
from medsign.verify.data import Verifier
from medsign.verify.status import DatabaseStatusSource


def installation_verifier(
    database: Database,
    clock: Clock,
    *,
    roots: Callable[[], Iterable[bytes]],
    intermediates: Callable[[], Iterable[bytes]] | None = None,
    extra_anchors: Path | None = None,
) -> Verifier:
    """``roots`` (trusted) and ``intermediates`` (issuing CAs, used to build paths) are asked
    on every verification, so CA families added later are covered too.

    ``extra_anchors`` (a PEM file) adds anchors for external CAs used in RA mode; a file that
    cannot be read stops start-up rather than silently trusting less.
    """
    trust = TrustStore(provider=roots, provider_source="medsign", intermediates=intermediates)
    if extra_anchors is not None:
        try:
            trust.add_file(extra_anchors, source="configured")
        except InputError as exc:
            raise ConfigurationError(f"trust anchor file {extra_anchors}: {exc}") from exc
    return Verifier(trust, DatabaseStatusSource(database, clock), clock)


__all__ = ["installation_verifier"]
