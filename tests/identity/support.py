"""Building blocks for identity and intent tests: a sealer, the services, a hospital."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import select

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.db.tables import SMSMessageRow
from medsign.identity.organizations import ensure_organization
from medsign.identity.providers import DevelopmentSMSProvider
from medsign.identity.staff import StaffDirectory, StaffInput, national_id_check_char
from medsign.intent.otp import OneTimeCodes
from medsign.intent.pin import SigningPINs
from medsign.keys.keyring import MasterKeyring
from medsign.keys.sealing import DataSealer

_counter = itertools.count(1)


def cheap_hasher() -> PasswordHasher:
    """argon2id with test-sized cost: correctness, not strength, is under test here."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def make_national_id(birth: str = "19900307", seq: int | None = None) -> str:
    seq = next(_counter) % 1000 if seq is None else seq
    first17 = f"110101{birth}{seq:03d}"
    return first17 + national_id_check_char(first17)


def make_phone(seed: int | None = None) -> str:
    rng = random.Random(seed)
    return f"13{rng.randint(8, 9)}{rng.randint(0, 99_999_999):08d}"


@dataclass
class Services:
    database: Database
    clock: FixedClock
    sealer: DataSealer
    staff: StaffDirectory
    sms: DevelopmentSMSProvider
    codes: OneTimeCodes
    pins: SigningPINs
    organization_id: str

    def add_staff(
        self, employee_no: str = "E001", *, phone: str | None = None, national_id: str | None = None
    ) -> tuple[str, str, str]:
        """Create a staff member; returns (staff id, national ID, phone)."""
        national_id = national_id or make_national_id()
        phone = phone or make_phone()
        result = self.staff.upsert(
            self.organization_id,
            StaffInput(
                employee_no=employee_no,
                name="张三",
                national_id=national_id,
                phone=phone,
                department="心内科",
                title="主治医师",
                roles=("doctor",),
            ),
            actor="test",
        )
        return result.staff.id, national_id, phone

    def last_sms(self) -> str:
        with self.database.session() as session:
            row = session.scalars(
                select(SMSMessageRow).order_by(SMSMessageRow.created_at.desc()).limit(1)
            ).one()
            assert row.body is not None
            return row.body


def last_code(services: Services) -> str:
    import re

    match = re.search(r"验证码 (\d{6})", services.last_sms())
    assert match is not None
    return match.group(1)


def build_services(database: Database, clock: FixedClock, tmp_path: Path) -> Services:
    keyring = MasterKeyring.create(tmp_path / "keyring")
    sealer = DataSealer(keyring, database)
    staff = StaffDirectory(database, sealer, clock)
    sms = DevelopmentSMSProvider(database, clock)
    codes = OneTimeCodes(database, sealer, clock, sms)
    pins = SigningPINs(database, clock, hasher=cheap_hasher())
    organization = ensure_organization(database, clock, code="demo", name="示例人民医院")
    return Services(database, clock, sealer, staff, sms, codes, pins, organization.id)


def later(clock: FixedClock, **delta: float) -> None:
    clock.advance(dt.timedelta(**delta))


@dataclass
class EnrolmentEnv:
    services: Services
    keystore: Any
    authority: Any
    enrolments: Any
    application_id: str
    other_application_id: str


def build_enrolment_env(
    database: Database, clock: FixedClock, tmp_path: Path, **options: Any
) -> EnrolmentEnv:
    from medsign.apps.registry import ApplicationRegistry
    from medsign.ca.authority import CertificateAuthority
    from medsign.crypto.types import AlgorithmFamily
    from medsign.identity.enrolment import EnrolmentService
    from medsign.keys.software import SoftwareKeyStore

    services = build_services(database, clock, tmp_path)
    keyring = MasterKeyring.load(tmp_path / "keyring")
    keystore = SoftwareKeyStore(database, keyring, clock)
    authority = CertificateAuthority(database, keystore, clock, "http://medsign.test")
    authority.initialise_hierarchy(
        "示例人民医院", families=[AlgorithmFamily.P256, AlgorithmFamily.SM2]
    )
    services.staff = StaffDirectory(database, services.sealer, clock, authority=authority)
    registry = ApplicationRegistry(database, services.sealer, clock)
    app, _ = registry.register(name="HIS", code="his", organization_id=services.organization_id)
    other, _ = registry.register(name="EMR", code="emr", organization_id=services.organization_id)
    enrolments = EnrolmentService(
        database,
        clock,
        services.sealer,
        staff=services.staff,
        codes=services.codes,
        pins=services.pins,
        keystore=keystore,
        authority=authority,
        public_base_url="https://sign.example.org/",
        **options,
    )
    return EnrolmentEnv(services, keystore, authority, enrolments, app.id, other.id)


# -- HTTP helpers (tests/api) ---------------------------------------------------------------


def register_application(
    client: Any, admin_headers: dict[str, str], **fields: Any
) -> tuple[str, str]:
    """Register an application through the admin API; returns (id, secret)."""
    import secrets

    code = fields.pop("code", "app-" + secrets.token_hex(4))
    response = client.post(
        "/admin/v1/applications",
        json={"name": "HIS", "code": code, **fields},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["application"]["id"], body["secret"]


def signed_client(client: Any, app_id: str, secret: str) -> Any:
    from medsign.client import MedsignClient

    return MedsignClient("http://testserver", app_id, secret, transport=client._transport)


def send_raw(
    client: Any, app_id: str, secret: str, method: str, path: str, body: bytes, content_type: str
) -> Any:
    """A signed request with an arbitrary body (the Python client sends JSON only)."""
    import secrets
    import time

    from medsign.client import signed_headers

    headers = signed_headers(
        algorithm="hmac-sha256",
        app_id=app_id,
        secret=secret,
        method=method,
        path=path,
        query="",
        body=body,
        timestamp=int(time.time()),
        nonce=secrets.token_hex(16),
    )
    headers["Content-Type"] = content_type
    return client.request(method, path, content=body, headers=headers)
