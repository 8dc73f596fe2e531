"""The one table from errors to RFC 9457 problem+json responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from medsign.errors import AccessError, MedsignError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://medsign.dev/problems/"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_BASE + code, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body["code"] = code
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="medsign"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _medsign_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MedsignError)
    if exc.status >= 500:
        log.error("request failed", extra={"path": request.url.path, "code": exc.code})
    extra = {k: v for k, v in exc.extra.items() if isinstance(v, str | int | float | bool | list)}
    detail = exc.public_message()
    if isinstance(exc, AccessError):
        detail = exc.public_message()
    response = problem(exc.status, exc.code, exc.title, detail, instance=request.url.path, **extra)
    if "retry_after" in exc.extra:  # RFC 9110 §10.2.3, in seconds
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
    if exc.code.startswith("auth-"):  # application HMAC auth, not the admin bearer token
        response.headers["WWW-Authenticate"] = "MEDSIGN-HMAC-SHA256, MEDSIGN-HMAC-SM3"
    return response


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    return problem(
        422,
        "invalid-input",
        "Invalid input",
        "The request does not match the expected schema.",
        instance=request.url.path,
        errors=errors,
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not-found", 405: "method-not-allowed", 401: "access-denied"}
    return problem(
        exc.status_code,
        codes.get(exc.status_code, "http-error"),
        str(exc.detail) if exc.status_code != 404 else "Not found",
        instance=request.url.path,
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", extra={"path": request.url.path})
    return problem(500, "internal", "Internal error", instance=request.url.path)


def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the schema let through (e.g. a NUL character, which
    # PostgreSQL text cannot hold); the transaction was rolled back, so nothing changed.
    log.warning("database refused a value", extra={"path": request.url.path})
    return problem(
        422,
        "invalid-input",
        "Invalid input",
        "A value in the request cannot be stored (control characters such as NUL are not"
        " accepted).",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MedsignError, _medsign_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": desc,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, desc in {
        401: "Missing or wrong credentials",
        404: "Not found",
        409: "Not allowed in the current state",
        422: "Invalid input",
    }.items()
}
