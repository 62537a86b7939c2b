"""What a pharmacy's software does with Rempart, in five minutes of reading.

    make demo                     # in another terminal: serves http://localhost:8000
    python examples/lgo_client.py [--base-url http://localhost:8000] [--fixtures var/fixtures]

Uses one of the demo's API clients (``var/fixtures/clients.json``) and one of its patients
(``cards.csv``), and prints a trace of every exchange:

1. ``POST /oauth/token``: client credentials → a bearer token (15 minutes);
2. ``POST /api/v1/rights-checks``: the card's fields → covered / not covered / unknown, the
   coverage, an engagement number;
3. ``POST /api/v1/calculations``: what the insurer will pay for the lines, before billing;
4. ``POST /api/v1/invoices`` with an ``Idempotency-Key``: 202 "received" — sent twice, to show
   that a retry returns the first answer;
5. ``GET /api/v1/invoices/{id}`` until the worker has decided it: accepted, the AMC part per
   line, the reasons if any;
6. ``GET /api/v1/payments``: the transfers received (after an operator's payment run), and
   the remittance advice of the latest one;

then the same over FHIR R4 (``docs/fhir.md``): ``CoverageEligibilityRequest``, ``Claim``,
``ClaimResponse`` until it is ``complete``, ``PaymentReconciliation``.

Only ``httpx`` is needed. Every error is an ``application/problem+json`` body naming the field.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx


def show(step: str, r: httpx.Response) -> Any:
    body = r.json() if r.content else {}
    print(f"\n── {step}: HTTP {r.status_code}")
    print(json.dumps(body, indent=2, ensure_ascii=False)[:1500])
    if r.status_code >= 400:
        sys.exit(f"stopped: {body.get('detail', r.text)}")
    return body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://localhost:8000")
    ap.add_argument("--fixtures", type=Path, default=Path("var/fixtures"))
    a = ap.parse_args()
    clients = json.loads((a.fixtures / "clients.json").read_text())
    client = next(c for c in clients if c["profession"] == "pharmacy" and not c.get("bench"))
    card = next(iter(csv.DictReader((a.fixtures / "cards.csv").read_text().splitlines())))
    today = datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()  # care dates are French
    patient = {
        "amc_number": card["amc_number"],
        "adherent_number": card["adherent_number"],
        "birth_date": card["birth_date"],
        "rank": int(card["rank"]),
    }
    drug = {  # a box at €7.35, reimbursed 65 % by the AMO: the AMC part is the €2.57 left
        "domain": "PHAR",
        "code_system": "CIP13",
        "code": "3400930000014",
        "quantity": 1,
        "unit_price": "7.35",
        "brss": "7.35",
        "amo_rate": 65,
        "amo_amount": "4.78",
    }
    with httpx.Client(base_url=a.base_url, timeout=10) as http:
        token = show(
            "1. token",
            http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client["client_id"],
                    "client_secret": client["client_secret"],
                },
            ),
        )["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        rights = show(
            "2. rights check",
            http.post(
                "/api/v1/rights-checks", json={**patient, "domain": "PHAR", "care_date": today}
            ),
        )
        if rights["status"] != "covered":
            sys.exit("this patient is not covered today: pick another line of cards.csv")
        show(
            "3. what the insurer will pay",
            http.post(
                "/api/v1/calculations",
                json={"care_date": today, "beneficiary": patient, "lines": [drug]},
            ),
        )
        invoice = {
            "invoice_number": f"EX-{uuid.uuid4().hex[:10]}",
            "care_date": today,
            "engagement_number": rights["engagement_number"],
            "beneficiary": patient,
            "lines": [{**drug, "amc_amount_claimed": "2.57"}],
        }
        key = {"Idempotency-Key": invoice["invoice_number"]}
        receipt = show("4. invoice", http.post("/api/v1/invoices", json=invoice, headers=key))
        again = http.post("/api/v1/invoices", json=invoice, headers=key)
        print(
            f"   sent again under the same key: HTTP {again.status_code}, same invoice "
            f"{again.json()['invoice_id'] == receipt['invoice_id']}, "
            f"Idempotent-Replayed: {again.headers.get('idempotent-replayed')}"
        )
        for _ in range(30):  # `rempart serve` runs a worker: a few seconds at most
            decided = http.get(f"/api/v1/invoices/{receipt['invoice_id']}").json()
            if decided["status"] != "received":
                break
            time.sleep(1)
        show("5. decision", http.get(f"/api/v1/invoices/{receipt['invoice_id']}"))
        paid = show("6. payments received", http.get("/api/v1/payments"))
        if paid:  # the remittance advice of the latest transfer: what it pays, invoice by invoice
            show(
                "7. remittance advice",
                http.get(f"/api/v1/payments/{paid[0]['payment_id']}/remittance"),
            )
        fhir(http, a.base_url, client, patient, drug, today)
    print("\nDone. Payments appear after an operator runs `rempart pay run` / approve / export.")


def fhir(
    http: httpx.Client, base: str, client: dict[str, str], patient: dict[str, Any],
    drug: dict[str, Any], today: str,
) -> None:  # fmt: skip
    """The same exchanges over FHIR R4 (docs/fhir.md), with the same token; the claim bills
    another box (the same one again would be a duplicate, R10)."""
    drug = {**drug, "code": "3400930000021", "unit_price": "4.00", "brss": "4.00",
            "amo_amount": "2.60"}  # fmt: skip
    sid = f"{base}/fhir/sid"
    ext = f"{base}/fhir/StructureDefinition"
    domain = {"coding": [{"system": f"{base}/fhir/CodeSystem/care-domain", "code": "PHAR"}]}
    person = {
        "resourceType": "Patient",
        "id": "patient",
        "extension": [{"url": f"{ext}/birth-rank", "valueInteger": patient["rank"]}],
        "identifier": [{"system": f"{sid}/adherent-number", "value": patient["adherent_number"]}],
        "birthDate": patient["birth_date"],
    }
    insurer = {"identifier": {"system": f"{sid}/amc-number", "value": patient["amc_number"]}}
    print("\n══ The same over FHIR R4 (/fhir/r4)")
    eligibility = show(
        "F1. CoverageEligibilityRequest",
        http.post(
            "/fhir/r4/CoverageEligibilityRequest",
            json={
                "resourceType": "CoverageEligibilityRequest", "status": "active",
                "purpose": ["benefits"], "created": today, "servicedDate": today,
                "contained": [person], "patient": {"reference": "#patient"},
                "insurer": insurer, "item": [{"category": domain}],
            },
        ),
    )  # fmt: skip
    engagement = eligibility.get("preAuthRef")
    euros = lambda amount: {"value": float(amount), "currency": "EUR"}  # noqa: E731
    claim = {
        "resourceType": "Claim",
        "identifier": [{"system": f"{sid}/invoice-number", "value": f"EXF-{uuid.uuid4().hex[:9]}"}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                             "code": "pharmacy"}]},
        "use": "claim",
        "contained": [person],
        "patient": {"reference": "#patient"},
        "created": today,
        "billablePeriod": {"start": today},
        "insurer": insurer,
        "provider": {"reference": f"Organization/{client['structure_id']}"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority",
                                 "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Contrat AMC"},
                       **({"preAuthRef": [engagement]} if engagement else {})}],
        "item": [{
            "sequence": 1,
            "extension": [
                {"url": f"{ext}/brss", "valueMoney": euros(drug["brss"])},
                {"url": f"{ext}/amo-rate", "valueInteger": drug["amo_rate"]},
                {"url": f"{ext}/amo-amount", "valueMoney": euros(drug["amo_amount"])},
                {"url": f"{ext}/amc-amount-claimed", "valueMoney": euros("1.40")},
            ],
            "category": domain,
            "productOrService": {"coding": [{"system": f"{base}/fhir/CodeSystem/cip13",
                                             "code": drug["code"]}]},
            "quantity": {"value": drug["quantity"]},
            "unitPrice": euros(drug["unit_price"]),
        }],
    }  # fmt: skip
    queued = show("F2. Claim", http.post("/fhir/r4/Claim", json=claim))
    answer = queued
    for _ in range(30):  # queued, then complete once the worker has decided
        answer = http.get(f"/fhir/r4/ClaimResponse/{queued['id']}").json()
        if answer.get("outcome") != "queued":
            break
        time.sleep(1)
    show("F3. ClaimResponse", http.get(f"/fhir/r4/ClaimResponse/{queued['id']}"))
    show(
        "F4. PaymentReconciliation",
        http.get(
            "/fhir/r4/PaymentReconciliation",
            params={"requestor": f"Organization/{client['structure_id']}"},
        ),
    )


if __name__ == "__main__":
    main()
