"""ASGI middleware: request id and access log, security headers, body size limit, metrics.

Written as plain ASGI (not ``BaseHTTPMiddleware``) to keep the rights check's hot path short.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rempart.domain.errors import FieldError
from rempart.web.fhir import outcome

log = structlog.get_logger("rempart.http")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rempart_http_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "rempart_http_request_seconds",
            "HTTP request duration",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, body_bytes_max: int) -> None:
        self.app = app
        self.metrics = metrics
        self.body_bytes_max = body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status_holder = [500]
        length = _content_length(scope)
        received = 0
        too_large = length is not None and length > self.body_bytes_max

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_bytes_max:
                    # The framework turns any error while reading the body into its own 400;
                    # remember why, and answer 413 in its place (send_with_headers).
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            if too_large:
                if message["type"] == "http.response.start":
                    status_holder[0] = 413
                    await _too_large(send, self.body_bytes_max, scope["path"])
                return
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.extend(_SECURITY_HEADERS)
                headers.append((b"x-request-id", request_id.encode()))
                if not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if too_large:  # announced by Content-Length: no need to read it
                status_holder[0] = 413
                await _too_large(send, self.body_bytes_max, scope["path"])
            else:
                await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if status_holder[0] != 413:
                status_holder[0] = 413
                await _too_large(send, self.body_bytes_max, scope["path"])
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope)
            self.metrics.requests.labels(route, str(status_holder[0])).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info(
                "http.request",
                method=scope["method"],
                route=route,
                status=status_holder[0],
                ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class _BodyTooLarge(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int, path: str) -> None:
    detail = f"Le corps de la requête dépasse {limit} octets."
    ctype = b"application/problem+json"
    body: dict[str, Any] = {
        "type": "urn:rempart:problem:body_too_large",
        "title": "Requête trop volumineuse",
        "status": 413,
        "detail": detail,
        "code": "body_too_large",
        "errors": [{"field": "body", "reason": f"{limit} octets au plus"}],
    }
    if path.startswith(outcome.PREFIX):  # FHIR errors are OperationOutcome resources
        reason = FieldError(outcome.resource_of(path), f"{limit} octets au plus")
        body, ctype = (
            outcome.outcome_json(413, "body_too_large", detail, [reason]),
            b"application/fhir+json",
        )
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", ctype),
                (b"content-length", str(len(payload)).encode()),
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
