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
   the remittance advice of the latest one.

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
    print("\nDone. Payments appear after an operator runs `rempart pay run` / approve / export.")


if __name__ == "__main__":
    main()
