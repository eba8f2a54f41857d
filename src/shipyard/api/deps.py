"""Request dependencies: the container and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shipyard.access.principal import Principal
from shipyard.bootstrap import Container
from shipyard.errors import Unauthenticated

_bearer = HTTPBearer(
    auto_error=False,
    description="API key (`Authorization: Bearer sy_...`) or, with OIDC configured, a JWT",
)


async def container(request: Request) -> Container:
    # async: a plain attribute read must not cost a worker-thread hop per request.
    value: Container = request.app.state.container
    return value


async def bearer_credentials(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> HTTPAuthorizationCredentials:
    """A missing key is refused at once, on the event loop (no database, no thread)."""
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("missing API key: send `Authorization: Bearer <key>`")
    return credentials


CredentialsDep = Annotated[HTTPAuthorizationCredentials, Depends(bearer_credentials)]


def authenticate(found: Container, credentials: HTTPAuthorizationCredentials) -> Principal:
    """Blocking (one database read): call it from a worker thread.

    The one place every authenticated route passes through (``PrincipalDep`` and the run
    routes alike), so requests-per-minute limits are counted here, once per request."""
    principal = found.access.authenticate(credentials.credentials)
    found.rate_limits.check_request(principal)
    return principal


def principal(request: Request, credentials: CredentialsDep) -> Principal:
    return authenticate(request.app.state.container, credentials)


ContainerDep = Annotated[Container, Depends(container)]
PrincipalDep = Annotated[Principal, Depends(principal)]
