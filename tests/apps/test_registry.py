"""The application registry: lifecycle, sealed secrets, rotation with a grace period, scope."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text

from medsign.apps.registry import (
    ApplicationState,
    SignerScope,
    may_address,
    secret_context,
    validate_webhook_url,
)
from medsign.db.tables import ApplicationRow, EvidenceEventRow
from medsign.errors import InputError, KeyUseError, NotFoundError, StateError
from medsign.evidence import list_events
from medsign.identity.organizations import ensure_organization
from tests.apps.conftest import Apps


def test_register_shows_the_secret_once_and_stores_it_sealed(apps: Apps) -> None:
    app, secret = apps.registry.register(name="住院医生工作站", code="emr", actor="admin:adm_1")
    assert app.id.startswith("app_")
    assert secret.startswith("mss_") and len(secret) == 4 + 43
    assert app.organization_id == apps.organization_id
    assert app.state is ApplicationState.ACTIVE
    assert app.signer_scope == SignerScope.everyone()
    assert app.rate_limit_per_minute == 600

    # Nowhere in the database in clear: not in any column of any table.
    with apps.database.engine.connect() as conn:
        for table in ("applications", "evidence_events", "installation_settings"):
            for stored in conn.execute(text(f"SELECT * FROM {table}")):
                for value in stored:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    assert secret.encode() not in raw
                    assert secret[4:].encode() not in raw
    with apps.database.session() as session:
        row = session.get(ApplicationRow, app.id)
        assert row is not None
        assert apps.sealer.open_text(row.secret_sealed, context=secret_context(app.id)) == secret
        # Bound to the row: the blob does not open as another application's secret.
        with pytest.raises(KeyUseError):
            apps.sealer.open(row.secret_sealed, context=secret_context("app_other"))

    events = list_events(apps.database, event_type="app:register")
    assert events[0].record["application_id"] == app.id
    assert events[0].record["actor"] == "admin:adm_1"
    assert "secret" not in json.dumps(events[0].record)


def test_two_registrations_never_share_a_secret_or_code(apps: Apps) -> None:
    _, one = apps.registry.register(name="A", code="his")
    _, two = apps.registry.register(name="B", code="lis")
    assert one != two
    with pytest.raises(StateError):
        apps.registry.register(name="C", code="his")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"code": "X"},
        {"code": "has space"},
        {"name": ""},
        {"rate_limit_per_minute": 0},
        {"webhook_url": "ftp://h/x"},
        {"organization_id": "org_missing"},
    ],
)
def test_bad_registration_input_is_refused(apps: Apps, kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"name": "EMR", "code": "emr", **kwargs}
    with pytest.raises(InputError):
        apps.registry.register(**values)  # type: ignore[arg-type]
    assert apps.registry.list_applications() == []


def test_organization_must_be_named_when_several_exist(apps: Apps) -> None:
    other = ensure_organization(apps.database, apps.clock, code="branch", name="分院")
    # The demo hospital is still the default while it is the only demo one.
    app, _ = apps.registry.register(name="A", code="a1")
    assert app.organization_id == apps.organization_id
    chosen, _ = apps.registry.register(name="B", code="b1", organization_id=other.id)
    assert chosen.organization_id == other.id
    with apps.database.session() as session:
        session.execute(text("UPDATE organizations SET demo = :f"), {"f": False})
    with pytest.raises(InputError, match="several organizations"):
        apps.registry.register(name="C", code="c1")


def test_edit_freeze_unfreeze_deregister(apps: Apps) -> None:
    app, _ = apps.registry.register(name="EMR", code="emr", webhook_url="https://emr.h/hook")
    apps.clock.advance(dt.timedelta(minutes=1))
    scope = SignerScope.from_value({"departments": ["心内科"], "staff_ids": ["stf_1"]})
    edited = apps.registry.edit(
        app.id, name="EMR 2", signer_scope=scope, rate_limit_per_minute=60, webhook_url=None
    )
    assert (edited.name, edited.rate_limit_per_minute, edited.webhook_url) == ("EMR 2", 60, None)
    assert edited.signer_scope == scope and edited.updated_at > edited.created_at
    assert apps.registry.edit(app.id, description="x").webhook_url is None  # untouched

    assert apps.registry.freeze(app.id).state is ApplicationState.FROZEN
    with pytest.raises(StateError):
        apps.registry.freeze(app.id)
    assert apps.registry.unfreeze(app.id).state is ApplicationState.ACTIVE
    with pytest.raises(StateError):
        apps.registry.unfreeze(app.id)
    gone = apps.registry.deregister(app.id)
    assert gone.state is ApplicationState.DEREGISTERED
    for change in (
        lambda: apps.registry.unfreeze(app.id),
        lambda: apps.registry.freeze(app.id),
        lambda: apps.registry.edit(app.id, name="again"),
        lambda: apps.registry.rotate_secret(app.id),
        lambda: apps.registry.deregister(app.id),
    ):
        with pytest.raises(StateError):
            change()
    assert apps.registry.find("emr").id == app.id
    assert [a.id for a in apps.registry.list_applications(state="deregistered")] == [app.id]
    with pytest.raises(NotFoundError):
        apps.registry.find("nope")

    with apps.database.session() as session:
        types = list(session.scalars(select(EvidenceEventRow.type).order_by(EvidenceEventRow.seq)))
    assert types == [
        "app:register",
        "app:edit",
        "app:edit",
        "app:freeze",
        "app:unfreeze",
        "app:deregister",
    ]


def test_rotation_keeps_the_previous_secret_for_the_grace_period(apps: Apps) -> None:
    app, first = apps.registry.register(name="EMR", code="emr")
    apps.clock.advance(dt.timedelta(hours=1))
    rotated, second = apps.registry.rotate_secret(app.id)
    assert second != first
    assert rotated.previous_secret_expires_at == apps.clock.now() + dt.timedelta(hours=24)
    with apps.database.session() as session:
        row = session.get(ApplicationRow, app.id)
        assert row is not None
        now = apps.clock.now()
        assert apps.registry.valid_secrets(row, now) == [second.encode(), first.encode()]
        later = now + dt.timedelta(hours=24)
        assert apps.registry.valid_secrets(row, later) == [second.encode()]

    # Rotating again inside the grace period retires the first secret at once.
    _, third = apps.registry.rotate_secret(app.id, grace=dt.timedelta(minutes=5))
    with apps.database.session() as session:
        row = session.get(ApplicationRow, app.id)
        assert row is not None
        assert apps.registry.valid_secrets(row, apps.clock.now()) == [
            third.encode(),
            second.encode(),
        ]
    # No grace at all.
    _, fourth = apps.registry.rotate_secret(app.id, grace=dt.timedelta(0))
    with apps.database.session() as session:
        row = session.get(ApplicationRow, app.id)
        assert row is not None
        assert apps.registry.valid_secrets(row, apps.clock.now()) == [fourth.encode()]
    events = list_events(apps.database, event_type="app:rotate-secret")
    assert [e.record["grace_seconds"] for e in events] == [86400, 300, 0]


def test_master_rotation_reseals_application_secrets(apps: Apps) -> None:
    app, secret = apps.registry.register(name="EMR", code="emr")
    apps.registry.rotate_secret(app.id)
    apps.sealer.keyring_add_version()
    assert apps.sealer.reseal_all() >= 2
    with apps.database.session() as session:
        row = session.get(ApplicationRow, app.id)
        assert row is not None
        assert apps.registry.valid_secrets(row, apps.clock.now())[1] == secret.encode()


def test_signer_scope_and_may_address(apps: Apps) -> None:
    everyone, _ = apps.registry.register(name="A", code="a1")
    assert may_address(everyone, "心内科", "stf_1") and may_address(everyone, None, "stf_x")
    scope = SignerScope.from_value({"departments": ["心内科"], "staff_ids": ["stf_9"]})
    limited, _ = apps.registry.register(name="B", code="b1", signer_scope=scope)
    assert may_address(limited, "心内科", "stf_1")
    assert may_address(limited, "骨科", "stf_9")
    assert not may_address(limited, "骨科", "stf_1")
    assert not may_address(limited, None, "stf_1")
    assert SignerScope.from_json(scope.to_json()) == scope
    bad: object
    for bad in (
        [],
        {"all": True, "departments": ["x"]},
        {},
        {"all": False},
        {"departments": "心内科"},
        {"departments": [""]},
        {"whatever": 1},
        {"all": "yes"},
    ):
        with pytest.raises(InputError):
            SignerScope.from_value(bad)


@pytest.mark.parametrize(
    "url",
    [
        "https://emr.example/hook",
        "http://10.1.2.3:8080/medsign?x=1",
        "http://[::1]:9000/h",
    ],
)
def test_webhook_urls_accepted(url: str) -> None:
    assert validate_webhook_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://emr/hook",
        "javascript:alert(1)",
        "https:///nohost",
        "https://user:pw@emr/hook",
        "https://emr/hook#frag",
        "https://emr:99999/hook",
        "https://emr/ho ok",
        "emr/hook",
        "https://" + "a" * 500 + ".h/",
    ],
)
def test_webhook_urls_refused(url: str) -> None:
    with pytest.raises(InputError):
        validate_webhook_url(url)
