"""POST /pki/tsa through the ASGI app."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medsign.api.app import create_app
from medsign.tsa import parse_token
from tests.tsa.conftest import TimeStampResp
from tests.tsa.test_authority import request

QUERY = {"Content-Type": "application/timestamp-query"}


@pytest.fixture(scope="module")
def client(runtime: Any) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, schedule=False)) as test_client:
        yield test_client


def test_granted(client: TestClient) -> None:
    response = client.post("/pki/tsa", content=request(b"abc", nonce=99), headers=QUERY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    parsed = TimeStampResp.load(response.content)
    assert parsed["status"]["status"].native == "granted"
    info = parse_token(parsed["time_stamp_token"].dump())
    assert info.nonce == 99
    assert info.imprint == hashlib.sha256(b"abc").digest()


def test_garbage_is_a_rejection_not_an_error(client: TestClient) -> None:
    for body in (b"", b"garbage", b"\x30" * 20000):
        response = client.post("/pki/tsa", content=body, headers=QUERY)
        assert response.status_code == 200
        assert TimeStampResp.load(response.content)["status"]["status"].native == "rejection"


def test_wrong_content_type(client: TestClient) -> None:
    response = client.post(
        "/pki/tsa", content=request(), headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "timestamp-media-type"
