"""Invoices through HTTP on PostgreSQL: intake, idempotency, form errors, the worker's
decisions with their codes, reading back, cancelling (DESIGN §2.5–2.6, §5)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select, update

from rempart.db.tables import audit_event, invoice, ocam
from rempart.domain.channels import Channel
from rempart.services import adjudication, channels
from rempart.web.api.schemas import ArlOut, InvoiceOut, InvoiceReceiptOut
from tests import factories as f
from tests.web.conftest import Api
from tests.web.test_api import assert_problem

CARE = "2026-12-01"


def line(**over: Any) -> dict[str, Any]:
    """A 65 % drug at €10.00: AMO €6.50, the AMC claims the €3.50 left."""
    return {
        "domain": "PHAR",
        "code_system": "CIP13",
        "code": "3400930000014",
        "quantity": 1,
        "unit_price": "10.00",
        "brss": "10.00",
        "amo_rate": 65,
        "amo_amount": "6.50",
        "amc_amount_claimed": "3.50",
        **over,
    }


def invoice_body(
    api: Api, p: f.Person, number: str, engagement: str | None, **over: Any
) -> dict[str, Any]:
    return {
        "invoice_number": number,
        "care_date": CARE,
        "engagement_number": engagement,
        "beneficiary": p.card(api.insurer.amc_number),
        "lines": [line()],
        **over,
    }


async def check(api: Api, token: str, p: f.Person, **over: Any) -> str:
    r = await api.http.post("/api/v1/rights-checks", json=api.body(p, **over), headers=_auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "covered", r.json()
    return str(r.json()["engagement_number"])


def _auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def send(api: Api, token: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await api.http.post("/api/v1/invoices", json=body, headers=_auth(token, **headers))


async def decided(api: Api, token: str, invoice_id: str) -> dict[str, Any]:
    r = await api.http.get(f"/api/v1/invoices/{invoice_id}", headers=_auth(token))
    assert r.status_code == 200, r.text
    InvoiceOut.model_validate(r.json())
    return r.json()  # type: ignore[no-any-return]


async def count_invoices(api: Api) -> int:
    async with api.rt.db.transaction() as conn:
        return int((await conn.execute(select(func.count()).select_from(invoice))).scalar_one())


async def test_a_checked_invoice_is_received_then_accepted_with_the_computed_parts(
    api: Api,
) -> None:
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    r = await send(api, token, invoice_body(api, p, "F-0001", number), **{"Idempotency-Key": "k1"})
    assert r.status_code == 202, r.text
    receipt = InvoiceReceiptOut.model_validate(r.json())
    assert receipt.status == "received"
    before = await decided(api, token, str(receipt.invoice_id))
    assert (before["status"], before["lines"], before["decided_at"]) == ("received", [], None)

    assert await adjudication.decide_batch(api.rt) == 1
    after = await decided(api, token, str(receipt.invoice_id))
    assert after["status"] == "accepted"
    assert after["amc_amount"] == "3.50"
    assert after["lines"] == [
        {
            "line_no": 1,
            "status": "accepted",
            "amo_amount": "6.50",
            "amc_amount": "3.50",
            "patient_amount": "0.00",
            "reasons": [],
        }
    ]
    assert await adjudication.decide_batch(api.rt) == 0  # decided once


async def test_replays_return_the_first_answer_and_a_changed_body_is_a_409(api: Api) -> None:
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    body = invoice_body(api, p, "F-0002", number)
    first = await send(api, token, body, **{"Idempotency-Key": "same-key"})
    again = await send(api, token, dict(reversed(body.items())), **{"Idempotency-Key": "same-key"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # without a key, the structure's invoice number is the key
    assert (await send(api, token, body)).json() == first.json()
    changed = invoice_body(api, p, "F-0002", number, lines=[line(quantity=2)])
    assert_problem(await send(api, token, changed), 409, "idempotency_conflict")
    other = invoice_body(api, p, "F-0003", number)
    assert_problem(
        await send(api, token, other, **{"Idempotency-Key": "same-key"}),
        409,
        "idempotency_conflict",
    )
    assert await count_invoices(api) == 1


async def test_bad_input_names_the_field_and_stores_nothing(api: Api) -> None:
    token = await api.token()
    p = api.persons[0]

    async def problem(body: dict[str, Any], field: str) -> None:
        r = await send(api, token, body)
        got = assert_problem(r, 422, "invalid_fields")
        assert field in [e["field"] for e in got["errors"]], got

    base = invoice_body(api, p, "F-0100", "E1")
    await problem({**base, "lines": [line(quantity="1")]}, "lines.0.quantity")
    await problem({**base, "lines": [line(code_system="ATC")]}, "lines.0.code_system")
    await problem({**base, "lines": [line(code="34009")]}, "lines.0.code")
    await problem({**base, "lines": [line(unit_price="-1.00")]}, "lines.0.unit_price")
    await problem({**base, "lines": [line(unit_price="9999999.00")]}, "lines.0.unit_price")
    await problem({**base, "lines": [line(amo_amount="11.00")]}, "lines.0.amo_amount")
    await problem({**base, "lines": [line(domain="OPTI")]}, "lines.0.domain")
    await problem({**base, "lines": [line()] * 100}, "lines")
    await problem({**base, "care_date": "2026-13-01"}, "care_date")
    await problem({k: v for k, v in base.items() if k != "beneficiary"}, "beneficiary")
    r = await api.http.post(
        "/api/v1/invoices",
        content=b"invoice_number=1",
        headers=_auth(token, **{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    assert_problem(r, 415, "unsupported_media_type")
    huge = {**base, "padding": "x" * 5_000_000}
    assert_problem(await send(api, token, huge), 413, "body_too_large")
    assert await count_invoices(api) == 0


async def test_the_same_request_sent_twice_at_once_gets_the_first_answer_twice(
    live_api: Api,
) -> None:
    """A client whose first try timed out while the server was still working sends it again:
    both copies run at once, and both must get the one answer (not a 500 for the second)."""
    api = live_api
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    for k in range(5):
        batch = {"invoices": [invoice_body(api, p, f"C-{k}-{i}", number) for i in range(3)]}
        one = invoice_body(api, p, f"C-{k}-single", number)
        answers = await asyncio.gather(
            *[
                api.http.post(
                    "/api/v1/invoice-batches",
                    json=batch,
                    headers=_auth(token, **{"Idempotency-Key": f"batch-{k}"}),
                )
                for _ in range(2)
            ],
            *[send(api, token, one, **{"Idempotency-Key": f"single-{k}"}) for _ in range(2)],
        )
        assert [r.status_code for r in answers] == [202] * 4, [r.text for r in answers]
        assert answers[0].json() == answers[1].json()
        assert answers[2].json() == answers[3].json()
    assert await count_invoices(api) == 5 * 4


async def test_a_batch_is_stored_with_an_arl_listing_rejects(api: Api) -> None:
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    good = [invoice_body(api, p, f"L-{i}", number, lines=[line(quantity=i + 1)]) for i in range(3)]
    bad = invoice_body(api, p, "L-bad", number, lines=[line(amo_rate=150)])
    body = {"invoices": [*good, bad]}
    r = await api.http.post(
        "/api/v1/invoice-batches", json=body, headers=_auth(token, **{"Idempotency-Key": "b1"})
    )
    assert r.status_code == 202, r.text
    arl = ArlOut.model_validate(r.json())
    assert arl.accepted == 3
    assert [i.invoice_number for i in arl.invoices] == ["L-0", "L-1", "L-2"]
    assert [(x.index, x.invoice_number, x.code) for x in arl.rejected] == [
        (3, "L-bad", "invalid_fields")
    ]
    assert arl.rejected[0].errors[0].field == "lines.0.amo_rate"
    again = await api.http.post(
        "/api/v1/invoice-batches", json=body, headers=_auth(token, **{"Idempotency-Key": "b1"})
    )
    assert again.json() == r.json()
    # resent without its key: the invoice numbers make it idempotent, line by line
    resent = await api.http.post("/api/v1/invoice-batches", json=body, headers=_auth(token))
    assert [i["invoice_id"] for i in resent.json()["invoices"]] == [
        str(i.invoice_id) for i in arl.invoices
    ]
    assert await count_invoices(api) == 3
    too_many = {"invoices": [good[0]] * 1001}
    got = assert_problem(
        await api.http.post("/api/v1/invoice-batches", json=too_many, headers=_auth(token)),
        422,
        "invalid_fields",
    )
    assert got["errors"][0]["field"] == "invoices"
    lines_10k = {"invoices": [{**good[0], "lines": [line()] * 99}] * 102}
    r = await api.http.post("/api/v1/invoice-batches", json=lines_10k, headers=_auth(token))
    assert r.status_code in (413, 422)
    assert await count_invoices(api) == 3


async def test_each_rejection_has_its_own_code(api: Api) -> None:
    token = await api.token()
    p0, p2, p3, p4 = api.persons[0], api.persons[2], api.persons[3], api.persons[4]
    e0 = await check(api, token, p0)
    e3 = await check(api, token, p3, care_date="2026-11-01")
    e4 = await check(api, token, p4, care_date="2026-11-10")
    async with api.rt.db.transaction() as conn:  # this insurer is billed within 20 days
        await conn.execute(
            update(ocam).where(ocam.c.id == api.insurer.id).values(invoice_deadline_days=20)
        )
    cases = {
        "dup-1": invoice_body(api, p0, "dup-1", e0),
        "dup-2": invoice_body(api, p0, "dup-2", e0),  # the same care under a new number
        "no-rel": invoice_body(api, p2, "no-rel", e0),  # nobody checked p2's rights
        "unknown": invoice_body(
            api, p0, "unknown", e0, beneficiary={**p0.card(api.insurer.amc_number), "rank": 2}
        ),
        "expired": invoice_body(api, p4, "expired", e4, care_date="2026-11-30"),
        "late": invoice_body(api, p3, "late", e3, care_date="2026-11-01"),
        "other-eng": invoice_body(api, p0, "other-eng", e4, lines=[line(quantity=3)]),
        "no-eng": invoice_body(api, p0, "no-eng", None, lines=[line(quantity=4)]),
        "amo": invoice_body(api, p0, "amo", e0, lines=[line(quantity=5, amo_amount="30.00")]),
    }
    ids = {}
    for name, body in cases.items():
        r = await send(api, token, body)
        assert r.status_code == 202, (name, r.text)
        ids[name] = r.json()["invoice_id"]
    assert await adjudication.decide_all(api.rt) == len(cases)
    codes = {}
    for name, iid in ids.items():
        got = await decided(api, token, iid)
        codes[name] = (got["status"], [r["code"] for r in got["lines"][0]["reasons"]])
    assert codes == {
        "dup-1": ("accepted", []),
        "dup-2": ("rejected", ["R10"]),
        "no-rel": ("rejected", ["R15"]),
        "unknown": ("rejected", ["R15"]),  # the same answer as for a person not served
        "expired": ("rejected", ["R07"]),
        "late": ("rejected", ["R11"]),
        "other-eng": ("rejected", ["R16"]),
        "no-eng": ("rejected", ["R06"]),
        "amo": ("rejected", ["R09"]),
    }
    got = await decided(api, token, ids["dup-2"])
    assert got["lines"][0]["reasons"][0]["label"] == "Facture en double"


async def test_an_over_cap_optique_line_is_paid_at_the_cap_with_a_signalement(api: Api) -> None:
    token = await api.token(api.optician)
    p = api.persons[0]  # contract ESS: optique, a €100 forfait per renewal period
    number = await check(api, token, p, domain="OPTI")
    lens = line(
        domain="OPTI",
        code_system="LPP",
        code="2203240",
        unit_price="150.00",
        brss="0.05",
        amo_rate=60,
        amo_amount="0.03",
        amc_amount_claimed="149.97",
    )
    r = await send(api, token, invoice_body(api, p, "O-1", number, lines=[lens]))
    assert r.status_code == 202, r.text
    await adjudication.decide_all(api.rt)
    got = await decided(api, token, r.json()["invoice_id"])
    assert got["status"] == "accepted"
    [ln] = got["lines"]
    assert (ln["amo_amount"], ln["amc_amount"], ln["patient_amount"]) == ("0.03", "100.00", "49.97")
    assert [(x["code"], x["kind"]) for x in ln["reasons"]] == [("R08", "signalement")]


async def test_another_structures_invoice_is_not_found_and_the_refusal_is_audited(
    api: Api,
) -> None:
    token = await api.token()
    p = api.persons[0]
    r = await send(api, token, invoice_body(api, p, "F-9", await check(api, token, p)))
    iid = r.json()["invoice_id"]
    other = await api.token(api.optician)
    theirs = await api.http.get(f"/api/v1/invoices/{iid}", headers=_auth(other))
    missing = await api.http.get(
        "/api/v1/invoices/00000000-0000-4000-8000-000000000000", headers=_auth(other)
    )
    assert_problem(theirs, 404, "not_found")
    assert theirs.json() == missing.json()
    assert_problem(
        await api.http.post(f"/api/v1/invoices/{iid}/cancel", headers=_auth(other)),
        404,
        "not_found",
    )
    async with api.rt.db.transaction() as conn:
        refused = (
            await conn.execute(
                select(func.count())
                .select_from(audit_event)
                .where(audit_event.c.purpose.in_(("invoice_read", "invoice_cancel")))
                .where(audit_event.c.result == "refused")
            )
        ).scalar_one()
    assert refused == 3
    listed = await api.http.get("/api/v1/invoices", headers=_auth(other))
    assert listed.json() == {"items": [], "next_cursor": None}


async def test_cancel_frees_the_care_and_a_paid_invoice_cannot_be_cancelled(api: Api) -> None:
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    first = (await send(api, token, invoice_body(api, p, "C-1", number))).json()["invoice_id"]
    await adjudication.decide_all(api.rt)
    r = await api.http.post(f"/api/v1/invoices/{first}/cancel", headers=_auth(token))
    assert r.json() == {"invoice_id": first, "status": "cancelled"}
    again = (await send(api, token, invoice_body(api, p, "C-2", number))).json()["invoice_id"]
    await adjudication.decide_all(api.rt)
    assert (await decided(api, token, again))["status"] == "accepted"  # not a duplicate
    async with api.rt.db.transaction() as conn:
        await conn.execute(update(invoice).where(invoice.c.id == again).values(status="paid"))
    r = await api.http.post(f"/api/v1/invoices/{again}/cancel", headers=_auth(token))
    assert_problem(r, 409, "conflict")


async def test_the_list_pages_with_a_cursor_and_filters(api: Api) -> None:
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    for i in range(5):
        api.rt.clock.advance(seconds=1)  # type: ignore[attr-defined]
        await send(api, token, invoice_body(api, p, f"P-{i}", number, lines=[line(quantity=i + 1)]))
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await api.http.get("/api/v1/invoices", params=params, headers=_auth(token))
        assert r.status_code == 200, r.text
        seen += [i["invoice_number"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["P-4", "P-3", "P-2", "P-1", "P-0"]
    r = await api.http.get("/api/v1/invoices?status=accepted", headers=_auth(token))
    assert r.json()["items"] == []
    bad = await api.http.get("/api/v1/invoices?cursor=%%%", headers=_auth(token))
    assert_problem(bad, 422, "invalid_fields")


async def test_intake_goes_on_with_adjudication_off_and_the_backlog_is_decided_after(
    api: Api,
) -> None:
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    await channels.switch(
        api.rt, Channel.ADJUDICATION, open_=False, reason="maintenance", actor=f.ACTOR
    )
    batches, per = 100, 100
    for b in range(batches):
        body = {
            "invoices": [
                invoice_body(
                    api, p, f"B{b}-{i}", number, lines=[line(quantity=1 + (b * per + i) % 9999)]
                )
                for i in range(per)
            ]
        }
        r = await api.http.post("/api/v1/invoice-batches", json=body, headers=_auth(token))
        assert r.status_code == 202 and r.json()["accepted"] == per, r.text
    assert await count_invoices(api) == batches * per
    assert await adjudication.decide_all(api.rt) == 0  # switched off: nothing decided
    await channels.switch(api.rt, Channel.ADJUDICATION, open_=True, reason=None, actor=f.ACTOR)
    total = 0
    while n := await adjudication.decide_all(api.rt):
        total += n
    assert total == batches * per
    async with api.rt.db.transaction() as conn:
        left = (
            await conn.execute(
                select(func.count()).select_from(invoice).where(invoice.c.status == "received")
            )
        ).scalar_one()
    assert left == 0


async def test_a_calculation_for_a_served_person_and_the_same_unknown_for_anyone_else(
    api: Api,
) -> None:
    from rempart.web.api.schemas import CalculationOut

    token = await api.token()
    served, stranger = api.persons[0], api.persons[2]
    await check(api, token, served)

    async def simulate(p: f.Person, **card: Any) -> dict[str, Any]:
        body = {
            "care_date": CARE,
            "beneficiary": {**p.card(api.insurer.amc_number), **card},
            "lines": [
                {
                    k: v
                    for k, v in line(quantity=2, amo_amount="13.00").items()
                    if k != "amc_amount_claimed"
                }
            ],
        }
        r = await api.http.post("/api/v1/calculations", json=body, headers=_auth(token))
        assert r.status_code == 200, r.text
        CalculationOut.model_validate(r.json())
        return r.json()  # type: ignore[no-any-return]

    got = await simulate(served)
    assert (got["status"], got["amc_amount"], got["patient_amount"]) == ("computed", "7.00", "0.00")
    [ln] = got["lines"]
    assert (ln["expense"], ln["amo_amount"], ln["amc_amount"]) == ("20.00", "13.00", "7.00")
    assert [s["code"] for s in ln["trace"]] == ["amo_given", "guarantee_pct_brss"]
    not_served = await simulate(stranger)
    unknown = await simulate(served, rank=3)
    for answer in (not_served, unknown):
        assert {k: v for k, v in answer.items() if k != "calculation_id"} == {
            "status": "unknown",
            "care_date": CARE,
            "amc_amount": None,
            "patient_amount": None,
            "lines": [],
        }
    async with api.rt.db.transaction() as conn:
        rows = (
            await conn.execute(
                select(audit_event.c.result, audit_event.c.subject_id, audit_event.c.detail).where(
                    audit_event.c.purpose == "calculation"
                )
            )
        ).all()
    # the clock is frozen: the three rows share their time, so compare them as a set
    seen = {
        (r.result, r.subject_id is not None, "no_care_relationship" in (r.detail or ""))
        for r in rows
    }
    assert seen == {("computed", True, False), ("unknown", True, True), ("unknown", False, False)}


async def test_an_invoice_for_today_sent_just_after_midnight_in_paris_is_not_in_the_future(
    api: Api,
) -> None:
    """At 23:30 UTC it is 00:30 the next day in Paris: an invoice for that Paris day was
    received that day, not the day before (which would make it R14, care in the future)."""
    from datetime import UTC, datetime

    api.rt.clock.now = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # type: ignore[attr-defined]
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p, care_date="2026-12-02")
    r = await send(api, token, invoice_body(api, p, "NIGHT-1", number, care_date="2026-12-02"))
    await adjudication.decide_all(api.rt)
    got = await decided(api, token, r.json()["invoice_id"])
    assert (got["status"], [x["code"] for x in got["lines"][0]["reasons"]]) == ("accepted", [])


async def test_the_same_line_twice_in_one_invoice_is_two_cares_and_the_invoice_again_is_r10(
    api: Api,
) -> None:
    """A box listed twice is paid twice; the same invoice under a new number is a duplicate,
    both lines; and the worker goes on deciding the other invoices of its batch."""
    token = await api.token()
    p = api.persons[0]
    number = await check(api, token, p)
    first = await send(api, token, invoice_body(api, p, "TWICE-1", number, lines=[line(), line()]))
    again = await send(api, token, invoice_body(api, p, "TWICE-2", number, lines=[line(), line()]))
    other = await send(
        api,
        token,
        invoice_body(
            api,
            p,
            "OTHER-1",
            number,
            lines=[line(quantity=2, amo_amount="13.00", amc_amount_claimed="7.00")],
        ),
    )
    assert await adjudication.decide_all(api.rt) == 3
    a, b, c = [await decided(api, token, r.json()["invoice_id"]) for r in (first, again, other)]
    assert (a["status"], a["amc_amount"]) == ("accepted", "7.00")
    assert b["status"] == "rejected"
    assert [[x["code"] for x in ln["reasons"]] for ln in b["lines"]] == [["R10"], ["R10"]]
    assert c["status"] == "accepted"


async def test_a_calculations_field_error_names_the_field_of_the_request(api: Api) -> None:
    token = await api.token()
    p = api.persons[0]
    await check(api, token, p)
    bad = {k: v for k, v in line(amo_amount="11.00").items() if k != "amc_amount_claimed"}
    body = {"care_date": CARE, "beneficiary": p.card(api.insurer.amc_number), "lines": [bad]}
    r = await api.http.post("/api/v1/calculations", json=body, headers=_auth(token))
    got = assert_problem(r, 422, "invalid_fields")
    assert [e["field"] for e in got["errors"]] == ["lines.0.amo_amount"]
