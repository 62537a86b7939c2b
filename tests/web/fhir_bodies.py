"""FHIR request bodies for the tests, built the way docs/fhir.md shows them."""

from __future__ import annotations

from typing import Any

from rempart.web.fhir.systems import Systems

SID = Systems.under("http://localhost:8000")  # tests' settings: port 8000, no base URL


def patient(card: dict[str, Any], nir: str | None = None) -> dict[str, Any]:
    ids: list[dict[str, str]] = [{"system": SID.adherent_number, "value": card["adherent_number"]}]
    if nir is not None:
        ids.append({"system": "urn:oid:1.2.250.1.213.1.4.8", "value": nir})
    return {
        "resourceType": "Patient",
        "id": "patient",
        "extension": [{"url": SID.extension("birth-rank"), "valueInteger": card.get("rank", 1)}],
        "identifier": ids,
        "birthDate": card["birth_date"],
    }


def eligibility(
    card: dict[str, Any],
    domain: str = "PHAR",
    care_date: str = "2026-12-01",
    nir: str | None = None,
) -> dict[str, Any]:
    return {
        "resourceType": "CoverageEligibilityRequest",
        "status": "active",
        "purpose": ["benefits"],
        "created": care_date,
        "servicedDate": care_date,
        "contained": [patient(card, nir)],
        "patient": {"reference": "#patient"},
        "insurer": {"identifier": {"system": SID.amc_number, "value": card["amc_number"]}},
        "item": [{"category": {"coding": [{"system": SID.care_domain, "code": domain}]}}],
    }


def money(value: float) -> dict[str, Any]:
    return {"value": value, "currency": "EUR"}


def item(
    seq: int = 1,
    *,
    quantity: int = 1,
    price: float = 10.0,
    amo: float = 6.5,
    amc: float = 3.5,
    rate: int = 65,
    brss: float | None = None,
    domain: str = "PHAR",
    system: str = "CIP13",
    code: str = "3400930000014",
) -> dict[str, Any]:
    return {
        "sequence": seq,
        "extension": [
            {"url": SID.extension("brss"), "valueMoney": money(price if brss is None else brss)},
            {"url": SID.extension("amo-rate"), "valueInteger": rate},
            {"url": SID.extension("amo-amount"), "valueMoney": money(amo)},
            {"url": SID.extension("amc-amount-claimed"), "valueMoney": money(amc)},
        ],
        "category": {"coding": [{"system": SID.care_domain, "code": domain}]},
        "productOrService": {"coding": [{"system": SID.code_system[system], "code": code}]},
        "quantity": {"value": quantity},
        "unitPrice": money(price),
    }


def claim(
    card: dict[str, Any],
    number: str,
    finess: str,
    engagement: str | None,
    items: list[dict[str, Any]] | None = None,
    care_date: str = "2026-12-01",
    claim_type: str = "pharmacy",
) -> dict[str, Any]:
    insurance: dict[str, Any] = {
        "sequence": 1,
        "focal": True,
        "coverage": {"display": "Contrat complémentaire"},
    }
    if engagement is not None:
        insurance["preAuthRef"] = [engagement]
    return {
        "resourceType": "Claim",
        "identifier": [{"system": SID.invoice_number, "value": number}],
        "status": "active",
        "type": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": claim_type}
            ]
        },
        "use": "claim",
        "contained": [patient(card)],
        "patient": {"reference": "#patient"},
        "created": care_date,
        "billablePeriod": {"start": care_date},
        "insurer": {"identifier": {"system": SID.amc_number, "value": card["amc_number"]}},
        "provider": {"identifier": {"system": SID.finess, "value": finess}},
        "priority": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/processpriority",
                    "code": "normal",
                }
            ]
        },
        "insurance": [insurance],
        "item": items or [item()],
    }
