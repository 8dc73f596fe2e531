from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import select

from medsign.clock import FixedClock
from medsign.config import load_settings
from medsign.db.session import Database
from medsign.db.tables import SMSMessageRow
from medsign.errors import ConfigurationError, IdentityCheckError, SMSDeliveryError
from medsign.identity.providers import (
    DevelopmentIdentityCheckProvider,
    DevelopmentSMSProvider,
    HTTPGatewaySMSProvider,
    list_outbox,
    open_identity_check_provider,
    open_sms_provider,
)

TEXT = "【示例人民医院】验证码 123456，5分钟内有效。如非本人操作请忽略。"


def test_development_provider_keeps_text_and_is_marked(
    database: Database, clock: FixedClock
) -> None:
    assert "NOT FOR PRODUCTION" in (DevelopmentSMSProvider.__doc__ or "")
    DevelopmentSMSProvider(database, clock).send("13800001234", TEXT)
    (row,) = list_outbox(database)
    assert (row.provider, row.phone_masked, row.body, row.state) == (
        "development",
        "138****1234",
        TEXT,
        "sent",
    )
    assert len(list_outbox(database, phone_last4="1234")) == 1
    assert list_outbox(database, phone_last4="9999") == []


def test_http_gateway_json_template(database: Database, clock: FixedClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    provider = HTTPGatewaySMSProvider(
        database,
        clock,
        url="https://sms.hospital.example/send",
        template='{"mobile": "{phone}", "content": "{text}", "sign": "示例"}',
        auth_header="X-Api-Key",
        auth_value="k-123",
        transport=httpx.MockTransport(handler),
    )
    provider.send("13800001234", 'say "hi"\n' + TEXT)
    request = seen[0]
    assert request.method == "POST" and request.headers["X-Api-Key"] == "k-123"
    assert json.loads(request.content) == {
        "mobile": "13800001234",
        "content": 'say "hi"\n' + TEXT,
        "sign": "示例",
    }
    with database.session() as session:
        row = session.scalars(select(SMSMessageRow)).one()
    assert (row.provider, row.body, row.state, row.phone_masked) == (
        "http",
        None,
        "sent",
        "138****1234",
    )


def test_http_gateway_form_and_failures(database: Database, clock: FixedClock) -> None:
    answers = iter([httpx.Response(200), httpx.Response(503)])
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return next(answers)

    provider = HTTPGatewaySMSProvider(
        database,
        clock,
        url="https://sms.hospital.example/send",
        body_format="form",
        template="mobile={phone}&msg={text}",
        transport=httpx.MockTransport(handler),
    )
    provider.send("13800001234", TEXT)
    assert parse_qs(bodies[0].decode()) == {"mobile": ["13800001234"], "msg": [TEXT]}
    with pytest.raises(SMSDeliveryError) as info:
        provider.send("13800001234", TEXT)
    assert "13800001234" not in str(info.value) and "123456" not in str(info.value)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused for https://sms.hospital.example/?mobile=13800001234")

    broken = HTTPGatewaySMSProvider(
        database,
        clock,
        url="https://sms.hospital.example/send",
        transport=httpx.MockTransport(unreachable),
    )
    with pytest.raises(SMSDeliveryError):
        broken.send("13800001234", TEXT)
    rows = list_outbox(database)
    assert sorted(r.state for r in rows) == ["failed", "failed", "sent"]
    assert all(r.body is None for r in rows)
    assert all("13800001234" not in (r.error or "") for r in rows)


@pytest.mark.parametrize(
    ("template", "body_format"),
    [("{not json", "json"), ('{"to": "{phone}"}', "json"), ("to={phone}", "form")],
)
def test_bad_templates(
    database: Database, clock: FixedClock, template: str, body_format: str
) -> None:
    with pytest.raises(ConfigurationError):
        HTTPGatewaySMSProvider(
            database, clock, url="https://x.example", template=template, body_format=body_format
        )


def test_settings_choose_and_production_refuses_development(
    database: Database, clock: FixedClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(tmp_path)
    with caplog.at_level("WARNING"):
        assert isinstance(open_sms_provider(settings, database, clock), DevelopmentSMSProvider)
    assert "NOT FOR PRODUCTION" in caplog.text
    production = load_settings(tmp_path, environment="production")
    with pytest.raises(ConfigurationError):
        open_sms_provider(production, database, clock)
    gateway = load_settings(
        tmp_path,
        environment="production",
        sms_provider="http",
        sms_gateway_url="https://sms.hospital.example/send",
        sms_gateway_auth_value="secret",
    )
    assert isinstance(open_sms_provider(gateway, database, clock), HTTPGatewaySMSProvider)
    with pytest.raises(ConfigurationError):
        open_sms_provider(load_settings(tmp_path, sms_provider="http"), database, clock)


def test_identity_check_provider() -> None:
    assert "NOT FOR PRODUCTION" in (DevelopmentIdentityCheckProvider.__doc__ or "")
    DevelopmentIdentityCheckProvider().verify_identity("张三", "11010519491231002X")
    with pytest.raises(IdentityCheckError):
        DevelopmentIdentityCheckProvider().verify_identity("", "1")
    assert open_identity_check_provider(load_settings(Path("/nonexistent"))) is None
    enabled = load_settings(Path("/nonexistent"), enrolment_identity_check=True)
    assert isinstance(open_identity_check_provider(enabled), DevelopmentIdentityCheckProvider)
    with pytest.raises(ConfigurationError):
        open_identity_check_provider(
            load_settings(
                Path("/nonexistent"), enrolment_identity_check=True, environment="production"
            )
        )
