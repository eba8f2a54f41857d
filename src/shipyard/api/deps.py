"""Request dependencies: the container and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shipyard.access.principal import Principal
from shipyard.bootstrap import Container
from shipyard.errors import Unauthenticated

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer sy_...`")


async def container(request: Request) -> Container:
    # async: a plain attribute read must not cost a worker-thread hop per request.
    value: Container = request.app.state.container
    return value


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("missing API key: send `Authorization: Bearer <key>`")
    found: Container = request.app.state.container
    return found.access.authenticate(credentials.credentials)


ContainerDep = Annotated[Container, Depends(container)]
PrincipalDep = Annotated[Principal, Depends(principal)]
