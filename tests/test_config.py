from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from medsign.config import Environment, load_settings


def test_defaults_use_sqlite_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("MEDSIGN_"):
            monkeypatch.delenv(key)
    settings = load_settings(tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'medsign.db').resolve()}"
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.port == 8000


def test_file_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "medsign.toml").write_text('port = 9000\npublic_base_url = "https://ca.h/"\n')
    assert load_settings(tmp_path).port == 9000
    assert load_settings(tmp_path).public_base_url == "https://ca.h"
    monkeypatch.setenv("MEDSIGN_PORT", "9100")
    assert load_settings(tmp_path).port == 9100
    assert load_settings(tmp_path, port=9200).port == 9200


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSIGN_DATA_DIR", str(tmp_path))
    assert load_settings().data_dir == tmp_path


def test_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        load_settings(tmp_path, port=70000)
    (tmp_path / "medsign.toml").write_text("no_such_setting = 1\n")
    with pytest.raises(ValidationError):
        load_settings(tmp_path)


def test_secrets_do_not_print(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, master_secret="c2VjcmV0", pkcs11_pin="1234")
    assert "c2VjcmV0" not in repr(settings)
    assert "1234" not in str(settings.model_dump())
