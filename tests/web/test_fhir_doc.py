"""docs/fhir.md's examples are real: each request is sent to the app (PostgreSQL, the test
world), and the answer must be the documented one, ids, dates and numbers drawn at random
aside. A change to the FHIR answers that the documentation does not follow fails here."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import update

from rempart.db.tables import bank_account
from rempart.services import adjudication, payments
from tests.web.conftest import Api
from tests.web.test_fhir import FHIR

DOC = Path(__file__).resolve().parents[2] / "docs" / "fhir.md"
EXAMPLE = re.compile(
    r"<!-- example (?P<method>GET|POST) (?P<path>\S+) (?P<status>\d{3}) -->\s*"
    r"(?:```json\n(?P<request>.*?)```\s*)?→\s*```json\n(?P<response>.*?)```",
    re.S,
)
_VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\bE[A-Z2-7]{26}\b"), "<engagement>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)"), "<instant>"),
    (re.compile(r"RMP[0-9a-f-]{8,}"), "<sepa-id>"),
    (re.compile(r"RSP[0-9a-f]{12}-\d{6}"), "<remittance-ref>"),
]


def normalized(data: Any) -> Any:
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    for pattern, mask in _VOLATILE:
        text = pattern.sub(mask, text)
    return json.loads(text)


def examples() -> list[dict[str, str]]:
    return [m.groupdict() for m in EXAMPLE.finditer(DOC.read_text())]


async def _paid_day(api: Api, tmp_path: Path) -> None:
    from tests.web.test_payments import ALICE, BOB

    await adjudication.decide_all(api.rt)
    async with api.rt.db.transaction() as conn:
        await conn.execute(update(bank_account).values(pays_from=api.rt.now() - timedelta(days=30)))
    run = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, run.id)
    await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")


async def test_every_documented_exchange_is_what_the_app_answers(api: Api, tmp_path: Path) -> None:
    found = examples()
    assert len(found) >= 6  # metadata, eligibility, claim, claim response, reconciliation, error
    headers = {**FHIR, "Authorization": f"Bearer {await api.token()}"}
    last_id = engagement = ""
    for ex in found:
        path = ex["path"].replace("{id}", last_id)
        if "PaymentReconciliation" in path:
            await _paid_day(api, tmp_path)
        elif path.startswith("/fhir/r4/ClaimResponse/"):
            await adjudication.decide_all(api.rt)
        request = ex["request"] and _VOLATILE[1][0].sub(engagement, ex["request"])
        body = json.loads(request) if request else None
        r = await api.http.request(ex["method"], path, json=body, headers=headers)
        got = r.json()
        shown = normalized(got)
        print(f"=== {ex['method']} {path}\n" + json.dumps(got, indent=2, ensure_ascii=False))
        assert r.status_code == int(ex["status"]), (path, r.text)
        assert shown == normalized(json.loads(ex["response"])), path
        get_fhir_model_class(got["resourceType"]).model_validate(got)  # valid R4B
        if got["resourceType"] == "ClaimResponse":
            last_id = got["id"]
        engagement = got.get("preAuthRef", engagement)
