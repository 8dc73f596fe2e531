"""FastAPI application factory: a thin adapter over the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import medsign
from medsign.api.problems import install_problem_handlers, problem
from medsign.api.routes import (
    admin,
    applications,
    documents,
    enrolment,
    evidence,
    forms,
    health,
    logins,
    phone,
    pki,
    seals,
    signing,
    staff,
    tsa,
    verify,
)
from medsign.api.schemas import Problem
from medsign.runtime import Runtime
from medsign.web import phone as phone_pages
from medsign.web import verify as verify_pages
from medsign.web.phone import STATIC_DIR as PHONE_STATIC

log = logging.getLogger(__name__)


async def _maintain_pki(runtime: Runtime) -> None:
    """Regenerate CRLs before they go stale and renew OCSP responder certificates."""
    interval = runtime.settings.crl_refresh_minutes * 60
    while True:
        for job in (runtime.crls.refresh_due, runtime.authority.refresh_ocsp_responders):
            try:
                await run_in_threadpool(job)
            except Exception:  # a failed run must not stop the scheduler; retried next tick
                log.exception("PKI maintenance failed", extra={"job": job.__name__})
        await asyncio.sleep(interval)


async def _dispatch_webhooks(runtime: Runtime, batch: int = 50) -> None:
    """Send due webhook deliveries every few seconds; a full batch goes again at once."""
    while True:
        sent = 0
        try:
            sent = await run_in_threadpool(runtime.webhooks.deliver_due, batch)
        except Exception:  # a failed run must not stop the dispatcher; retried next tick
            log.exception("webhook dispatch failed")
        if sent < batch:
            await asyncio.sleep(runtime.settings.webhook_poll_seconds)


async def _expire_overdue(runtime: Runtime, interval: float = 30.0) -> None:
    """Expire overdue signature requests, enrolments and logins (so their webhooks go out)."""
    while True:
        for job in (
            runtime.workflow.expire_due,
            runtime.enrolments.expire_due,
            runtime.logins.expire_due,
        ):
            try:
                await run_in_threadpool(job)
            except Exception:  # a failed run must not stop the scheduler; retried next tick
                log.exception("expiry run failed", extra={"job": job.__name__})
        await asyncio.sleep(interval)


async def _checkpoint(runtime: Runtime) -> None:
    """Sign a checkpoint whenever the log grew (and have it witnessed)."""
    while True:
        await asyncio.sleep(runtime.settings.log_checkpoint_seconds)
        try:
            await run_in_threadpool(runtime.checkpoints.make)
        except Exception:  # retried next tick; the log itself is unaffected
            log.exception("checkpoint failed")


async def _seal(runtime: Runtime, interval: float = 2.0) -> None:
    """Seal the records of queued seal jobs (archive sealing); resumes after a restart."""
    while True:
        decided = 0
        try:
            decided = await run_in_threadpool(runtime.run_seal_jobs)
        except Exception:  # retried next tick; a record is never half sealed
            log.exception("seal job run failed")
        if not decided:
            await asyncio.sleep(interval)


def create_app(runtime: Runtime, *, schedule: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs = (_maintain_pki, _dispatch_webhooks, _expire_overdue, _checkpoint, _seal)
        tasks = [asyncio.create_task(job(runtime)) for job in jobs] if schedule else []
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="medsign",
        version=medsign.__version__,
        description="Electronic signatures and certificates for hospitals. Errors are RFC 9457"
        " problem+json documents with a stable `code`.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_problem_handlers(app)

    @app.middleware("http")
    async def refuse_control_characters(request: Request, call_next: Any) -> Any:
        # No id, code or name medsign knows contains a control character; refusing them at
        # the door keeps NULs and the like away from every lookup and every log line.
        # The scope, not request.url: URL parsing silently drops tabs and newlines.
        query = request.scope.get("query_string", b"").decode("latin-1")
        raw = request.scope["path"] + "?" + unquote(query)
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
            return problem(
                400,
                "invalid-input",
                "Invalid input",
                "The URL contains control characters.",
                instance=request.url.path[:200],
            )
        return await call_next(request)

    app.include_router(health.router)
    app.include_router(pki.router)
    app.include_router(admin.router)
    for module in (
        applications,
        staff,
        enrolment,
        signing,
        documents,
        seals,
        forms,
        logins,
        tsa,
        verify,
        phone,
        evidence,
    ):
        app.include_router(module.router)
    app.include_router(evidence.witness_router)
    app.include_router(seals.admin_router)
    app.include_router(phone_pages.router)
    app.include_router(verify_pages.router)
    app.include_router(verify_pages.api)
    app.mount("/m/static", StaticFiles(directory=PHONE_STATIC), name="phone-static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                Problem.model_json_schema()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
