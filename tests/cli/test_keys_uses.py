"""`medsign keys uses` lists reservations (the TSA's key use) and finds the one covering a
token's serial."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from click.testing import CliRunner

from medsign.cli.main import main
from medsign.tsa import parse_token


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


def test_reservations_are_listed_and_found_by_serial(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDSIGN_DATABASE_URL", runtime.settings.resolved_database_url)
    serial = parse_token(runtime.tsa.stamp(hashlib.sha256(b"x").digest(), "sha256")).serial
    key_id = runtime.tsa._credentials().key_id
    data_dir = str(runtime.settings.data_dir)

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(main, ["keys", "uses", *args, "--data-dir", data_dir])

    listed = invoke("--key-id", key_id)
    assert listed.exit_code == 0, listed.output
    assert "timestamp by tsa reserved uses=1000 serials=" in listed.output
    found = invoke("--key-id", key_id, "--serial", str(serial))
    assert found.exit_code == 0, found.output
    lines = [line for line in found.output.splitlines() if " by tsa " in line]  # not log lines
    assert len(lines) == 1 and "reserved uses=1000" in lines[0]
    missing = invoke("--key-id", key_id, "--serial", str(serial + 10**9))
    assert missing.exit_code != 0
    assert "no reservation" in missing.output
    assert invoke("--serial", "1").exit_code == 2  # --serial needs --key-id
