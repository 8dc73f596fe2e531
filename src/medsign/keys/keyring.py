"""Versioned master secrets for the software key store, kept outside the database.

A database dump (backup, replica, stolen disk of the DB host) must not be enough to use a
key, so the secret that wraps private keys lives in files beside the data directory — or is
handed in by configuration (an environment variable filled from a secrets manager).

Layout: ``<data-dir>/keystore/master-<N>.key``, each holding 32 random bytes in base64, file
mode 0600 in a 0700 directory. The highest version is current: new keys are wrapped under it.
Older versions stay until every row has been re-wrapped (see
``SoftwareKeyStore.rotate_master``), then ``retire`` deletes them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import threading
from pathlib import Path

from medsign.errors import ConfigurationError, KeyUseError, StateError

SECRET_SIZE = 32
_FILE_NAME = re.compile(r"^master-([1-9][0-9]{0,8})\.key$")


def _decode_secret(text: str, where: str) -> bytes:
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"{where}: master secret is not valid base64") from exc
    if len(secret) != SECRET_SIZE:
        raise ConfigurationError(f"{where}: master secret must be {SECRET_SIZE} bytes")
    return secret


def _write_secret_file(directory: Path, version: int) -> bytes:
    path = directory / f"master-{version}.key"
    secret = secrets.token_bytes(SECRET_SIZE)
    # O_EXCL: two operators rotating at once must not overwrite each other's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise StateError(f"master key version {version} already exists") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(secret).decode("ascii") + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return secret


def _check_private(path: Path, *, directory: bool) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        kind = "directory" if directory else "file"
        wanted = "0700" if directory else "0600"
        raise ConfigurationError(
            f"master key {kind} {path} is readable by others (mode {mode:04o});"
            f" run: chmod {wanted} {path}"
        )


class MasterKeyring:
    """Master secrets by version. Never prints or logs a secret."""

    def __init__(self, secrets_by_version: dict[int, bytes], directory: Path | None) -> None:
        if not secrets_by_version:
            raise ConfigurationError("a master keyring needs at least one secret")
        self._secrets = dict(secrets_by_version)
        self._directory = directory
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = str(self._directory) if self._directory else "configuration"
        return f"<MasterKeyring {where} versions={list(self.versions)}>"

    @classmethod
    def create(cls, directory: str | Path) -> MasterKeyring:
        """Make the directory and a first secret (version 1); refuse to overwrite one."""
        path = Path(directory)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        if any(_FILE_NAME.match(p.name) for p in path.iterdir()):
            raise ConfigurationError(f"{path} already holds master secrets; use load()")
        return cls({1: _write_secret_file(path, 1)}, path)

    @classmethod
    def load(cls, directory: str | Path) -> MasterKeyring:
        path = Path(directory)
        if not path.is_dir():
            raise ConfigurationError(
                f"master key directory {path} does not exist; run `medsign init` first"
            )
        found = cls._scan(path)
        if not found:
            raise ConfigurationError(f"no master secret (master-<N>.key) in {path}")
        return cls(found, path)

    @classmethod
    def from_secret(cls, encoded: str) -> MasterKeyring:
        """A single secret given by configuration (base64), used as version 1."""
        return cls({1: _decode_secret(encoded, "configured master_secret")}, None)

    @staticmethod
    def _scan(path: Path) -> dict[int, bytes]:
        _check_private(path, directory=True)
        found: dict[int, bytes] = {}
        for entry in path.iterdir():
            match = _FILE_NAME.match(entry.name)
            if not match:
                continue
            _check_private(entry, directory=False)
            found[int(match.group(1))] = _decode_secret(entry.read_text("ascii"), str(entry))
        return found

    @property
    def directory(self) -> Path | None:
        return self._directory

    @property
    def versions(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(sorted(self._secrets))

    @property
    def current_version(self) -> int:
        with self._lock:
            return max(self._secrets)

    def secret(self, version: int) -> bytes:
        """The secret of ``version``, re-reading the directory once if it is not known yet.

        Another process may have rotated: its rows name a version this process has not seen.
        """
        with self._lock:
            found = self._secrets.get(version)
        if found is None and self._directory is not None:
            self.refresh()
            with self._lock:
                found = self._secrets.get(version)
        if found is None:
            raise KeyUseError(f"master key version {version} is not available")
        return found

    def refresh(self) -> None:
        """Pick up versions added or retired by another process."""
        if self._directory is None:
            return
        found = self._scan(self._directory)
        if not found:
            raise ConfigurationError(f"no master secret left in {self._directory}")
        with self._lock:
            self._secrets = found

    def add_version(self) -> int:
        """Write a new secret and make it current; returns its version."""
        if self._directory is None:
            raise ConfigurationError(
                "the master secret comes from configuration and cannot be rotated here;"
                " move to a keyring directory (unset master_secret) to rotate"
            )
        self.refresh()
        with self._lock:
            version = max(self._secrets) + 1
        secret = _write_secret_file(self._directory, version)
        with self._lock:
            self._secrets[version] = secret
        return version

    def retire(self, version: int) -> None:
        """Forget and delete an old version. The caller checks no row still uses it."""
        if self._directory is None:
            raise ConfigurationError("a configured master secret cannot be retired")
        with self._lock:
            if version not in self._secrets:
                raise StateError(f"master key version {version} is not present")
            if version == max(self._secrets):
                raise StateError(f"master key version {version} is current")
            del self._secrets[version]
        (self._directory / f"master-{version}.key").unlink(missing_ok=True)
