from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from medsign.errors import AccessError
from medsign.identity.admin_tokens import verify_admin_token
from medsign.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="Admin token created by `medsign init`")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The acting admin token id; 401 problem for a missing or wrong token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AccessError("admin token required")
    return "admin:" + verify_admin_token(runtime.database, credentials.credentials)


AdminDep = Annotated[str, Depends(require_admin)]
