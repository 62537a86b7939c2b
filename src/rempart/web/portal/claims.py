"""Portal pages of prises en charge and invoices (French). Each view parses the form into the
JSON API's document, validates it with the API's own schema, and calls the same service as the
API (``services.pec``, ``services.invoices``): same rules, same access checks, same audit."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from rempart.domain.adjudication import InvoiceStatus
from rempart.domain.care import PROFESSION_DOMAINS, CareDomain
from rempart.domain.errors import InvalidFields
from rempart.domain.pec import PEC_DOMAINS
from rempart.domain.reasons import Reason
from rempart.domain.roles import Permission
from rempart.security.sessions import Session
from rempart.services import invoices, pec
from rempart.web.api.schemas import InvoiceIn, PecIn
from rempart.web.deps import runtime
from rempart.web.portal.forms import errors_by_field, flat, to_doc, validated
from rempart.web.portal.session import check_csrf
from rempart.web.portal.view import page, signed

router = APIRouter(include_in_schema=False)
Pec = Annotated[Session, Depends(signed(Permission.REQUEST_PEC))]
Billing = Annotated[Session, Depends(signed(Permission.SUBMIT_INVOICES))]
CODE_SYSTEMS = ("CIP13", "LPP", "CCAM", "NGAP")
LINE_SLOTS = 3

INVOICE_STATUS_LABELS = {
    InvoiceStatus.RECEIVED: "Reçue, en traitement",
    InvoiceStatus.ACCEPTED: "Acceptée",
    InvoiceStatus.REJECTED: "Rejetée",
    InvoiceStatus.PAID: "Payée",
    InvoiceStatus.CANCELLED: "Annulée",
}


def _reasons(text: str) -> list[Reason]:
    return [Reason.from_json(value) for value in orjson.loads(text)]


def _domains(session: Session, only: frozenset[CareDomain] | None = None) -> list[CareDomain]:
    profession = session.principal.profession
    allowed = PROFESSION_DOMAINS[profession] if profession else frozenset()
    return sorted(allowed & only if only else allowed, key=lambda d: d.label)


def _form(session: Session, values: dict[str, str], errors: dict[str, str], **kw: Any) -> Any:
    return {
        "values": values,
        "errors": errors,
        "slots": range(LINE_SLOTS),
        "system_options": [(c, c) for c in CODE_SYSTEMS],
        "domain_options": [(d.value, d.label) for d in kw.pop("domains")],
        **kw,
    }


# -- prises en charge ------------------------------------------------------------------------


@router.get("/portail/prises-en-charge", response_class=HTMLResponse)
async def pec_list(request: Request, session: Pec) -> Response:
    rows = await pec.list_own(runtime(request), session.principal)
    return page(request, session, "portal/pec_liste.html", {"active": "pec", "rows": rows})


def _pec_form(session: Session, values: dict[str, str], errors: dict[str, str]) -> Any:
    domains = _domains(session, PEC_DOMAINS)
    defaults = {"beneficiary.rank": "1"}
    if len(domains) == 1:
        defaults.update({f"lines.{i}.domain": domains[0].value for i in range(LINE_SLOTS)})
    return _form(session, {**defaults, **values}, errors, domains=domains)


@router.get("/portail/prises-en-charge/nouvelle", response_class=HTMLResponse)
async def pec_new(request: Request, session: Pec) -> Response:
    values = {"care_date": runtime(request).today().isoformat()}
    ctx = {"active": "pec", "form": _pec_form(session, values, {})}
    return page(request, session, "portal/pec_nouvelle.html", ctx)


@router.post(
    "/portail/prises-en-charge", response_class=HTMLResponse, dependencies=[Depends(check_csrf)]
)
async def pec_submit(request: Request, session: Pec) -> Response:
    values = flat(await request.form())
    try:
        doc = validated(PecIn, to_doc(values))
        answer = await pec.request(runtime(request), session.principal, doc, idempotency_key=None)
    except InvalidFields as e:
        form = _pec_form(session, values, errors_by_field(e.errors))
        ctx = {"active": "pec", "form": form}
        return page(request, session, "portal/pec_nouvelle.html", ctx, 422)
    return RedirectResponse(f"/portail/prises-en-charge/{answer.id}", status_code=303)


@router.get("/portail/prises-en-charge/{pec_id}", response_class=HTMLResponse)
async def pec_detail(request: Request, session: Pec, pec_id: UUID) -> Response:
    answer = await pec.get(runtime(request), session.principal, pec_id)
    ok = {"annulee": "La prise en charge est annulée."}.get(request.query_params.get("ok", ""))
    ctx = {"active": "pec", "pec": answer, "notice": ok}
    return page(request, session, "portal/pec_detail.html", ctx)


@router.post("/portail/prises-en-charge/{pec_id}/annuler", dependencies=[Depends(check_csrf)])
async def pec_cancel(request: Request, session: Pec, pec_id: UUID) -> Response:
    await pec.cancel(runtime(request), session.principal, pec_id)
    return RedirectResponse(f"/portail/prises-en-charge/{pec_id}?ok=annulee", status_code=303)


# -- invoices --------------------------------------------------------------------------------


@router.get("/portail/factures", response_class=HTMLResponse)
async def invoice_list(
    request: Request, session: Billing, statut: Annotated[str, Query(max_length=10)] = ""
) -> Response:
    status = InvoiceStatus(statut) if statut in set(InvoiceStatus) else None
    rows = await invoices.list_own(
        runtime(request), session.principal, status=status, received_from=None,
        received_to=None, after=None, limit=100,
    )  # fmt: skip
    ctx = {
        "active": "factures",
        "rows": rows,
        "status": status,
        "labels": INVOICE_STATUS_LABELS,
    }
    return page(request, session, "portal/factures_liste.html", ctx)


def _invoice_form(session: Session, values: dict[str, str], errors: dict[str, str]) -> Any:
    domains = _domains(session)
    defaults = {"beneficiary.rank": "1"}
    for i in range(LINE_SLOTS):
        defaults[f"lines.{i}.quantity"] = "1"
        if len(domains) == 1:
            defaults[f"lines.{i}.domain"] = domains[0].value
    return _form(session, {**defaults, **values}, errors, domains=domains)


@router.get("/portail/factures/nouvelle", response_class=HTMLResponse)
async def invoice_new(request: Request, session: Billing) -> Response:
    values = {"care_date": runtime(request).today().isoformat()}
    for k in ("engagement_number", "pec_number"):
        given = request.query_params.get(k, "")
        if given.isalnum() and len(given) <= 40:
            values[k] = given
    ctx = {"active": "factures", "form": _invoice_form(session, values, {})}
    return page(request, session, "portal/facture_nouvelle.html", ctx)


@router.post("/portail/factures", response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
async def invoice_submit(request: Request, session: Billing) -> Response:
    values = flat(await request.form())
    try:
        doc = validated(InvoiceIn, to_doc(values))
        receipt = await invoices.submit(
            runtime(request), session.principal, doc, idempotency_key=None, channel="portal"
        )
    except InvalidFields as e:
        form = _invoice_form(session, values, errors_by_field(e.errors))
        ctx = {"active": "factures", "form": form}
        return page(request, session, "portal/facture_nouvelle.html", ctx, 422)
    return RedirectResponse(f"/portail/factures/{receipt.invoice_id}?ok=recue", status_code=303)


@router.get("/portail/factures/{invoice_id}", response_class=HTMLResponse)
async def invoice_detail(request: Request, session: Billing, invoice_id: UUID) -> Response:
    found = await invoices.get(runtime(request), session.principal, invoice_id)
    notice = {
        "recue": "Facture reçue : elle est enregistrée et sera traitée dans quelques instants.",
        "annulee": "La facture est annulée.",
    }.get(request.query_params.get("ok", ""))
    ctx = {
        "active": "factures",
        "invoice": found.row,
        "lines": [(ln, _reasons(ln.reasons)) for ln in found.lines],
        "labels": INVOICE_STATUS_LABELS,
        "notice": notice,
    }
    return page(request, session, "portal/facture_detail.html", ctx)


@router.post("/portail/factures/{invoice_id}/annuler", dependencies=[Depends(check_csrf)])
async def invoice_cancel(request: Request, session: Billing, invoice_id: UUID) -> Response:
    await invoices.cancel(runtime(request), session.principal, invoice_id)
    return RedirectResponse(f"/portail/factures/{invoice_id}?ok=annulee", status_code=303)
