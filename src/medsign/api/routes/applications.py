"""Applications: the operator API to manage them, and what an application may ask about itself.

Secrets appear in exactly two answers (register, rotate-secret), marked ``no-store``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from medsign.api.auth import ApplicationDep
from medsign.api.deps import AdminDep, RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.apps.registry import Application, SignerScope
from medsign.apps.webhooks import WebhookDelivery, enqueue_webhook
from medsign.errors import StateError

router = APIRouter(responses=PROBLEM_RESPONSES)

StateName = Literal["active", "frozen", "deregistered"]


class SignerScopeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = False
    departments: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=1000
    )
    staff_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=1000
    )

    def to_scope(self) -> SignerScope:
        return SignerScope.from_value(self.model_dump())


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["住院医生工作站"])
    code: str = Field(min_length=2, max_length=64, examples=["emr-inpatient"])
    description: str = Field(default="", max_length=2000)
    organization_id: str | None = Field(
        default=None, max_length=64, description="Default: the only (or the demo) organization"
    )
    signer_scope: SignerScopeBody | None = Field(
        default=None, description='Whom it may ask to sign; default `{"all": true}`'
    )
    rate_limit_per_minute: int = Field(default=600, ge=1, le=100_000)
    webhook_url: str | None = Field(default=None, max_length=500)


class ApplicationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    signer_scope: SignerScopeBody | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    webhook_url: str | None = Field(
        default=None, max_length=500, description="`null` removes the webhook"
    )
    seal_purposes: list[str] | None = Field(
        default=None,
        max_length=20,
        description='The hospital seals it may apply to PDFs, by purpose: "" is the official'
        ' seal, e.g. "病案专用章" the medical-record seal; `[]` takes every right away',
    )


class SecretRotationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_hours: float | None = Field(
        default=None,
        ge=0,
        le=24 * 30,
        description="How long the previous secret keeps working (default: server setting)",
    )


class ApplicationPublic(BaseModel):
    id: str
    organization_id: str
    code: str
    name: str
    description: str
    state: StateName
    signer_scope: dict[str, Any]
    rate_limit_per_minute: int
    webhook_url: str | None
    seal_purposes: list[str]
    secret_rotated_at: dt.datetime
    previous_secret_expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ApplicationSecretPublic(BaseModel):
    application: ApplicationPublic
    secret: str = Field(description="Shown once; medsign keeps it sealed and never shows it again")


class ApplicationSelfPublic(BaseModel):
    id: str
    organization_id: str
    code: str
    name: str
    signer_scope: dict[str, Any]
    rate_limit_per_minute: int
    webhook_url: str | None
    algorithm: Literal["sha256", "sm3"] = Field(description="HMAC that authenticated this call")


class WebhookTestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=200)


class WebhookTestPublic(BaseModel):
    delivery_id: str


class WebhookDeliveryPublic(BaseModel):
    id: str
    application_id: str
    event_type: str
    subject_id: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: dt.datetime
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


def application_public(app: Application) -> ApplicationPublic:
    return ApplicationPublic(
        id=app.id,
        organization_id=app.organization_id,
        code=app.code,
        name=app.name,
        description=app.description,
        state=app.state.value,
        signer_scope=app.signer_scope.to_value(),
        rate_limit_per_minute=app.rate_limit_per_minute,
        webhook_url=app.webhook_url,
        seal_purposes=list(app.seal_purposes),
        secret_rotated_at=app.secret_rotated_at,
        previous_secret_expires_at=app.previous_secret_expires_at,
        created_at=app.created_at,
        updated_at=app.updated_at,
    )


def delivery_public(delivery: WebhookDelivery) -> WebhookDeliveryPublic:
    return WebhookDeliveryPublic(
        id=delivery.id,
        application_id=delivery.application_id,
        event_type=delivery.event_type,
        subject_id=delivery.subject_id,
        state=delivery.state.value,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


# -- operator API --------------------------------------------------------------------------

ADMIN = "/admin/v1"


@router.post(
    f"{ADMIN}/applications",
    status_code=status.HTTP_201_CREATED,
    response_model=ApplicationSecretPublic,
    tags=["admin"],
    summary="Register an application; its secret is in this answer only",
)
def register_application(
    body: ApplicationCreate, runtime: RuntimeDep, actor: AdminDep, response: Response
) -> ApplicationSecretPublic:
    app, secret = runtime.applications.register(
        name=body.name,
        code=body.code,
        description=body.description,
        organization_id=body.organization_id,
        signer_scope=body.signer_scope.to_scope() if body.signer_scope else None,
        rate_limit_per_minute=body.rate_limit_per_minute,
        webhook_url=body.webhook_url,
        actor=actor,
    )
    _no_store(response)
    return ApplicationSecretPublic(application=application_public(app), secret=secret)


@router.get(
    f"{ADMIN}/applications",
    response_model=list[ApplicationPublic],
    tags=["admin"],
    summary="List applications",
)
def list_applications(
    runtime: RuntimeDep,
    actor: AdminDep,
    state: Annotated[StateName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ApplicationPublic]:
    return [
        application_public(a)
        for a in runtime.applications.list_applications(state=state, limit=limit)
    ]


@router.get(
    f"{ADMIN}/applications/{{app_id}}",
    response_model=ApplicationPublic,
    tags=["admin"],
    summary="One application (by id or code)",
)
def get_application(app_id: str, runtime: RuntimeDep, actor: AdminDep) -> ApplicationPublic:
    return application_public(runtime.applications.find(app_id))


@router.patch(
    f"{ADMIN}/applications/{{app_id}}",
    response_model=ApplicationPublic,
    tags=["admin"],
    summary="Edit name, description, signer scope, rate limit, webhook URL or seal rights",
)
def edit_application(
    app_id: str, body: ApplicationUpdate, runtime: RuntimeDep, actor: AdminDep
) -> ApplicationPublic:
    app = runtime.applications.find(app_id)
    kwargs: dict[str, Any] = {}
    if "webhook_url" in body.model_fields_set:
        kwargs["webhook_url"] = body.webhook_url
    updated = runtime.applications.edit(
        app.id,
        name=body.name,
        description=body.description,
        signer_scope=body.signer_scope.to_scope() if body.signer_scope else None,
        rate_limit_per_minute=body.rate_limit_per_minute,
        seal_purposes=body.seal_purposes,
        actor=actor,
        **kwargs,
    )
    return application_public(updated)


@router.post(
    f"{ADMIN}/applications/{{app_id}}/freeze",
    response_model=ApplicationPublic,
    tags=["admin"],
    summary="Freeze: every call from it is refused until unfrozen",
)
def freeze_application(app_id: str, runtime: RuntimeDep, actor: AdminDep) -> ApplicationPublic:
    app = runtime.applications.find(app_id)
    return application_public(runtime.applications.freeze(app.id, actor=actor))


@router.post(
    f"{ADMIN}/applications/{{app_id}}/unfreeze",
    response_model=ApplicationPublic,
    tags=["admin"],
    summary="Unfreeze",
)
def unfreeze_application(app_id: str, runtime: RuntimeDep, actor: AdminDep) -> ApplicationPublic:
    app = runtime.applications.find(app_id)
    return application_public(runtime.applications.unfreeze(app.id, actor=actor))


@router.post(
    f"{ADMIN}/applications/{{app_id}}/deregister",
    response_model=ApplicationPublic,
    tags=["admin"],
    summary="Deregister for good (the record and its history stay)",
)
def deregister_application(app_id: str, runtime: RuntimeDep, actor: AdminDep) -> ApplicationPublic:
    app = runtime.applications.find(app_id)
    return application_public(runtime.applications.deregister(app.id, actor=actor))


@router.post(
    f"{ADMIN}/applications/{{app_id}}/rotate-secret",
    response_model=ApplicationSecretPublic,
    tags=["admin"],
    summary="New secret (in this answer only); the previous one works for a grace period",
)
def rotate_application_secret(
    app_id: str,
    runtime: RuntimeDep,
    actor: AdminDep,
    response: Response,
    body: SecretRotationCreate | None = None,
) -> ApplicationSecretPublic:
    app = runtime.applications.find(app_id)
    grace = (
        dt.timedelta(hours=body.grace_hours)
        if body is not None and body.grace_hours is not None
        else None
    )
    rotated, secret = runtime.applications.rotate_secret(app.id, grace=grace, actor=actor)
    _no_store(response)
    return ApplicationSecretPublic(application=application_public(rotated), secret=secret)


@router.get(
    f"{ADMIN}/applications/{{app_id}}/webhook-deliveries",
    response_model=list[WebhookDeliveryPublic],
    tags=["admin"],
    summary="Webhook deliveries of an application, newest first",
)
def list_webhook_deliveries(
    app_id: str,
    runtime: RuntimeDep,
    actor: AdminDep,
    state: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[WebhookDeliveryPublic]:
    app = runtime.applications.find(app_id)
    deliveries = runtime.webhooks.list_deliveries(application_id=app.id, state=state, limit=limit)
    return [delivery_public(d) for d in deliveries]


@router.get(
    f"{ADMIN}/webhook-deliveries/{{delivery_id}}",
    response_model=WebhookDeliveryPublic,
    tags=["admin"],
    summary="One webhook delivery",
)
def get_webhook_delivery(
    delivery_id: str, runtime: RuntimeDep, actor: AdminDep
) -> WebhookDeliveryPublic:
    return delivery_public(runtime.webhooks.get(delivery_id))


@router.post(
    f"{ADMIN}/webhook-deliveries/{{delivery_id}}/redeliver",
    response_model=WebhookDeliveryPublic,
    tags=["admin"],
    summary="Queue a delivery again, due now, with a fresh attempt budget",
)
def redeliver_webhook(
    delivery_id: str, runtime: RuntimeDep, actor: AdminDep
) -> WebhookDeliveryPublic:
    return delivery_public(runtime.webhooks.redeliver(delivery_id, actor=actor))


# -- application API -----------------------------------------------------------------------


@router.get(
    "/api/v1/application",
    response_model=ApplicationSelfPublic,
    tags=["application"],
    summary="The calling application's own profile (checks the request signature)",
)
def get_own_application(app: ApplicationDep) -> ApplicationSelfPublic:
    return ApplicationSelfPublic(
        id=app.id,
        organization_id=app.organization_id,
        code=app.code,
        name=app.name,
        signer_scope=app.signer_scope.to_value(),
        rate_limit_per_minute=app.rate_limit_per_minute,
        webhook_url=app.webhook_url,
        algorithm=app.algorithm,
    )


@router.post(
    "/api/v1/application/webhook-test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookTestPublic,
    tags=["application"],
    summary="Queue a `webhook:test` notification to the application's webhook URL",
)
def test_webhook(
    body: WebhookTestCreate, app: ApplicationDep, runtime: RuntimeDep
) -> WebhookTestPublic:
    with runtime.database.session() as session:
        delivery_id = enqueue_webhook(
            session, runtime.clock.now(), app.id, "webhook:test", app.id, {"note": body.note}
        )
    if delivery_id is None:
        raise StateError("the application has no webhook URL")
    return WebhookTestPublic(delivery_id=delivery_id)
