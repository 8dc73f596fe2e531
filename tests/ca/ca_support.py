"""Helpers shared by the CA core tests (fixtures are in ``conftest.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from medsign.ca.authority import pem_encode

BASE_URL = "https://sign.example-hospital.cn"
ORGANIZATION = "示例医院"
# medsign signs SM2 with the GM/T 0009 default ID. OpenSSL 3.0 verifies with an empty ID
# unless told otherwise, and ``-vfyopt`` reaches only the target certificate, not the
# intermediates: SM2 chains are therefore checked one link at a time.
SM2_VERIFY_OPTS = ["-vfyopt", "distid:1234567812345678"]


class OpenSSL:
    """Runs ``openssl`` in a scratch directory and fails the test with its output on error."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["openssl", *map(str, args)], cwd=self.cwd, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"openssl {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def write(self, name: str, der: bytes, label: str = "CERTIFICATE") -> Path:
        path = self.cwd / name
        path.write_text(pem_encode(der, label))
        return path

    def read(self, name: str) -> bytes:
        return (self.cwd / name).read_bytes()
