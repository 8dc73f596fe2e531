"""Outside services used for real-name authentication: SMS delivery and ID checks.

Every SMS handed to a provider leaves a row in the ``sms_messages`` outbox (masked number,
provider, outcome). Only the development provider keeps the text there, because it exists to
let a developer read codes without a phone; the runtime refuses it in production.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl

import httpx
from sqlalchemy import select

from medsign.clock import Clock
from medsign.config import Environment, Settings, SMSProviderKind
from medsign.db.session import Database
from medsign.db.tables import SMSMessageRow
from medsign.errors import ConfigurationError, IdentityCheckError, InputError, SMSDeliveryError
from medsign.ids import new_id

log = logging.getLogger(__name__)

DEVELOPMENT = "development"
HTTP_GATEWAY = "http"


class SMSProvider(Protocol):
    """Deliver one text message to a mainland mobile number or raise ``SMSDeliveryError``."""

    name: str

    def send(self, phone: str, text: str) -> None: ...


def _masked(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"


def _record(
    database: Database,
    clock: Clock,
    *,
    provider: str,
    phone: str,
    body: str | None,
    state: str,
    error: str | None = None,
) -> str:
    message_id = new_id("sms")
    with database.session() as session:
        session.add(
            SMSMessageRow(
                id=message_id,
                provider=provider,
                phone_masked=_masked(phone),
                staff_id=None,
                body=body,
                state=state,
                error=error[:500] if error else None,
                created_at=clock.now(),
            )
        )
    return message_id


class DevelopmentSMSProvider:
    """NOT FOR PRODUCTION. Sends nothing: writes each message, text included, to the outbox.

    Codes in the outbox let anyone with database or admin access complete an enrolment or
    confirm a signature in someone else's name; the runtime refuses this provider when
    ``environment`` is production.
    """

    name = DEVELOPMENT

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def send(self, phone: str, text: str) -> None:
        _record(
            self._database, self._clock, provider=self.name, phone=phone, body=text, state="sent"
        )


Transport = Callable[[httpx.Request], httpx.Response]


class HTTPGatewaySMSProvider:
    """Posts messages to the hospital's SMS gateway.

    The request body comes from a template (a JSON object, or a form string such as
    ``mobile={phone}&content={text}``) whose ``{phone}``/``{text}`` placeholders are replaced
    inside the parsed values, so a message can never break the body's syntax. Any 2xx answer
    is success. The outbox records the outcome without the text.
    """

    name = HTTP_GATEWAY

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        url: str,
        method: str = "POST",
        body_format: str = "json",
        template: str = '{"phone": "{phone}", "text": "{text}"}',
        auth_header: str | None = None,
        auth_value: str | None = None,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ConfigurationError("sms_gateway_url must be an http(s) URL")
        if body_format not in ("json", "form"):
            raise ConfigurationError("sms_gateway_format must be json or form")
        self._database = database
        self._clock = clock
        self._url = url
        self._method = method.upper()
        self._format = body_format
        self._template = self._parse_template(template, body_format)
        self._headers = {auth_header: auth_value} if auth_header and auth_value else {}
        self._timeout = timeout
        self._transport = transport

    @staticmethod
    def _parse_template(template: str, body_format: str) -> Any:
        try:
            parsed: Any = (
                json.loads(template)
                if body_format == "json"
                else parse_qsl(template, strict_parsing=True)
            )
        except ValueError as exc:
            raise ConfigurationError(f"sms_gateway_template is not valid {body_format}") from exc
        flat = json.dumps(parsed, ensure_ascii=False)
        if "{phone}" not in flat or "{text}" not in flat:
            raise ConfigurationError("sms_gateway_template needs {phone} and {text} placeholders")
        return parsed

    def _fill(self, value: Any, phone: str, text: str) -> Any:
        if isinstance(value, str):
            return value.replace("{phone}", phone).replace("{text}", text)
        if isinstance(value, list):
            return [self._fill(v, phone, text) for v in value]
        if isinstance(value, tuple):
            return tuple(self._fill(v, phone, text) for v in value)
        if isinstance(value, dict):
            return {k: self._fill(v, phone, text) for k, v in value.items()}
        return value

    def send(self, phone: str, text: str) -> None:
        filled = self._fill(self._template, phone, text)
        kwargs: dict[str, Any] = {"headers": self._headers}
        if self._method == "GET":
            kwargs["params"] = filled if self._format == "form" else {"body": json.dumps(filled)}
        elif self._format == "json":
            kwargs["json"] = filled
        else:
            kwargs["data"] = dict(filled)
        error: str | None = None
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport) as client:
                response = client.request(self._method, self._url, **kwargs)
            if not 200 <= response.status_code < 300:
                error = f"gateway answered HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            # The exception text may echo the URL with the number in a query: keep the class.
            error = f"gateway unreachable ({type(exc).__name__})"
        _record(
            self._database,
            self._clock,
            provider=self.name,
            phone=phone,
            body=None,
            state="failed" if error else "sent",
            error=error,
        )
        if error:
            log.warning("SMS gateway failed", extra={"error": error})
            raise SMSDeliveryError(error, public="the SMS could not be sent; try again later")


def open_sms_provider(
    settings: Settings,
    database: Database,
    clock: Clock,
    *,
    transport: httpx.BaseTransport | None = None,
) -> SMSProvider:
    """The provider the settings name; the development one is refused in production."""
    if settings.sms_provider is SMSProviderKind.DEVELOPMENT:
        if settings.environment is Environment.PRODUCTION:
            raise ConfigurationError(
                "the development SMS provider keeps codes in the database and is refused in"
                ' production: set sms_provider = "http" and the sms_gateway_* settings'
            )
        log.warning(
            "DEVELOPMENT SMS PROVIDER: messages are NOT sent, their text (codes included) is"
            " kept in the sms_messages outbox. NOT FOR PRODUCTION."
        )
        return DevelopmentSMSProvider(database, clock)
    if not settings.sms_gateway_url:
        raise ConfigurationError("sms_provider is http but sms_gateway_url is not set")
    auth = settings.sms_gateway_auth_value
    return HTTPGatewaySMSProvider(
        database,
        clock,
        url=settings.sms_gateway_url,
        method=settings.sms_gateway_method,
        body_format=settings.sms_gateway_format,
        template=settings.sms_gateway_template,
        auth_header=settings.sms_gateway_auth_header,
        auth_value=auth.get_secret_value() if auth is not None else None,
        timeout=settings.sms_gateway_timeout_seconds,
        transport=transport,
    )


# -- outbox ---------------------------------------------------------------------------------


def list_outbox(
    database: Database, *, phone_last4: str | None = None, limit: int = 50
) -> list[SMSMessageRow]:
    """Newest messages first, optionally only those to a number ending in ``phone_last4``."""
    if phone_last4 is not None and (len(phone_last4) != 4 or not phone_last4.isdigit()):
        raise InputError("phone_last4 must be four digits")
    if not 1 <= limit <= 500:
        raise InputError("limit must be 1..500")
    query = select(SMSMessageRow)
    if phone_last4 is not None:
        query = query.where(SMSMessageRow.phone_masked.endswith(phone_last4))
    query = query.order_by(SMSMessageRow.created_at.desc(), SMSMessageRow.id).limit(limit)
    with database.session() as session:
        return list(session.scalars(query))


# -- identity checks -------------------------------------------------------------------------


class IdentityCheckProvider(Protocol):
    """Confirm that a name and national ID number belong to one real person (and, when a
    photo is given, that it shows that person); raise ``IdentityCheckError`` otherwise."""

    name: str

    def verify_identity(
        self, name: str, national_id: str, *, face_jpeg: bytes | None = None
    ) -> None: ...


class DevelopmentIdentityCheckProvider:
    """NOT FOR PRODUCTION. Accepts every well-formed pair without asking anyone."""

    name = DEVELOPMENT

    def verify_identity(
        self, name: str, national_id: str, *, face_jpeg: bytes | None = None
    ) -> None:
        if not name or len(national_id) != 18:
            raise IdentityCheckError("identity check input malformed")


def open_identity_check_provider(settings: Settings) -> IdentityCheckProvider | None:
    """``None`` unless enrolment is configured to ask a real-name provider."""
    if not settings.enrolment_identity_check:
        return None
    if settings.environment is Environment.PRODUCTION:
        raise ConfigurationError(
            "enrolment_identity_check needs a real identity check provider in production;"
            " only the development one is built in"
        )
    log.warning("DEVELOPMENT identity check provider accepts everyone. NOT FOR PRODUCTION.")
    return DevelopmentIdentityCheckProvider()
