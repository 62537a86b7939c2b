"""Errors under ``/fhir/`` are FHIR ``OperationOutcome`` resources (DESIGN §5), not
problem+json: the same status, the same stable code (``issue.details.coding``, system
``urn:rempart:problem``), the same French reason, and each field at fault as a FHIRPath
``expression`` (``Claim.item[0].unitPrice``).

    >>> fhir_path(("body", "item", 0, "unitPrice", "value"), "Claim")
    'Claim.item[0].unitPrice.value'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.responses import Response

from rempart.domain.errors import FieldError

FHIR_JSON = "application/fhir+json"
PREFIX = "/fhir/"

# HTTP status → OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)
_ISSUE_TYPE = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    500: "exception",
    503: "transient",
}


def fhir_path(loc: Sequence[Any], resource: str) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = resource
    for p in parts:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def resource_of(path: str) -> str:
    """``/fhir/r4/Claim`` → ``Claim`` (the root of the FHIRPath expressions)."""
    parts = path.removeprefix(PREFIX).split("/")
    return parts[1] if len(parts) > 1 and parts[1] else "Resource"


def outcome_json(
    status: int, code: str, detail: str, errors: Sequence[FieldError] = ()
) -> dict[str, Any]:
    kind = _ISSUE_TYPE.get(status, "processing")
    issues: list[dict[str, Any]] = [
        {
            "severity": "error",
            "code": kind,
            "details": {
                "coding": [{"system": "urn:rempart:problem", "code": code}],
                "text": detail,
            },
        }
    ]
    for e in errors:
        issues.append(
            {
                "severity": "error",
                "code": "required" if e.reason == "champ obligatoire" else kind,
                "diagnostics": e.reason,
                "expression": [e.field],
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues}


def outcome(
    status: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        orjson.dumps(outcome_json(status, code, detail, errors)),
        status_code=status,
        media_type=FHIR_JSON,
        headers=headers,
    )


def rebased(errors: Sequence[FieldError], path: str) -> list[FieldError]:
    """Field errors named by the JSON API's dotted paths, as FHIRPath under the resource."""
    resource = resource_of(path)
    return [FieldError(fhir_path(e.field.split("."), resource), e.reason) for e in errors]


def from_problem(response: Response, path: str) -> Response:
    """The OperationOutcome of a problem+json answer (the one translation of every error)."""
    body = orjson.loads(bytes(response.body))
    errors = [FieldError(e["field"], e["reason"]) for e in body.get("errors", ())]
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() in ("retry-after", "www-authenticate", "allow")
    }
    if errors and not errors[0].field.startswith(resource_of(path)):
        errors = rebased(errors, path)
    return outcome(
        response.status_code, body["code"], body["detail"], errors=errors, headers=headers
    )
