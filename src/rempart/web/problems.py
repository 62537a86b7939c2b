"""Errors at the web edge: every 4xx and 5xx outside ``/fhir/`` is RFC 9457 problem+json,
``{type, title, status, detail, code, errors: [{field, reason}]}``, reasons in French.

Pydantic's validation errors are translated here (field as a dotted path, reason in French);
unexpected exceptions become a 500 without a stack trace (it goes to the log, with the request
id, never to the client).
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from rempart.domain.errors import (
    ChannelClosed,
    FieldError,
    NotAuthenticated,
    RempartError,
    TooManyRequests,
)
from rempart.web import openapi
from rempart.web.fhir import outcome

log = structlog.get_logger("rempart.web")

PROBLEM = "application/problem+json"

_REASONS = {
    "missing": "champ obligatoire",
    "extra_forbidden": "champ inconnu",
    "string_type": "doit être une chaîne de caractères",
    "int_type": "doit être un nombre entier",
    "int_parsing": "doit être un nombre entier",
    "bool_type": "doit être vrai ou faux",
    "dict_type": "doit être un objet JSON",
    "model_type": "doit être un objet JSON",
    "list_type": "doit être une liste",
    "date_type": "date invalide (AAAA-MM-JJ attendu)",
    "date_from_datetime_parsing": "date invalide (AAAA-MM-JJ attendu)",
    "date_parsing": "date invalide (AAAA-MM-JJ attendu)",
    "enum": "valeur non reconnue",
    "literal_error": "valeur non reconnue",
    "json_invalid": "JSON illisible",
}

_STATUS_TITLES = {
    400: "Requête invalide",
    401: "Authentification requise",
    403: "Accès refusé",
    404: "Introuvable",
    405: "Méthode non autorisée",
    406: "Format de réponse non disponible",
    409: "Conflit",
    413: "Requête trop volumineuse",
    415: "Type de contenu non pris en charge",
    422: "Requête invalide",
    429: "Trop de requêtes",
    500: "Erreur interne",
    503: "Service momentanément indisponible",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    errors: list[FieldError] | tuple[FieldError, ...] = (),
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:rempart:problem:{code}",
        "title": title or _STATUS_TITLES.get(status, "Erreur"),
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [{"field": e.field, "reason": e.reason} for e in errors],
    }
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


def _reason(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "value_error":
        msg = str(err.get("msg", ""))
        return msg.removeprefix("Value error, ")
    if kind in ("string_too_long",):
        return f"{err['ctx']['max_length']} caractères au plus"
    if kind in ("string_too_short",):
        return (
            "ne peut pas être vide"
            if err["ctx"]["min_length"] == 1
            else (f"{err['ctx']['min_length']} caractères au moins")
        )
    if kind == "string_pattern_mismatch":
        return "format invalide"
    if kind in ("greater_than_equal", "greater_than"):
        return f"doit être au moins {err['ctx'].get('ge', err['ctx'].get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"doit être au plus {err['ctx'].get('le', err['ctx'].get('lt'))}"
    if kind == "too_long":
        return f"{err['ctx'].get('max_length')} éléments au plus"
    return _REASONS.get(kind, "valeur invalide")


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_errors(exc: RequestValidationError | ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors():
        e = dict(err)
        out.append(FieldError(_field(tuple(e.get("loc", ()))), _reason(e)))
    return out


def refused(exc: RempartError, path: str) -> Response:
    """The problem+json of a refusal, with the headers its kind calls for (logged)."""
    headers: dict[str, str] = {}
    if isinstance(exc, ChannelClosed | TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if isinstance(exc, NotAuthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="rempart"'
    log.info("request.refused", code=exc.code, status=exc.status, path=path)
    return problem(
        exc.status, exc.code, exc.message, title=exc.title, errors=exc.errors, headers=headers
    )


def crashed(exc: Exception, path: str) -> Response:
    log.exception("request.crashed", path=path, error=type(exc).__name__)
    return problem(
        500,
        "internal_error",
        "Une erreur interne est survenue. Elle a été enregistrée ; merci de réessayer.",
    )


def answer(request: Request, response: Response) -> Response:
    """Under ``/fhir/`` the problem+json answer becomes an OperationOutcome (``web.fhir``)."""
    path = request.url.path
    return outcome.from_problem(response, path) if path.startswith(outcome.PREFIX) else response


def rempart_problem(request: Request, exc: RempartError) -> Response:
    return answer(request, refused(exc, request.url.path))


def install(app: FastAPI) -> None:
    @app.exception_handler(RempartError)
    async def _rempart(request: Request, exc: RempartError) -> Response:
        return rempart_problem(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = field_errors(exc)
        if any(e.reason == "JSON illisible" for e in errors):
            return answer(
                request,
                problem(
                    400,
                    "malformed_body",
                    "Le corps de la requête n'est pas du JSON valide.",
                    errors=[FieldError("body", "JSON illisible")],
                ),
            )
        fields = ", ".join(dict.fromkeys(e.field for e in errors))
        log.info("request.invalid", path=request.url.path, fields=fields)
        return answer(
            request, problem(422, "invalid_fields", f"Champs invalides : {fields}", errors=errors)
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 400: "malformed_body"}.get(
            exc.status_code, "http_error"
        )
        detail = {  # the framework's own messages are English: ours are French
            404: "Cette ressource n'existe pas.",
            405: "Méthode non autorisée pour cette adresse.",
            400: "Corps de requête illisible.",
        }.get(exc.status_code, _STATUS_TITLES.get(exc.status_code, "Erreur"))
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = openapi.allowed_methods(request.app, request.url.path) or ""
        return answer(request, problem(exc.status_code, code, detail, headers=headers))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        return answer(request, crashed(exc, request.url.path))
