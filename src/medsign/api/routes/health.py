from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from medsign.api.deps import RuntimeDep
from medsign.api.schemas import HealthPublic, ReadinessPublic
from medsign.errors import MedsignError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, summary="Liveness: the process answers")
def healthz() -> HealthPublic:
    return HealthPublic(status="ok")


@router.get(
    "/readyz",
    response_model=ReadinessPublic,
    summary="Readiness: database and key store reachable",
    responses={503: {"model": ReadinessPublic, "description": "A dependency is not reachable"}},
)
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        runtime.database.ping()
        checks["database"] = "ok"
    except Exception:  # any driver failure means not ready; details go to the log only
        checks["database"] = "unreachable"
    try:
        runtime.keystore.check()
        checks["keystore"] = "ok"
    except MedsignError as exc:
        checks["keystore"] = exc.public_message()
    ready = all(v == "ok" for v in checks.values())
    body = ReadinessPublic(status="ready" if ready else "not-ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
