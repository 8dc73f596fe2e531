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


class SMSProviderKind(StrEnum):
    DEVELOPMENT = "development"
    HTTP = "http"


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
    app_secret_grace_hours: float = Field(
        default=24, ge=0, le=24 * 30, description="How long a rotated-out app secret still works"
    )
    app_auth_max_skew_seconds: int = Field(
        default=300, ge=30, le=3600, description="Accepted request timestamp drift, either way"
    )
    app_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    webhook_max_attempts: int = Field(default=10, ge=1, le=50)
    webhook_poll_seconds: float = Field(default=5, gt=0, le=3600)
    # SMS: "development" keeps messages (with their text) in the sms_messages outbox and is
    # refused in production; "http" posts to the hospital's SMS gateway.
    sms_provider: SMSProviderKind = SMSProviderKind.DEVELOPMENT
    sms_gateway_url: str | None = None
    sms_gateway_method: str = Field(default="POST", pattern="^(POST|PUT|GET)$")
    sms_gateway_format: str = Field(default="json", pattern="^(json|form)$")
    sms_gateway_template: str = Field(
        default='{"phone": "{phone}", "text": "{text}"}',
        description="JSON object or form string with {phone} and {text} placeholders",
    )
    sms_gateway_auth_header: str = "Authorization"
    sms_gateway_auth_value: SecretStr | None = None
    sms_gateway_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    enrolment_lifetime_minutes: int = Field(default=15, ge=1, le=24 * 60)
    login_lifetime_seconds: int = Field(
        default=120,
        ge=30,
        le=600,
        description="How long a QR-code login waits for the clinician's phone; applications"
        " may ask for less",
    )
    # Clinicians' phones (/m/): a session lasts at most a shift and ends earlier when idle.
    phone_session_minutes: int = Field(default=8 * 60, ge=5, le=7 * 24 * 60)
    phone_idle_minutes: int = Field(default=60, ge=1, le=24 * 60)
    phone_events_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Evidence log (docs/operations.md): checkpoint origin and key name default to
    # "<host of public_base_url>/medsign-log"; a witness's name to "<host>/medsign-witness".
    log_origin: str | None = Field(default=None, max_length=200)
    log_checkpoint_seconds: float = Field(default=60, gt=0, le=24 * 3600)
    log_witness_quorum: int = Field(default=0, ge=0, le=16)
    witness_name: str | None = Field(default=None, max_length=200)
    # Passkeys (WebAuthn): the relying party defaults to the public base URL's host name.
    passkey_rp_id: str | None = None
    passkey_rp_name: str = Field(default="medsign", min_length=1, max_length=64)
    # Real-name check against an external provider (name + ID number) during enrolment.
    enrolment_identity_check: bool = False
    # RFC 3161 time-stamping unit (docs/integration/timestamps-and-cms.md).
    tsa_policy_oid: str | None = Field(
        default=None,
        pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$",
        description="TSA policy OID; default <POLICY_ARC>.2.1 under the placeholder arc",
    )
    tsa_accuracy_ms: int = Field(default=1000, ge=1, le=60_000)
    tsa_time_digits: int = Field(
        default=3, ge=0, le=6, description="Fractional-second digits written in genTime"
    )
    tsa_max_drift_ms: int = Field(
        default=500, ge=1, le=60_000, description="Refuse to stamp beyond this clock error"
    )
    tsa_reference: str = Field(
        default="auto",
        pattern="^(auto|chrony|kernel|none)$",
        description="How the clock is checked: chronyc tracking, the kernel's NTP state"
        " (what timedatectl shows), auto (chrony if installed, else kernel) or none",
    )
    tsa_strict_clock: bool = Field(
        default=False, description="Refuse to stamp when the clock's error cannot be measured"
    )
    tsa_key_algorithm: str = Field(default="ec-p256", pattern="^(ec-p256|sm2|rsa-2048|rsa-3072)$")
    # PEM file of extra trust anchors for verification (external CAs used in RA mode);
    # a relative path is taken from the data directory.
    trust_anchors_file: Path | None = None
    sign_max_record_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    sign_max_batch_items: int = Field(default=500, ge=1, le=5000)
    document_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        le=512 * 1024 * 1024,
        description="Largest PDF accepted for signing or verification",
    )
    seal_key_algorithm: str = Field(
        default="ec-p256",
        pattern="^(ec-p256|rsa-2048|rsa-3072)$",
        description="Key of the hospital's seal certificate (created at init)",
    )
    display_timezone: str = Field(
        default="Asia/Shanghai",
        description="Time zone of the times written into visible signatures and forms",
    )
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
