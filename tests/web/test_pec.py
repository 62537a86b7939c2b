"""Prises en charge through HTTP on PostgreSQL: decision, renewal, review, the invoice that
consumes one and is never paid above it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from rempart.db.tables import pec as pec_table
from rempart.domain.errors import Forbidden
from rempart.domain.roles import Role
from rempart.security.principal import ActorKind, Principal
from rempart.services import adjudication, pec
from rempart.web.api.schemas import PecOut
from tests import factories as f
from tests.web.conftest import Api
from tests.web.test_api import assert_problem
from tests.web.test_invoices import _auth, check, decided, invoice_body, line, send

AGENT = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "agent.pec", Role.AGENT)


def lens(price: str = "150.00", claimed: str = "149.97", **over: Any) -> dict[str, Any]:
    return line(
        domain="OPTI",
        code_system="LPP",
        code="2203240",
        unit_price=price,
        brss="0.05",
        amo_rate=60,
        amo_amount="0.03",
        amc_amount_claimed=claimed,
        **over,
    )


def quote(api: Api, p: f.Person, *lines: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {
        "care_date": "2026-12-01",
        "beneficiary": p.card(api.insurer.amc_number),
        "lines": list(lines) or [lens()],
        **over,
    }


async def ask(api: Api, token: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    r = await api.http.post("/api/v1/prises-en-charge", json=body, headers=_auth(token, **headers))
    assert r.status_code in (200, 201), r.text
    PecOut.model_validate(r.json())
    return r.json()  # type: ignore[no-any-return]


async def test_a_pec_is_granted_then_consumed_by_its_invoice_never_above_it(api: Api) -> None:
    token = await api.token(api.optician)
    p = api.persons[0]  # ESS: optique, a €100 forfait per renewal period
    await check(api, token, p, domain="OPTI")
    got = await ask(api, token, quote(api, p, lens(claimed="80.00")), **{"Idempotency-Key": "q1"})
    assert (got["status"], got["amc_amount"], got["valid_until"]) == (
        "accepted",
        "80.00",
        "2027-05-30",
    )
    again = await ask(api, token, quote(api, p, lens(claimed="80.00")), **{"Idempotency-Key": "q1"})
    assert again == got
    changed = quote(api, p, lens(claimed="70.00"))
    r = await api.http.post(
        "/api/v1/prises-en-charge", json=changed, headers=_auth(token, **{"Idempotency-Key": "q1"})
    )
    assert_problem(r, 409, "idempotency_conflict")

    number = got["pec_number"]
    bill = invoice_body(api, p, "O-10", None, pec_number=number, lines=[lens(claimed="95.00")])
    iid = (await send(api, token, bill)).json()["invoice_id"]
    twice = invoice_body(api, p, "O-11", None, pec_number=number, lines=[lens("151.00")])
    iid2 = (await send(api, token, twice)).json()["invoice_id"]
    await adjudication.decide_all(api.rt)
    first = await decided(api, token, iid)
    [ln] = first["lines"]
    assert (first["status"], ln["amc_amount"]) == ("accepted", "80.00")  # the PEC's amount
    assert [r["code"] for r in ln["reasons"]] == ["R08"]
    second = await decided(api, token, iid2)
    assert [r["code"] for r in second["lines"][0]["reasons"]] == ["R07"]  # already used
    r = await api.http.get(f"/api/v1/prises-en-charge/{got['pec_id']}", headers=_auth(token))
    assert r.json()["status"] == "consumed"
    # cancelling the invoice gives the PEC back
    await api.http.post(f"/api/v1/invoices/{iid}/cancel", headers=_auth(token))
    r = await api.http.get(f"/api/v1/prises-en-charge/{got['pec_id']}", headers=_auth(token))
    assert r.json()["status"] == "accepted"


async def test_over_the_guarantee_is_partial_and_the_renewal_period_holds(api: Api) -> None:
    token = await api.token(api.optician)
    p = api.persons[0]
    await check(api, token, p, domain="OPTI")
    first = await ask(api, token, quote(api, p, lens(), lens()))
    assert (first["status"], first["amc_amount"]) == ("partial", "100.00")
    assert [r["code"] for r in first["lines"][1]["reasons"]] == ["R08"]
    refused = await ask(api, token, quote(api, p, lens()))
    assert (refused["status"], [r["code"] for r in refused["reasons"]]) == ("refused", ["R13"])
    assert refused["pec_number"] != first["pec_number"]
    review = await ask(api, token, quote(api, p, lens(claimed="60.00"), vision_change=True))
    assert review["status"] == "to_review"
    queued = await pec.queue(api.rt, AGENT)
    assert [q.number for q in queued] == [review["pec_number"]]
    decided_ = await pec.review(api.rt, AGENT, uuid.UUID(review["pec_id"]), accept=True)
    assert decided_.status.value == "accepted"
    assert await pec.queue(api.rt, AGENT) == []
    async with api.rt.db.transaction() as conn:
        row = (
            await conn.execute(
                select(pec_table.c.decided_by).where(pec_table.c.id == review["pec_id"])
            )
        ).one()
    assert row.decided_by == "agent.pec"
    # a cancelled PEC no longer holds the period
    for held in (first, review):
        r = await api.http.post(
            f"/api/v1/prises-en-charge/{held['pec_id']}/cancel", headers=_auth(token)
        )
        assert r.json()["status"] == "cancelled"
    assert (await ask(api, token, quote(api, p, lens(claimed="50.00"))))["status"] == "accepted"


async def test_not_served_and_unknown_get_the_same_refusal(api: Api) -> None:
    token = await api.token(api.optician)
    stranger = api.persons[2]
    a = await ask(api, token, quote(api, stranger))
    unknown = {**stranger.card(api.insurer.amc_number), "rank": 4}
    b = await ask(api, token, quote(api, stranger, beneficiary=unknown))
    for answer in (a, b):
        assert (answer["status"], answer["reasons"][0]["code"], answer["lines"]) == (
            "refused",
            "R15",
            [],
        )
    pharmacy = await api.token()  # another structure: not found, like a missing PEC
    r = await api.http.get(f"/api/v1/prises-en-charge/{a['pec_id']}", headers=_auth(pharmacy))
    assert_problem(r, 404, "not_found")


async def test_a_pec_outside_optique_audio_dentaire_is_a_field_error(api: Api) -> None:
    token = await api.token()
    r = await api.http.post(
        "/api/v1/prises-en-charge", json=quote(api, api.persons[0], line()), headers=_auth(token)
    )
    got = assert_problem(r, 422, "invalid_fields")
    assert got["errors"][0]["field"] == "lines.0.domain"


async def test_only_an_agent_sees_and_decides_the_review_queue(api: Api) -> None:
    ps = Principal(
        ActorKind.CLIENT, uuid.uuid4(), "lgo", Role.API_CLIENT, api.pharmacy.structure_id
    )
    with pytest.raises(Forbidden):
        await pec.queue(api.rt, ps)
    with pytest.raises(Forbidden):
        await pec.review(api.rt, ps, uuid.uuid4(), accept=True)
