"""The OpenAPI document says what the app really answers (schemathesis checks it, in
``tests/contract``). FastAPI's generated document is corrected in one place:

- every error answer is documented as the app sends it: ``application/problem+json`` with the
  ``Problem`` schema, or under ``/fhir/`` ``application/fhir+json`` with an OperationOutcome —
  FastAPI's own 422 (``HTTPValidationError``, ``application/json``) never leaves the app;
- the operations that need a bearer token say so (``security``), so that a client generator
  and a contract test know which answer 401 without one;
- the answers the edge may give to any request — 413 for a body too large, 429 when a rate
  limit is hit — are documented on every operation that can get them;
- ``allowed_methods`` gives a 405's ``Allow`` header every method of the path, not only those
  of the route that matched first.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_OUTCOME = {"$ref": "#/components/schemas/OperationOutcomeDoc"}
_PUBLIC = ("/oauth/token", "/fhir/r4/metadata")
_TEXT = {"/metrics": "text/plain", "/status": "text/html", "/status.atom": "application/atom+xml"}
_EDGE = {413: "Requête trop volumineuse", 429: "Trop de requêtes"}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = corrected(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def corrected(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    assert "Problem" in schemas  # the views own errors reference both
    assert "OperationOutcomeDoc" in schemas
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    doc["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "Jeton obtenu sur POST /oauth/token (client credentials).",
        }
    }
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            _operation(path, method, op)
    return doc


def _operation(path: str, method: str, op: dict[str, Any]) -> None:
    fhir = path.startswith("/fhir/")
    protected = path.startswith(("/api/", "/fhir/")) and path not in _PUBLIC
    if protected:
        op["security"] = [{"bearer": []}]
    responses = op["responses"]
    if method in ("post", "put", "patch"):
        responses.setdefault("413", {"description": _EDGE[413]})
    if path.startswith(("/api/", "/fhir/", "/oauth/")):
        responses.setdefault("429", {"description": _EDGE[429]})
    for status, answer in responses.items():
        if status.isdigit() and int(status) >= 400:
            media = "application/fhir+json" if fhir else "application/problem+json"
            answer["content"] = {media: {"schema": _OUTCOME if fhir else _PROBLEM}}
            if status == "422" and answer.get("description") == "Validation Error":
                answer["description"] = "Champs invalides"
    text = _TEXT.get(path)
    if text is not None and "200" in responses:
        responses["200"]["content"] = {text: {"schema": {"type": "string"}}}


@cache
def _templates(paths: tuple[tuple[str, tuple[str, ...]], ...]) -> list[tuple[re.Pattern[str], str]]:
    out = []
    for path, methods in paths:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
        out.append((re.compile(f"^{pattern}$"), ", ".join(m.upper() for m in methods)))
    return out


def allowed_methods(app: FastAPI, path: str) -> str | None:
    """Every method the OpenAPI document gives ``path`` (``"GET, POST"``), or None."""
    paths = tuple((p, tuple(ops)) for p, ops in app.openapi()["paths"].items())
    for pattern, methods in _templates(paths):
        if pattern.match(path):
            return methods
    return None
