"""JSON API views of invoices and calculations (DESIGN §5): parse → call a service → render."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from rempart.domain.adjudication import InvoiceStatus
from rempart.domain.errors import FieldError, InvalidFields
from rempart.domain.money import Money
from rempart.domain.reasons import Reason
from rempart.security.principal import Principal
from rempart.services import calculations, invoices
from rempart.services.invoices import BatchItem
from rempart.web.api.schemas import (
    ArlOut,
    CalculationIn,
    CalculationOut,
    InvoiceBatchIn,
    InvoiceIn,
    InvoiceListOut,
    InvoiceOut,
    InvoiceReceiptOut,
    IsoDate,
    problem_responses,
)
from rempart.web.deps import (
    NO_STORE,
    api_principal,
    json_response,
    replay_headers,
    require_json,
    runtime,
)
from rempart.web.problems import field_errors

router = APIRouter(tags=["Factures"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="Clé unique par facture (ou par lot) : un renvoi rend la première réponse.",
    ),
]


def _doc(body: InvoiceIn) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude_none=True)


@router.post(
    "/api/v1/invoices",
    status_code=202,
    response_model=InvoiceReceiptOut,
    summary="Envoyer une facture (réception, puis traitement différé)",
    dependencies=[Depends(require_json)],
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
)
async def submit_invoice(
    body: InvoiceIn,
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    receipt = await invoices.submit(
        runtime(request), principal, _doc(body), idempotency_key=idempotency_key
    )
    return json_response(receipt.as_json(), status=202, headers=replay_headers(receipt.replayed))


@router.post(
    "/api/v1/invoice-batches",
    status_code=202,
    response_model=ArlOut,
    summary="Envoyer un lot de factures (accusé de réception logique, ARL)",
    dependencies=[Depends(require_json)],
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
)
async def submit_batch(
    body: InvoiceBatchIn,
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    items = []
    for i, raw in enumerate(body.invoices):
        number = raw.get("invoice_number")
        number = number if isinstance(number, str) and len(number) <= 40 else None
        try:
            items.append(BatchItem(i, number, _doc(InvoiceIn.model_validate(raw))))
        except ValidationError as e:
            items.append(BatchItem(i, number, None, field_errors(e)))
    batch_hash = hashlib.sha256(orjson.dumps(body.invoices, option=orjson.OPT_SORT_KEYS)).digest()
    arl, replayed = await invoices.submit_batch(
        runtime(request), principal, items, idempotency_key=idempotency_key, batch_hash=batch_hash
    )
    return json_response(arl, status=202, headers=replay_headers(replayed))


def _euros(cents: int | None) -> str | None:
    return str(Money(cents)) if cents is not None else None


def _reasons(text: str) -> list[dict[str, str]]:
    return [Reason.from_json(value).as_answer() for value in orjson.loads(text)]


@router.get(
    "/api/v1/invoices/{invoice_id}",
    response_model=InvoiceOut,
    summary="Lire une facture et la décision par ligne",
    responses=problem_responses(401, 404, 429),
)
async def get_invoice(
    invoice_id: UUID,
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
) -> Response:
    found = await invoices.get(runtime(request), principal, invoice_id)
    row = found.row
    return json_response(
        {
            "invoice_id": str(row.id),
            "invoice_number": row.invoice_number,
            "status": row.status,
            "received_at": row.received_at.isoformat(),
            "decided_at": row.decided_at.isoformat() if row.decided_at else None,
            "amc_amount": _euros(row.amc_cents),
            "lines": [
                {
                    "line_no": line.line_no + 1,
                    "status": line.status,
                    "amo_amount": _euros(line.amo_cents),
                    "amc_amount": _euros(line.amc_cents),
                    "patient_amount": _euros(line.patient_cents),
                    "reasons": _reasons(line.reasons),
                }
                for line in found.lines
            ],
        },
        headers=NO_STORE,
    )


def _cursor(value: str | None) -> tuple[datetime, UUID] | None:
    if value is None:
        return None
    try:
        at, _, last = base64.urlsafe_b64decode(value.encode()).decode().partition("|")
        return datetime.fromisoformat(at), UUID(last)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidFields([FieldError("cursor", "curseur illisible")]) from None


def _next_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(f"{row.received_at.isoformat()}|{row.id}".encode()).decode()


@router.get(
    "/api/v1/invoices",
    response_model=InvoiceListOut,
    summary="Lister les factures de votre structure (les plus récentes d'abord)",
    responses=problem_responses(401, 403, 422, 429),
)
async def list_invoices(
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
    status: InvoiceStatus | None = None,
    received_from: Annotated[IsoDate | None, Query()] = None,
    received_to: Annotated[IsoDate | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    rows = await invoices.list_own(
        runtime(request),
        principal,
        status=status,
        received_from=received_from,
        received_to=received_to,
        after=_cursor(cursor),
        limit=limit,
    )
    return json_response(
        {
            "items": [
                {
                    "invoice_id": str(r.id),
                    "invoice_number": r.invoice_number,
                    "status": r.status,
                    "care_date": r.care_date.isoformat(),
                    "received_at": r.received_at.isoformat(),
                    "decided_at": r.decided_at.isoformat() if r.decided_at else None,
                    "amc_amount": _euros(r.amc_cents),
                }
                for r in rows
            ],
            "next_cursor": _next_cursor(rows[-1]) if len(rows) == limit else None,
        },
        headers=NO_STORE,
    )


@router.post(
    "/api/v1/invoices/{invoice_id}/credit-note",
    summary="Émettre un avoir sur une facture payée (retenu sur les paiements suivants)",
    responses=problem_responses(401, 403, 404, 409, 429),
)
async def credit_invoice(
    invoice_id: UUID,
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
) -> Response:
    cents = await invoices.credit(runtime(request), principal, invoice_id)
    return json_response(
        {"invoice_id": str(invoice_id), "credited_amount": str(Money(cents))}, headers=NO_STORE
    )


@router.post(
    "/api/v1/invoices/{invoice_id}/cancel",
    summary="Annuler une facture avant son paiement",
    responses=problem_responses(401, 403, 404, 409, 429),
)
async def cancel_invoice(
    invoice_id: UUID,
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
) -> Response:
    status = await invoices.cancel(runtime(request), principal, invoice_id)
    return json_response({"invoice_id": str(invoice_id), "status": status}, headers=NO_STORE)


@router.post(
    "/api/v1/calculations",
    response_model=CalculationOut,
    tags=["Droits"],
    summary="Simuler la part AMC et le reste à charge (CLC)",
    dependencies=[Depends(require_json)],
    responses=problem_responses(400, 401, 403, 413, 415, 422, 429, 503),
)
async def calculation(
    body: CalculationIn,
    request: Request,
    principal: Annotated[Principal, Depends(api_principal)],
) -> Response:
    sim = await calculations.simulate(
        runtime(request), principal, body.model_dump(mode="json", exclude_none=True)
    )
    result = sim.result
    return json_response(
        {
            "calculation_id": str(sim.calculation_id),
            "status": "computed" if result is not None else "unknown",
            "care_date": sim.care_date.isoformat(),
            "amc_amount": str(result.amc) if result is not None else None,
            "patient_amount": str(result.patient) if result is not None else None,
            "lines": [
                {
                    "line_no": i,
                    "expense": str(r.expense),
                    "amo_amount": str(r.amo),
                    "amc_amount": str(r.amc),
                    "patient_amount": str(r.patient),
                    "capped": r.capped,
                    "trace": [{"code": s.code.value, "label": s.label} for s in r.trace],
                }
                for i, r in enumerate(result.lines if result is not None else (), 1)
            ],
        },
        headers=NO_STORE,
    )
