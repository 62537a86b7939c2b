"""JSON API views: parse → call a service → render. Nothing else."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from rempart.access import Card
from rempart.domain.channels import Channel
from rempart.domain.errors import NotAuthenticated, RempartError
from rempart.domain.identifiers import parse_nir
from rempart.security.principal import Principal
from rempart.services import auth
from rempart.services.rights import RightsAnswer, RightsQuery, check_rights
from rempart.services.runtime import Runtime
from rempart.web.api.schemas import (
    CoverageOut,
    RightsCheckIn,
    RightsCheckOut,
    TokenOut,
    problem_responses,
)
from rempart.web.deps import (
    NO_STORE,
    api_principal,
    client_ip,
    json_response,
    require_json,
    runtime,
)

router = APIRouter()


class UnsupportedGrantType(RempartError):
    code = "unsupported_grant_type"  # RFC 6749 §5.2
    status = 400
    title = "Type d'autorisation non pris en charge"


@router.post(
    "/oauth/token",
    response_model=TokenOut,
    tags=["Authentification"],
    summary="Obtenir un jeton d'accès (client credentials)",
    responses=problem_responses(400, 401, 422, 429),
)
async def token(
    request: Request,
    # documented as the one value accepted; another is a 400 unsupported_grant_type (RFC 6749)
    grant_type: Annotated[str, Form(json_schema_extra={"enum": ["client_credentials"]})],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
) -> Response:
    if grant_type != "client_credentials":
        raise UnsupportedGrantType("Seul grant_type=client_credentials est accepté.")
    basic = _basic(request.headers.get("authorization", ""))
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        raise NotAuthenticated("client_id et client_secret sont obligatoires.")
    issued = await auth.issue_token(
        runtime(request), client_id, client_secret, ip=client_ip(request)
    )
    return json_response(
        {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        },
        headers=NO_STORE,
    )


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, colon, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except ValueError:
        raise NotAuthenticated("En-tête Basic illisible.") from None
    if not colon:
        raise NotAuthenticated("En-tête Basic illisible (client_id:client_secret attendu).")
    return client_id, secret


def coverage_out(answer: RightsAnswer) -> CoverageOut | None:
    g = answer.guarantee
    if g is None:
        return None
    return CoverageOut(
        formula=g.formula.value,
        rate_pct=g.rate_pct,
        flat_amount=str(g.flat_amount) if g.flat_amount else None,
        ceiling_amount=str(g.ceiling_amount) if g.ceiling_amount else None,
        label=g.label,
    )


@router.post(
    "/api/v1/rights-checks",
    response_model=RightsCheckOut,
    tags=["Droits"],
    summary="Vérifier les droits d'un patient présent",
    dependencies=[Depends(require_json)],
    responses=problem_responses(400, 401, 403, 413, 415, 422, 429, 503),
)
async def rights_check(
    body: RightsCheckIn,
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
) -> Response:
    # The usual request never reaches this view: ``web.fast`` answers it in front of the
    # framework, with the same functions. This view answers what the fast path hands back
    # (and documents the endpoint in the OpenAPI document).
    answer = await answer_rights_check(runtime(request), body, principal)
    return json_response(rights_check_json(answer), headers=NO_STORE)


async def answer_rights_check(
    rt: Runtime, body: RightsCheckIn, principal: Principal
) -> RightsAnswer:
    nir = parse_nir(body.nir) if body.nir else None
    card = Card(body.amc_number, body.adherent_number.upper(), body.birth_date, body.rank, nir)
    return await check_rights(
        rt,
        RightsQuery(card, body.domain, body.care_date),
        actor=principal,
        channel=Channel.API_RIGHTS,
    )


def rights_check_json(answer: RightsAnswer) -> dict[str, object]:
    """The body is RightsCheckOut's (a test validates answers against it), built as a dict:
    no model is instantiated and dumped again on the hot path."""
    coverage = coverage_out(answer)
    return {
        "verification_id": str(answer.verification_id),
        "status": answer.status.value,
        "domain": answer.domain.value,
        "care_date": answer.care_date.isoformat(),
        "coverage": coverage.model_dump() if coverage is not None else None,
        "engagement_number": answer.engagement_number,
        "valid_until": answer.valid_until.isoformat() if answer.valid_until else None,
    }
