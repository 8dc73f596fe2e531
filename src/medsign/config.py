"""Typed settings: environment variables (``MEDSIGN_*``) over ``<data-dir>/medsign.toml``.

Secrets are ``SecretStr`` so they never print in reprs or logs.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_NAME = "medsign.toml"
DEFAULT_DATA_DIR = Path("./medsign-data")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class KeyStoreKind(StrEnum):
    SOFTWARE = "software"
    PKCS11 = "pkcs11"


def data_dir_from_env(explicit: str | Path | None = None) -> Path:
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get("MEDSIGN_DATA_DIR", DEFAULT_DATA_DIR))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDSIGN_", extra="forbid")

    data_dir: Path = DEFAULT_DATA_DIR
    environment: Environment = Environment.DEVELOPMENT
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite in the data directory"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL written into certificates (AIA, CRL distribution points)",
    )
    keystore: KeyStoreKind = KeyStoreKind.SOFTWARE
    master_secret: SecretStr | None = Field(
        default=None,
        description="Base64 master secret for the software key store; default: a file in the"
        " data directory (keystore/master-*.key)",
    )
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_pin: SecretStr | None = None
    crl_validity_hours: int = Field(default=24, ge=1, le=24 * 30)
    crl_refresh_minutes: int = Field(default=60, ge=1)
    ocsp_validity_minutes: int = Field(default=60, ge=1)
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'medsign.db').resolve()}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE_NAME

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def load_settings(data_dir: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings for a data directory: init overrides > environment > the TOML file there."""
    directory = data_dir_from_env(data_dir)
    file_values: dict[str, Any] = {}
    config_path = directory / CONFIG_FILE_NAME
    if config_path.is_file():

        class _FileSettings(BaseSettings):
            model_config = SettingsConfigDict(extra="allow")

        source = TomlConfigSettingsSource(_FileSettings, toml_file=config_path)
        file_values = dict(source())
    env_keys = {k[len("MEDSIGN_") :].lower() for k in os.environ if k.startswith("MEDSIGN_")}
    merged = {k: v for k, v in file_values.items() if k not in env_keys}
    merged.update(overrides)
    merged["data_dir"] = directory
    return Settings(**merged)
