from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.verify.support import OpenSSLSigner, openssl_signer


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verify-work")


@pytest.fixture(scope="module")
def tsa(runtime: Any, work: Path) -> OpenSSLSigner:
    """A time-stamping unit: openssl holds the key, medsign's CA certified it (tsa profile)."""
    return openssl_signer(runtime, work, profile="tsa", subject="/CN=Test TSA/O=Demo Hospital")


@pytest.fixture(scope="module")
def tsa_chain(tsa: OpenSSLSigner, work: Path) -> Path:
    path = work / "tsa-chain.pem"
    path.write_text(tsa.certificate.read_text())
    return path
