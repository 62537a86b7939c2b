"""Request-scoped helpers for the views: the runtime, the authenticated principal."""

from __future__ import annotations

import orjson
from fastapi import Request
from starlette.responses import Response

from rempart.domain.errors import NotAuthenticated, RempartError
from rempart.security.principal import Principal
from rempart.services import auth
from rempart.services.runtime import Runtime


class UnsupportedMediaType(RempartError):
    code = "unsupported_media_type"
    status = 415
    title = "Type de contenu non pris en charge"


def runtime(request: Request) -> Runtime:
    return request.app.state.rt  # type: ignore[no-any-return]


async def api_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Jeton d'accès manquant (en-tête Authorization: Bearer …).")
    return await auth.authenticate(runtime(request), token.strip(), ip=client_ip(request))


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def require_json(request: Request) -> None:
    # async: FastAPI would run a plain function in a thread, a cost on every rights check
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType("Le corps doit être envoyé en application/json.")


__all__ = [
    "NO_STORE",
    "api_principal",
    "json_response",
    "replay_headers",
    "require_json",
    "runtime",
]

# Answers that carry personal or financial data are never cached.
NO_STORE = {"Cache-Control": "no-store"}


def replay_headers(replayed: bool) -> dict[str, str]:
    """The headers of an idempotent answer: a replay says so."""
    return {**NO_STORE, "Idempotent-Replayed": "true"} if replayed else NO_STORE


def json_response(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status_code=status, media_type="application/json", headers=headers
    )
