"""`medsign init` and `medsign serve` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_database_url

MEDSIGN = [sys.executable, "-m", "medsign.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MEDSIGN_")}
    base["MEDSIGN_LOG_LEVEL"] = "WARNING"
    return subprocess.run(
        [*MEDSIGN, *args], capture_output=True, text=True, env={**base, **(env or {})}
    )


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield from make_database_url(tmp_path)


def test_init_is_idempotent_and_shows_the_token_once(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "data"
    first = run("init", "--data-dir", str(data), "--database-url", database_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("msadm_") == 1
    for family in ("rsa", "p256", "sm2"):
        assert first.stdout.count(f" {family} ") >= 2, first.stdout  # root and issuing CA
    assert (data / "medsign.toml").is_file()
    masters = list((data / "keystore").glob("master-*.key"))
    assert masters and all(m.stat().st_mode & 0o077 == 0 for m in masters)
    assert data.stat().st_mode & 0o077 == 0

    second = run("init", "--data-dir", str(data), "--database-url", database_url)
    assert second.returncode == 0, second.stderr
    assert "msadm_" not in second.stdout
    assert "already initialised" in second.stdout
    assert second.stdout.count("CA ") == first.stdout.count("CA ")

    token = run("admin", "token", "--name", "ops", "--data-dir", str(data))
    assert token.returncode == 0 and "msadm_" in token.stdout


def test_data_dir_from_environment(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "envdata"
    result = run("init", "--database-url", database_url, env={"MEDSIGN_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert (data / ".initialised").is_file()
    cas = run("ca", "cas", env={"MEDSIGN_DATA_DIR": str(data)})
    assert cas.returncode == 0 and "issuing" in cas.stdout


def test_serve_refuses_an_uninitialised_directory(tmp_path: Path) -> None:
    result = run("serve", "--data-dir", str(tmp_path / "nothing"), "--port", "1")
    assert result.returncode != 0
    assert "medsign init" in result.stderr
    assert "Traceback" not in result.stderr


def test_master_rotation_from_the_cli_keeps_keys_usable(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "data"
    assert run("init", "--data-dir", str(data), "--database-url", database_url).returncode == 0
    rotated = run("keys", "rotate-master", "--data-dir", str(data))
    assert rotated.returncode == 0, rotated.stderr
    assert "master version 2" in rotated.stdout
    retired = run("keys", "retire-master", "--data-dir", str(data))
    assert retired.returncode == 0 and "1" in retired.stdout, retired.stdout + retired.stderr
    assert [p.name for p in (data / "keystore").glob("master-*.key")] == ["master-2.key"]
    out = tmp_path / "crl.pem"
    crl = run("ca", "crl", "--out", str(out), "--data-dir", str(data))
    assert crl.returncode == 0, crl.stderr  # CA keys still sign after rotation
    uses = run("keys", "uses", "--limit", "5", "--data-dir", str(data))
    assert uses.returncode == 0 and "crl" in uses.stdout.lower(), uses.stdout
