"""Portal pages of payments and remittance advice (RSP): the list of the structure's payments,
and one remittance advice as a printable page (and its CSV), from ``services.payments`` like
``GET /api/v1/payments`` and ``…/remittance``."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from rempart.domain.roles import Permission
from rempart.security.sessions import Session
from rempart.services import payments
from rempart.web.deps import NO_STORE, runtime
from rempart.web.portal.view import page, signed

router = APIRouter(include_in_schema=False)
Payee = Annotated[Session, Depends(signed(Permission.VIEW_PAYMENTS))]


@router.get("/portail/paiements", response_class=HTMLResponse)
async def payment_list(request: Request, session: Payee) -> Response:
    rows = await payments.list_payments(runtime(request), session.principal)
    return page(request, session, "portal/paiements.html", {"active": "paiements", "rows": rows})


@router.get("/portail/paiements/{payment_id}", response_class=HTMLResponse)
async def remittance_page(request: Request, session: Payee, payment_id: UUID) -> Response:
    head, lines = await payments.remittance(runtime(request), session.principal, payment_id)
    ctx = {
        "active": "paiements",
        "p": head,
        "lines": lines,
        "paid": sum(ln.amc_cents for ln in lines if ln.status == "paid"),
        "rejected": sum(1 for ln in lines if ln.status != "paid"),
    }
    return page(request, session, "portal/releve.html", ctx)


@router.get("/portail/paiements/{payment_id}/releve.csv")
async def remittance_csv(request: Request, session: Payee, payment_id: UUID) -> Response:
    head, lines = await payments.remittance(runtime(request), session.principal, payment_id)
    return Response(
        payments.remittance_csv(head, lines),
        media_type="text/csv; charset=utf-8",
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="{head.remittance_ref}.csv"',
        },
    )
