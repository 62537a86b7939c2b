"""FHIR R4 resources built from the services' answers, as plain dicts (no model is built and
dumped again on the hot path). Tests parse every one with fhir.resources' R4B models.

The NIR is never written: the patient is named by the adherent number (the card's field) or,
where Rempart keeps no card in clear, by a display text only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import orjson

from rempart.domain.care import Profession
from rempart.domain.reasons import Reason
from rempart.services.payments import PaymentOut, RemittanceLine
from rempart.services.registry import StructureIds
from rempart.services.rights import RightsAnswer
from rempart.web.fhir.systems import ADJUDICATION, BENEFIT_TYPE, EUR, PAYMENT_TYPE, Systems

STATUS_TEXT = {
    "covered": "Droits ouverts : part complémentaire garantie par le numéro d'engagement.",
    "not_covered": "Droits non ouverts pour ce domaine à cette date.",
    "unknown": "Bénéficiaire inconnu avec ces informations.",
}
INVOICE_TEXT = {
    "received": "Facture reçue ; décision à venir.",
    "accepted": "Facture acceptée.",
    "rejected": "Facture rejetée.",
    "paid": "Facture payée.",
    "cancelled": "Facture annulée.",
}
CLAIM_TYPE: dict[Profession | None, str] = {
    Profession.PHARMACY: "pharmacy",
    Profession.OPTICIAN: "vision",
    Profession.DENTIST: "oral",
    Profession.HOSPITAL: "institutional",
}


def money(cents: int) -> dict[str, Any]:
    return {"value": cents / 100, "currency": EUR}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    c = {"system": system, "code": code}
    if display is not None:
        c["display"] = display
    return {"coding": [c]}


def eligibility_response(
    sid: Systems, answer: RightsAnswer, *, amc_number: str, adherent_number: str, now: datetime
) -> dict[str, Any]:
    vid = str(answer.verification_id)
    ref = {"identifier": {"system": sid.verification_id, "value": vid}}
    out: dict[str, Any] = {
        "resourceType": "CoverageEligibilityResponse",
        "id": vid,
        "extension": [{"url": sid.extension("rights-status"), "valueCode": answer.status.value}],
        "identifier": [{"system": sid.verification_id, "value": vid}],
        "status": "active",
        "purpose": ["benefits"],
        "patient": {"identifier": {"system": sid.adherent_number, "value": adherent_number}},
        "servicedDate": answer.care_date.isoformat(),
        "created": now.isoformat(),
        "request": ref,
        "outcome": "complete",
        "disposition": STATUS_TEXT[answer.status.value],
        "insurer": {"identifier": {"system": sid.amc_number, "value": amc_number}},
    }
    if answer.engagement_number is not None:
        out["preAuthRef"] = answer.engagement_number
    if answer.status.value == "unknown":
        return out
    insurance: dict[str, Any] = {
        "coverage": {"display": "Contrat complémentaire santé"},
        "inforce": answer.status.value == "covered",
    }
    if answer.valid_until is not None:
        insurance["benefitPeriod"] = {"end": answer.valid_until.isoformat()}
    item: dict[str, Any] = {
        "category": _coding(sid.care_domain, answer.domain.value, answer.domain.label)
    }
    g = answer.guarantee
    if g is not None:
        item["extension"] = [{"url": sid.extension("coverage-formula"), "valueCode": g.formula}]
        item["description"] = g.label
        item["benefit"] = _benefits(sid, g.rate_pct, g.flat_amount, g.ceiling_amount)
    insurance["item"] = [item]
    out["insurance"] = [insurance]
    return out


def _benefits(sid: Systems, rate: int | None, flat: Any, ceiling: Any) -> list[dict[str, Any]]:
    benefits: list[dict[str, Any]] = []
    if rate is not None:
        benefits.append({"type": _coding(BENEFIT_TYPE, "benefit"), "allowedUnsignedInt": rate})
    if flat:
        benefits.append(
            {"type": _coding(sid.benefit, "flat-amount"), "allowedMoney": money(flat.cents)}
        )
    if ceiling:
        benefits.append(
            {"type": _coding(sid.benefit, "ceiling-amount"), "allowedMoney": money(ceiling.cents)}
        )
    return benefits


def _reason_adjudication(sid: Systems, reason: Reason) -> dict[str, Any]:
    return {
        "category": _coding(sid.reason_kind, reason.kind.value),
        "reason": _coding(sid.reason, reason.code.value, reason.code.label),
    }


CLAIM_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/claim-type"


def claim_response(
    sid: Systems, row: Any, lines: Sequence[Any], profession: Profession | None
) -> dict[str, Any]:
    """An invoice as a ClaimResponse: ``queued`` until the worker decided, then ``complete``
    with, per line, the AMC part as ``benefit`` and each reason as an ``adjudication.reason``."""
    number = row.invoice_number
    out: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": str(row.id),
        "extension": [{"url": sid.extension("invoice-status"), "valueCode": row.status}],
        "identifier": [{"system": sid.invoice_number, "value": number}],
        "status": "active",
        "type": _coding(
            "http://terminology.hl7.org/CodeSystem/claim-type",
            CLAIM_TYPE.get(profession, "professional") if profession else "professional",
        ),
        "use": "claim",
        "patient": {"display": f"Bénéficiaire de la facture {number}"},
        "created": row.received_at.isoformat(),
        "insurer": {"display": "Organisme complémentaire du bénéficiaire"},
        "request": {"identifier": {"system": sid.invoice_number, "value": number}},
        "outcome": "queued" if row.status == "received" else "complete",
        "disposition": INVOICE_TEXT.get(row.status, row.status),
    }
    if lines:
        out["item"] = [
            {
                "itemSequence": line.line_no + 1,
                "adjudication": [
                    {"category": _coding(ADJUDICATION, "benefit"), "amount": money(line.amc_cents)},
                    {"category": _coding(sid.amount, "amo"), "amount": money(line.amo_cents)},
                    {
                        "category": _coding(sid.amount, "patient"),
                        "amount": money(line.patient_cents),
                    },
                    *(
                        _reason_adjudication(sid, Reason.from_json(r))
                        for r in orjson.loads(line.reasons)
                    ),
                ],
            }
            for line in lines
        ]
    if row.amc_cents is not None and row.status != "received":
        out["total"] = [
            {"category": _coding(ADJUDICATION, "benefit"), "amount": money(row.amc_cents)}
        ]
    return out


def reconciliation(
    sid: Systems, p: PaymentOut, lines: Sequence[RemittanceLine], ids: StructureIds
) -> dict[str, Any]:
    """A payment and its remittance advice (RSP): one ``detail`` per invoice it reports."""
    details: list[dict[str, Any]] = [
        {
            "extension": [
                {"url": sid.extension("remittance-status"), "valueCode": ln.status},
                *(
                    {
                        "url": sid.extension("reason"),
                        "valueCoding": {
                            "system": sid.reason,
                            "code": r.code.value,
                            "display": r.code.label,
                        },
                    }
                    for r in ln.reasons
                ),
            ],
            "identifier": {"system": sid.invoice_number, "value": ln.invoice_number},
            "type": _coding(PAYMENT_TYPE, "payment"),
            "response": {"reference": f"ClaimResponse/{ln.invoice_id}"},
            "date": ln.care_date.isoformat(),
            "amount": money(ln.amc_cents),
        }
        for ln in lines
    ]
    if p.netted_cents:
        details.append({"type": _coding(PAYMENT_TYPE, "advance"), "amount": money(-p.netted_cents)})
    out: dict[str, Any] = {
        "resourceType": "PaymentReconciliation",
        "id": str(p.id),
        "identifier": [{"system": sid.remittance_ref, "value": p.remittance_ref}],
        "status": "active",
        "created": _midnight(p.executed_on),
        "outcome": "complete",
        "disposition": f"Relevé de paiement {p.remittance_ref}",
        "paymentDate": p.executed_on.isoformat(),
        "paymentAmount": money(p.amount_cents),
        "detail": details,
    }
    if p.end_to_end_id:
        out["paymentIdentifier"] = {"system": sid.end_to_end_id, "value": p.end_to_end_id}
    requestor = _requestor(sid, ids)
    if requestor is not None:
        out["requestor"] = requestor
    return out


def _requestor(sid: Systems, ids: StructureIds) -> dict[str, Any] | None:
    if ids.finess:
        return {"identifier": {"system": sid.finess, "value": ids.finess}}
    if ids.rpps:
        return {"identifier": {"system": sid.rpps, "value": ids.rpps}}
    return None


def _midnight(day: date) -> str:
    return day.isoformat()  # a FHIR dateTime may be a date


def bundle(sid: Systems, resources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{sid.base}/r4/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }
