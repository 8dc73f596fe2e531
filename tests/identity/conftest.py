from __future__ import annotations

from pathlib import Path

import pytest

from medsign.clock import FixedClock
from medsign.db.session import Database
from tests.identity.support import Services, build_services


@pytest.fixture
def services(database: Database, clock: FixedClock, tmp_path: Path) -> Services:
    return build_services(database, clock, tmp_path)
