"""JSON API views of prises en charge (DESIGN §2.4, §5): parse → call a service → render."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rempart.domain.reasons import Reason
from rempart.security.principal import Principal
from rempart.services import pec
from rempart.services.pec import PecAnswer
from rempart.web.api.invoices import IdempotencyKey
from rempart.web.api.schemas import PecIn, PecOut, problem_responses
from rempart.web.deps import (
    NO_STORE,
    api_principal,
    json_response,
    replay_headers,
    require_json,
    runtime,
)

router = APIRouter(tags=["Prises en charge"])


def _reasons(reasons: tuple[Reason, ...]) -> list[dict[str, str]]:
    return [r.as_answer() for r in reasons]


def _out(a: PecAnswer) -> dict[str, Any]:
    return {
        "pec_id": str(a.id),
        "pec_number": a.number,
        "status": a.status.value,
        "status_label": a.status.label,
        "care_date": a.care_date.isoformat(),
        "valid_until": a.valid_until.isoformat() if a.valid_until else None,
        "amc_amount": str(a.amc),
        "reasons": _reasons(a.reasons),
        "lines": [
            {
                "line_no": i,
                "status": "accepted" if ln.accepted else "rejected",
                "amo_amount": str(ln.amo),
                "amc_amount": str(ln.amc),
                "patient_amount": str(ln.patient),
                "reasons": _reasons(ln.reasons),
            }
            for i, ln in enumerate(a.lines, 1)
        ],
    }


@router.post(
    "/api/v1/prises-en-charge",
    response_model=PecOut,
    summary="Demander une prise en charge (optique, audio, dentaire)",
    dependencies=[Depends(require_json)],
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
)
async def request_pec(
    body: PecIn,
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    answer = await pec.request(
        runtime(request),
        principal,
        body.model_dump(mode="json", exclude_none=True),
        idempotency_key=idempotency_key,
    )
    return json_response(
        _out(answer),
        status=200 if answer.replayed else 201,
        headers=replay_headers(answer.replayed),
    )


@router.get(
    "/api/v1/prises-en-charge/{pec_id}",
    response_model=PecOut,
    summary="Lire une prise en charge",
    responses=problem_responses(401, 404, 429),
)
async def get_pec(
    pec_id: UUID, request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> Response:
    return json_response(_out(await pec.get(runtime(request), principal, pec_id)), headers=NO_STORE)


@router.post(
    "/api/v1/prises-en-charge/{pec_id}/cancel",
    response_model=PecOut,
    summary="Annuler une prise en charge (pas de vente)",
    responses=problem_responses(401, 403, 404, 409, 429),
)
async def cancel_pec(
    pec_id: UUID, request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> Response:
    answer = await pec.cancel(runtime(request), principal, pec_id)
    return json_response(_out(answer), headers=NO_STORE)
