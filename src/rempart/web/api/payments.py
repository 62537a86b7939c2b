"""JSON API views of payments and remittance advice (DESIGN §5)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from rempart.domain.money import Money
from rempart.security.principal import Principal
from rempart.services import payments
from rempart.web.api.schemas import PaymentOut, RemittanceOut, problem_responses
from rempart.web.deps import NO_STORE, api_principal, json_response, runtime

router = APIRouter(tags=["Paiements"])


@router.get(
    "/api/v1/payments",
    response_model=list[PaymentOut],
    summary="Les paiements reçus par votre structure",
    responses=problem_responses(401, 403, 429),
)
async def list_payments(
    request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> Response:
    rows = await payments.list_payments(runtime(request), principal)
    return json_response(  # DESIGN §5: a list, newest first
        [
            {
                "payment_id": str(p.id),
                "run_id": str(p.run_id),
                "amount": str(Money(p.amount_cents)),
                "end_to_end_id": p.end_to_end_id,
                "remittance_ref": p.remittance_ref,
                "executed_on": p.executed_on.isoformat(),
            }
            for p in rows
        ],
        headers=NO_STORE,
    )


@router.get(
    "/api/v1/payments/{payment_id}/remittance",
    response_model=RemittanceOut,
    summary="Relevé de paiement (RSP) : factures payées et rejetées, avec les motifs",
    responses={
        **problem_responses(401, 403, 404, 429),
        200: {"content": {"application/json": {}, "text/csv": {}}},
    },
)
async def remittance(
    payment_id: UUID, request: Request, principal: Annotated[Principal, Depends(api_principal)]
) -> Response:
    head, lines = await payments.remittance(runtime(request), principal, payment_id)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            payments.remittance_csv(head, lines),
            media_type="text/csv; charset=utf-8",
            headers={
                **NO_STORE,
                "Content-Disposition": f'attachment; filename="{head.remittance_ref}.csv"',
            },
        )
    return json_response(
        {
            "payment_id": str(head.id),
            "remittance_ref": head.remittance_ref,
            "end_to_end_id": head.end_to_end_id,
            "executed_on": head.executed_on.isoformat(),
            "amount": str(Money(head.amount_cents)),
            "advance_netted": str(Money(head.netted_cents)),
            "lines": [
                {
                    "invoice_id": str(ln.invoice_id),
                    "invoice_number": ln.invoice_number,
                    "care_date": ln.care_date.isoformat(),
                    "status": ln.status,
                    "amc_amount": str(Money(ln.amc_cents)),
                    "reasons": [r.as_answer() for r in ln.reasons],
                }
                for ln in lines
            ],
        },
        headers=NO_STORE,
    )
