"""A scripted day at the counter (issue acceptance): for 50 cards, rights check → PEC where the
domain needs one → invoice → worker → accepted with the amounts the contracts give; then the
usual ways an invoice goes wrong, each with its own code."""

from __future__ import annotations

from sqlalchemy import func, select

from rempart.db.tables import audit_event
from rempart.domain.care import CareDomain
from rempart.services import adjudication
from rempart.services.beneficiaries import import_beneficiaries
from rempart.services.demo_data import CONTRACTS
from tests import factories as f
from tests.web.conftest import Api
from tests.web.test_invoices import _auth, check, decided, invoice_body, line, send
from tests.web.test_pec import ask, lens, quote

FORFAIT = {  # the optique forfait of each demo contract, in cents
    c.code: next(g.flat_amount.cents for g in c.guarantees if g.domain is CareDomain.OPTI)
    for c in CONTRACTS
    if any(g.domain is CareDomain.OPTI and g.flat_amount for g in c.guarantees)
}


async def test_a_day_of_fifty_patients(api: Api, tmp_path: object) -> None:
    people = f.people(50, seed=21, prefix="D")
    await import_beneficiaries(
        api.rt,
        f.write_file(tmp_path / "day.csv", people),  # type: ignore[operator]
        amc_number=api.insurer.amc_number,
        actor=f.ACTOR,
    )
    pharmacy, optician = await api.token(), await api.token(api.optician)
    expected: dict[str, tuple[str, str]] = {}  # invoice id → (AMC, patient)
    tokens: dict[str, str] = {}
    for i, p in enumerate(people):
        if i % 2 == 0:  # a prescription at the pharmacy: 2 boxes at €7.35, 65 %
            number = await check(api, pharmacy, p)
            drug = line(
                quantity=2,
                unit_price="7.35",
                brss="7.35",
                amo_amount="9.56",
                amc_amount_claimed="5.14",
            )
            r = await send(api, pharmacy, invoice_body(api, p, f"PH-{i}", number, lines=[drug]))
            expected[r.json()["invoice_id"]] = ("5.14", "0.00")
            tokens[r.json()["invoice_id"]] = pharmacy
        else:  # glasses: a PEC on the quote, then the invoice quoting it
            await check(api, optician, p, domain="OPTI")
            granted = await ask(api, optician, quote(api, p, lens(claimed="149.97")))
            forfait = FORFAIT[p.contract_code]
            amc = min(forfait, 14997)
            assert granted["status"] == ("accepted" if amc == 14997 else "partial")
            assert granted["amc_amount"] == f"{amc // 100}.{amc % 100:02d}"
            bill = invoice_body(
                api,
                p,
                f"OP-{i}",
                None,
                pec_number=granted["pec_number"],
                lines=[lens(claimed="149.97")],
            )
            r = await send(api, optician, bill)
            patient = 15000 - 3 - amc
            expected[r.json()["invoice_id"]] = (
                f"{amc // 100}.{amc % 100:02d}",
                f"{patient // 100}.{patient % 100:02d}",
            )
            tokens[r.json()["invoice_id"]] = optician
    assert await adjudication.decide_all(api.rt) == 50
    for iid, (amc, patient) in expected.items():
        got = await decided(api, tokens[iid], iid)
        [ln] = got["lines"]
        assert (got["status"], ln["amc_amount"], ln["patient_amount"]) == ("accepted", amc, patient)
        capped = amc != "149.97" and amc != "5.14"
        assert [r["code"] for r in ln["reasons"]] == (["R08"] if capped else [])
    async with api.rt.db.transaction() as conn:
        audited = (
            await conn.execute(
                select(func.count())
                .select_from(audit_event)
                .where(audit_event.c.purpose == "adjudication", audit_event.c.result == "accepted")
            )
        ).scalar_one()
    assert audited == 50  # every decision is audited, naming the person
    r = await api.http.get("/api/v1/invoices?status=accepted&limit=200", headers=_auth(pharmacy))
    assert len(r.json()["items"]) == 25  # a structure lists its own invoices only


async def test_the_day_ends_in_a_payment_run_that_pays_it_exactly(
    api: Api, tmp_path: object
) -> None:
    """The money issue's acceptance on the same day: the file validates, its total is the sum
    of the accepted AMC parts, and the remittance advices list every decided invoice once."""
    import uuid
    from pathlib import Path

    from sqlalchemy import update

    from rempart.db.tables import bank_account, invoice
    from rempart.domain.roles import Role
    from rempart.security.principal import ActorKind, Principal
    from rempart.services import payments

    await test_a_day_of_fifty_patients(api, tmp_path)
    pharmacy, optician = await api.token(), await api.token(api.optician)
    extra = invoice_body(api, api.persons[5], "LATE-1", None)  # not served: rejected, reported
    await send(api, pharmacy, extra)
    await adjudication.decide_all(api.rt)
    async with api.rt.db.transaction() as conn:
        await conn.execute(update(bank_account).values(pays_from=api.rt.now()))
        accepted = (
            await conn.execute(
                select(func.sum(invoice.c.amc_cents)).where(invoice.c.status == "accepted")
            )
        ).scalar_one()
        decided = (
            await conn.execute(
                select(func.count())
                .select_from(invoice)
                .where(invoice.c.status.in_(("accepted", "rejected")))
            )
        ).scalar_one()
    alice = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.alice", Role.PAYMENTS)
    bob = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.bob", Role.PAYMENTS)
    run = await payments.prepare(api.rt, alice)
    await payments.approve(api.rt, bob, run.id)
    out = Path(str(tmp_path)) / "run.xml"
    await payments.export(api.rt, alice, run.id, out)
    payments.validate(out.read_bytes())
    assert run.total_cents == accepted and run.holds == []
    reported = []
    for token in (pharmacy, optician):
        for p in (await api.http.get("/api/v1/payments", headers=_auth(token))).json():
            rsp = await api.http.get(
                f"/api/v1/payments/{p['payment_id']}/remittance", headers=_auth(token)
            )
            reported += [ln["invoice_id"] for ln in rsp.json()["lines"]]
    assert len(reported) == len(set(reported)) == decided  # every decided invoice, once
