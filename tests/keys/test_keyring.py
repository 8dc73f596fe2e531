from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from medsign.errors import ConfigurationError, KeyUseError
from medsign.keys import MasterKeyring


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_and_load(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "keystore"
    ring = MasterKeyring.create(directory)
    assert ring.versions == (1,)
    assert ring.current_version == 1
    assert _mode(directory) == 0o700
    key_file = directory / "master-1.key"
    assert _mode(key_file) == 0o600
    assert base64.b64decode(key_file.read_text()) == ring.secret(1)
    assert len(ring.secret(1)) == 32

    loaded = MasterKeyring.load(directory)
    assert loaded.secret(1) == ring.secret(1)
    assert key_file.read_text().strip() not in repr(loaded)

    with pytest.raises(ConfigurationError, match="already holds"):
        MasterKeyring.create(directory)


def test_versions_and_refresh(tmp_path: Path) -> None:
    ring = MasterKeyring.create(tmp_path)
    other = MasterKeyring.load(tmp_path)
    assert ring.add_version() == 2
    assert ring.current_version == 2
    assert other.current_version == 1
    # Another process sees a version it does not know yet by re-reading the directory.
    assert other.secret(2) == ring.secret(2)
    assert other.current_version == 2
    with pytest.raises(KeyUseError, match="version 7"):
        ring.secret(7)
    ring.retire(1)
    other.refresh()
    assert other.versions == (2,)


def test_load_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        MasterKeyring.load(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match="no master secret"):
        MasterKeyring.load(empty)

    MasterKeyring.create(tmp_path / "loose")
    (tmp_path / "loose" / "master-1.key").chmod(0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        MasterKeyring.load(tmp_path / "loose")

    bad = tmp_path / "bad"
    bad.mkdir(mode=0o700)
    (bad / "master-1.key").write_text("not base64!")
    (bad / "master-1.key").chmod(0o600)
    with pytest.raises(ConfigurationError, match="base64"):
        MasterKeyring.load(bad)


def test_from_secret() -> None:
    secret = bytes(range(32))
    ring = MasterKeyring.from_secret(base64.b64encode(secret).decode())
    assert ring.secret(1) == secret
    assert ring.versions == (1,)
    with pytest.raises(ConfigurationError, match="32 bytes"):
        MasterKeyring.from_secret(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigurationError, match="base64"):
        MasterKeyring.from_secret("@@@")
