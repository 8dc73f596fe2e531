from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medsign.api.app import create_app


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


@pytest.fixture(scope="module")
def admin_headers(installation: tuple[Any, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {installation[1]}"}


@pytest.fixture(scope="module")
def client(runtime: Any) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, schedule=False)) as test_client:
        yield test_client
