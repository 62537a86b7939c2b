"""The rights check in front of the framework: the counter's request without FastAPI's routing,
dependency solving and response models (measured at a third of the CPU of a check).

It answers ``POST /api/v1/rights-checks`` itself when the request is the usual one — JSON,
a bearer token, a body that ``RightsCheckIn`` accepts — with the very functions the FastAPI
view uses (``answer_rights_check``, ``rights_check_json``, ``problems.refused``), so the
answers are the same byte for byte. Anything else is handed to FastAPI unchanged (the body
already read is replayed), which answers 401, 415 or 422 as it always has.

    EdgeMiddleware (request id, headers, body limit, metrics, log)
      → RightsFastPath ── usual rights check → answered here
                      └─ anything else ──────→ FastAPI
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rempart.domain.errors import RempartError
from rempart.services import auth
from rempart.web import problems
from rempart.web.api.routes import answer_rights_check, rights_check_json
from rempart.web.api.schemas import RightsCheckIn
from rempart.web.deps import NO_STORE

PATH = "/api/v1/rights-checks"
_HEADERS = [
    (b"content-type", b"application/json"),
    *((k.lower().encode(), v.encode()) for k, v in NO_STORE.items()),
]


class _Route:
    """What the metrics label a request by (``scope["route"].path``), as routing sets it."""

    path = PATH


ROUTE = _Route()


class RightsFastPath:
    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: ``state.rt`` is set at startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        token = _usual(scope)
        if token is None:
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read(receive)
        try:
            parsed = None if disconnected else RightsCheckIn.model_validate_json(body)
        except ValidationError:
            parsed = None
        if parsed is None:  # FastAPI says what is wrong with it, as it always has
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"] = ROUTE
        client = scope.get("client")
        try:
            rt = self.state.rt
            principal = await auth.authenticate(rt, token, ip=client[0] if client else "unknown")
            answer = await answer_rights_check(rt, parsed, principal)
        except RempartError as exc:
            await problems.refused(exc, PATH)(scope, receive, send)
            return
        except Exception as exc:
            await problems.crashed(exc, PATH)(scope, receive, send)
            return
        payload = orjson.dumps(rights_check_json(answer))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _usual(scope: Scope) -> str | None:
    """The bearer token of a JSON request, else None (the framework handles the rest)."""
    ctype = auth_header = b""
    for k, v in scope["headers"]:
        if k == b"content-type":
            ctype = v
        elif k == b"authorization":
            auth_header = v
    if ctype.split(b";", 1)[0].strip().lower() != b"application/json":
        return None
    scheme, _, token = auth_header.partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return None
    try:
        return token.decode("ascii")
    except UnicodeDecodeError:
        return None


async def _read(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
