"""The FHIR R4 facade through HTTP on PostgreSQL: every answer parses with fhir.resources' R4B
models, the CapabilityStatement says exactly what the routes do, and the facade gives the JSON
API's answers (same services, same tokens, same access rules), errors as OperationOutcome."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.coverageeligibilityresponse import CoverageEligibilityResponse
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.paymentreconciliation import PaymentReconciliation
from sqlalchemy import select, update

from rempart.db.tables import audit_event, bank_account, structure
from rempart.services import adjudication, payments
from rempart.web.fhir.capability import INTERACTIONS
from tests.web import fhir_bodies as fb
from tests.web.conftest import Api

FHIR = {"Content-Type": "application/fhir+json"}


def auth(token: str) -> dict[str, str]:
    return {**FHIR, "Authorization": f"Bearer {token}"}


def outcome(r: httpx.Response, status: int, code: str, *expressions: str) -> OperationOutcome:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    oo = OperationOutcome.model_validate_json(r.content)
    assert oo.issue[0].details.coding[0].code == code, r.text
    got = [e for i in oo.issue[1:] for e in (i.expression or [])]
    assert all(e in got for e in expressions), got
    return oo


async def finess(api: Api, pro: Any = None) -> str:
    pro = pro or api.pharmacy
    async with api.rt.db.transaction() as conn:
        q = select(structure.c.finess).where(structure.c.id == pro.structure_id)
        return str((await conn.execute(q)).scalar_one())


async def test_the_capability_statement_lists_exactly_the_mounted_interactions(api: Api) -> None:
    r = await api.http.get("/fhir/r4/metadata")
    assert r.status_code == 200
    cs = CapabilityStatement.model_validate_json(r.content)
    said = {(res.type, i.code) for res in cs.rest[0].resource for i in res.interaction}
    paths = (await api.http.get("/openapi.json")).json()["paths"]  # what the app routes
    mounted = set()
    for path, methods in paths.items():
        if not path.startswith("/fhir/r4/") or path == "/fhir/r4/metadata":
            continue
        kind, *rest = path.removeprefix("/fhir/r4/").split("/")
        for method in methods:
            mounted.add((kind, "create" if method == "post" else "read" if rest else "search-type"))
            # and each answers (401 without a token), not 404 or 405
            probe = await api.http.request(
                method, path.replace("{claim_response_id}", str(uuid.uuid4())), headers=FHIR
            )
            assert probe.status_code == 401, (path, probe.status_code)
    assert said == mounted == {(k, i) for k, v in INTERACTIONS.items() for i in v}
    search = {p.name for res in cs.rest[0].resource for p in res.searchParam or ()}
    assert search == {"requestor"}  # the one query parameter PaymentReconciliation reads


async def test_eligibility_answers_as_the_json_rights_check_and_never_shows_the_nir(
    api: Api,
) -> None:
    token = await api.token()
    p = api.persons[0]
    card = p.card(api.insurer.amc_number)
    r = await api.http.post(
        "/fhir/r4/CoverageEligibilityRequest",
        json=fb.eligibility(card, nir=p.nir),
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    assert p.nir not in r.text and "1.2.250.1.213.1.4.8" not in r.text
    res = CoverageEligibilityResponse.model_validate_json(r.content)
    assert res.purpose == ["benefits"] and res.outcome == "complete"
    assert res.extension[0].valueCode == "covered"
    assert res.preAuthRef and res.preAuthRef.startswith("E")
    ins = res.insurance[0]
    assert ins.inforce is True and ins.item[0].category.coding[0].code == "PHAR"
    assert res.patient.identifier.value == p.adherent_number
    json_answer = (
        await api.http.post(
            "/api/v1/rights-checks", json=api.body(p), headers={"Authorization": f"Bearer {token}"}
        )
    ).json()
    assert json_answer["coverage"]["rate_pct"] == ins.item[0].benefit[0].allowedUnsignedInt
    assert json_answer["valid_until"] == ins.benefitPeriod.end.isoformat()
    # audited as every rights check, on the same channel
    async with api.rt.db.transaction() as conn:
        purposes = (
            await conn.execute(
                select(audit_event.c.channel, audit_event.c.purpose).where(
                    audit_event.c.purpose == "rights_check"
                )
            )
        ).all()
    assert len(purposes) == 2 and {c for c, _ in purposes} == {"api-rights"}


async def test_eligibility_unknown_and_other_insurer_give_the_same_answer(api: Api) -> None:
    token = await api.token()
    p = api.persons[0]
    unknown = {**p.card(api.insurer.amc_number), "adherent_number": "NOSUCH1"}
    other = p.card(api.other.amc_number)
    shapes = []
    for card in (unknown, other):
        r = await api.http.post(
            "/fhir/r4/CoverageEligibilityRequest", json=fb.eligibility(card), headers=auth(token)
        )
        res = CoverageEligibilityResponse.model_validate_json(r.content)
        assert res.extension[0].valueCode == "unknown" and res.insurance is None
        assert res.preAuthRef is None
        shapes.append(sorted(r.json()))
    assert shapes[0] == shapes[1]


async def test_fhir_errors_are_operation_outcomes_naming_the_element(api: Api) -> None:
    token = await api.token()
    card = api.persons[0].card(api.insurer.amc_number)
    url = "/fhir/r4/CoverageEligibilityRequest"
    body = fb.eligibility(card)
    outcome(await api.http.post(url, json=body, headers=FHIR), 401, "not_authenticated")
    bad = fb.eligibility({**card, "birth_date": "1980-02-30"})
    outcome(
        await api.http.post(url, json=bad, headers=auth(token)),
        422,
        "invalid_fields",
        "CoverageEligibilityRequest.contained[0].birthDate",
    )
    extra = {**body, "meta": {"versionId": "1"}}
    outcome(
        await api.http.post(url, json=extra, headers=auth(token)),
        422,
        "invalid_fields",
        "CoverageEligibilityRequest.meta",
    )
    opti = fb.eligibility(card, domain="OPTI")
    outcome(
        await api.http.post(url, json=opti, headers=auth(token)),
        403,
        "forbidden",
        "CoverageEligibilityRequest.item[0].category.coding[0].code",
    )
    r = await api.http.post(url, content=b"{", headers=auth(token))
    outcome(r, 400, "malformed_body")
    r = await api.http.post(
        url,
        content=b"x",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    )
    outcome(r, 415, "unsupported_media_type")
    outcome(
        await api.http.get(f"/fhir/r4/ClaimResponse/{uuid.uuid4()}", headers=auth(token)),
        404,
        "not_found",
    )
    outcome(await api.http.get("/fhir/r4/Nothing", headers=auth(token)), 404, "not_found")
    big = b'{"resourceType": "' + b"x" * api.rt.settings.body_bytes_max + b'"}'
    outcome(
        await api.http.post(url, content=big, headers=auth(token)),
        413,
        "body_too_large",
        "CoverageEligibilityRequest",
    )
    r = await api.http.put("/fhir/r4/Claim", json={}, headers=auth(token))
    assert r.headers["allow"] == "POST"
    outcome(r, 405, "method_not_allowed")


async def _engaged(api: Api, token: str, p: Any) -> str:
    r = await api.http.post(
        "/fhir/r4/CoverageEligibilityRequest",
        json=fb.eligibility(p.card(api.insurer.amc_number)),
        headers=auth(token),
    )
    return str(r.json()["preAuthRef"])


async def test_a_claim_is_queued_then_complete_with_the_amc_part_as_benefit(api: Api) -> None:
    token = await api.token()
    p = api.persons[0]
    card = p.card(api.insurer.amc_number)
    fin = await finess(api)
    engagement = await _engaged(api, token, p)
    body = fb.claim(card, "FH-1", fin, engagement, [fb.item(1), fb.item(2, amc=9.0)])
    r = await api.http.post("/fhir/r4/Claim", json=body, headers=auth(token))
    assert r.status_code == 202, r.text
    queued = ClaimResponse.model_validate_json(r.content)
    assert queued.outcome == "queued" and queued.item is None
    assert r.headers["location"].endswith(f"/fhir/r4/ClaimResponse/{queued.id}")
    again = await api.http.post("/fhir/r4/Claim", json=body, headers=auth(token))
    assert (again.status_code, again.json()["id"], again.headers.get("idempotent-replayed")) == (
        202,
        queued.id,
        "true",
    )
    assert await adjudication.decide_batch(api.rt) == 1
    r = await api.http.get(f"/fhir/r4/ClaimResponse/{queued.id}", headers=auth(token))
    done = ClaimResponse.model_validate_json(r.content)
    assert done.outcome == "complete" and done.extension[0].valueCode == "accepted"
    benefits = [
        [a.amount.value for a in i.adjudication if a.category.coding[0].code == "benefit"]
        for i in done.item
    ]
    assert [[float(v) for v in b] for b in benefits] == [[3.5], [3.5]]  # 9.00 claimed, 3.50 due
    reasons = [[a.reason.coding[0].code for a in i.adjudication if a.reason] for i in done.item]
    assert reasons == [[], ["R08"]]  # the second line's excess: paid at the computed amount
    assert float(done.total[0].amount.value) == 7.0
    # the same invoice through the JSON API: the same decision
    js = (
        await api.http.get(
            f"/api/v1/invoices/{queued.id}", headers={"Authorization": f"Bearer {token}"}
        )
    ).json()
    assert js["amc_amount"] == "7.00" and js["lines"][1]["reasons"][0]["code"] == "R08"
    # another structure reads nothing of it: the same answer as an unknown id
    other = await api.token(api.optician)
    outcome(
        await api.http.get(f"/fhir/r4/ClaimResponse/{queued.id}", headers=auth(other)),
        404,
        "not_found",
    )


async def test_a_rejected_claim_carries_its_codes_as_adjudication_reasons(api: Api) -> None:
    token = await api.token()
    fin = await finess(api)
    card = api.persons[2].card(api.insurer.amc_number)  # never checked: no care relationship
    r = await api.http.post(
        "/fhir/r4/Claim", json=fb.claim(card, "FH-R", fin, None), headers=auth(token)
    )
    assert r.status_code == 202, r.text
    await adjudication.decide_all(api.rt)
    done = ClaimResponse.model_validate_json(
        (
            await api.http.get(f"/fhir/r4/ClaimResponse/{r.json()['id']}", headers=auth(token))
        ).content
    )
    assert done.extension[0].valueCode == "rejected"
    entries = [
        (a.category.coding[0].code, a.reason.coding[0].code)
        for a in done.item[0].adjudication
        if a.reason
    ]
    assert entries and all(kind == "rejection" for kind, _ in entries)
    assert {"R06", "R15"} & {code for _, code in entries}


async def test_claim_refusals_name_the_fhir_element(api: Api) -> None:
    token = await api.token()
    fin = await finess(api)
    card = api.persons[0].card(api.insurer.amc_number)
    url = "/fhir/r4/Claim"
    wrong_amo = fb.claim(card, "FH-2", fin, None, [fb.item(amo=11.0)])
    outcome(
        await api.http.post(url, json=wrong_amo, headers=auth(token)),
        422,
        "invalid_fields",
        "Claim.item[0].extension[2].valueMoney.value",
    )
    not_mine = fb.claim(card, "FH-3", await finess(api, api.optician), None)
    outcome(
        await api.http.post(url, json=not_mine, headers=auth(token)),
        403,
        "forbidden",
        "Claim.provider",
    )
    not_mine["provider"] = {"reference": f"Organization/{api.optician.structure_id}"}
    r = await api.http.post(url, json=not_mine, headers=auth(token))
    outcome(r, 403, "forbidden", "Claim.provider")
    mine = {**not_mine, "provider": {"reference": f"Organization/{api.pharmacy.structure_id}"}}
    assert (await api.http.post(url, json=mine, headers=auth(token))).status_code == 202
    bad_money = fb.claim(card, "FH-4", fin, None, [fb.item(price=1.234)])
    outcome(
        await api.http.post(url, json=bad_money, headers=auth(token)),
        422,
        "invalid_fields",
        "Claim.item[0].unitPrice.value",
    )


async def test_payment_reconciliation_is_the_remittance_advice(api: Api, tmp_path: Path) -> None:
    from tests.web.test_payments import ALICE, BOB

    token = await api.token()
    fin = await finess(api)
    p = api.persons[0]
    engagement = await _engaged(api, token, p)
    card = p.card(api.insurer.amc_number)
    for n, q in (("PR-1", 1), ("PR-2", 2)):  # two cares (the same one twice would be R10)
        items = [fb.item(quantity=q, price=10.0, amo=6.5 * q, amc=3.5 * q)]
        r = await api.http.post(
            "/fhir/r4/Claim", json=fb.claim(card, n, fin, engagement, items), headers=auth(token)
        )
        assert r.status_code == 202, r.text
    await api.http.post(
        "/fhir/r4/Claim",
        json=fb.claim(api.persons[2].card(api.insurer.amc_number), "PR-X", fin, None),
        headers=auth(token),
    )
    await adjudication.decide_all(api.rt)
    async with api.rt.db.transaction() as conn:
        await conn.execute(update(bank_account).values(pays_from=api.rt.now() - timedelta(days=30)))
    run = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, run.id)
    await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")
    url = "/fhir/r4/PaymentReconciliation"
    r = await api.http.get(url, params={"requestor": f"{fb.SID.finess}|{fin}"}, headers=auth(token))
    assert r.status_code == 200, r.text
    bundle = Bundle.model_validate_json(r.content)
    assert bundle.total == 1
    pr = PaymentReconciliation.model_validate(bundle.entry[0].resource.model_dump())
    assert float(pr.paymentAmount.value) == 10.5
    lines = {
        d.identifier.value: (d.extension[0].valueCode, float(d.amount.value)) for d in pr.detail
    }
    assert lines == {"PR-1": ("paid", 3.5), "PR-2": ("paid", 7.0), "PR-X": ("rejected", 0.0)}
    remittance = (
        await api.http.get(
            f"/api/v1/payments/{pr.id}/remittance", headers={"Authorization": f"Bearer {token}"}
        )
    ).json()
    assert remittance["amount"] == "10.50" and len(remittance["lines"]) == 3
    by_ref = await api.http.get(
        url, params={"requestor": f"Organization/{api.pharmacy.structure_id}"}, headers=auth(token)
    )
    assert by_ref.json()["entry"][0]["resource"]["id"] == pr.id
    not_mine = await api.http.get(
        url, params={"requestor": f"Organization/{api.optician.structure_id}"}, headers=auth(token)
    )
    outcome(not_mine, 403, "forbidden", "PaymentReconciliation.requestor")
    other = await finess(api, api.optician)
    outcome(
        await api.http.get(
            url, params={"requestor": f"{fb.SID.finess}|{other}"}, headers=auth(token)
        ),
        403,
        "forbidden",
        "PaymentReconciliation.requestor",
    )
    outcome(
        await api.http.get(url, headers=auth(token)),
        422,
        "invalid_fields",
        "PaymentReconciliation.requestor",
    )
