"""Application fixtures: a database with one organization, a sealer, a registry and an
authenticator, all on a FixedClock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from medsign.apps.auth import RequestAuthenticator
from medsign.apps.registry import ApplicationRegistry
from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.identity.organizations import ensure_organization
from medsign.keys.keyring import MasterKeyring
from medsign.keys.sealing import DataSealer


@dataclass
class Apps:
    database: Database
    clock: FixedClock
    sealer: DataSealer
    registry: ApplicationRegistry
    auth: RequestAuthenticator
    organization_id: str


@pytest.fixture
def keyring(tmp_path: Path) -> MasterKeyring:
    return MasterKeyring.create(tmp_path / "keystore")


@pytest.fixture
def apps(database: Database, clock: FixedClock, keyring: MasterKeyring) -> Apps:
    organization = ensure_organization(database, clock, code="demo", name="示例人民医院", demo=True)
    sealer = DataSealer(keyring, database)
    registry = ApplicationRegistry(database, sealer, clock)
    return Apps(
        database,
        clock,
        sealer,
        registry,
        RequestAuthenticator(database, registry, clock),
        organization.id,
    )
