"""Payment runs on PostgreSQL: prepare, four eyes, a SEPA file that validates and is the same
file every time, holds, the ledger, the professional's payments and remittance advice."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from rempart.db.tables import bank_account, invoice
from rempart.db.tables import payment as payment_table
from rempart.domain.care import Profession
from rempart.domain.errors import Conflict, FourEyesViolation
from rempart.domain.roles import Role
from rempart.security.principal import ActorKind, Principal
from rempart.services import adjudication, ledger, payments
from rempart.services.registry import BankDetails, create_structure
from rempart.web.api.schemas import RemittanceOut
from tests import factories as f
from tests.web.conftest import Api
from tests.web.test_api import assert_problem
from tests.web.test_invoices import _auth, check, invoice_body, line, send

ALICE = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.alice", Role.PAYMENTS)
BOB = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "paiements.bob", Role.PAYMENTS)


async def billed_day(api: Api) -> tuple[str, str]:
    """Three accepted invoices and one rejected for the pharmacy, one accepted for the optician."""
    ph, op = await api.token(), await api.token(api.optician)
    p = api.persons[0]
    number = await check(api, ph, p)
    for i in range(3):
        body = invoice_body(api, p, f"R-{i}", number, lines=[line(quantity=i + 1)])
        body["lines"][0]["amo_amount"] = f"{6.5 * (i + 1):.2f}"
        body["lines"][0]["amc_amount_claimed"] = f"{3.5 * (i + 1):.2f}"
        assert (await send(api, ph, body)).status_code == 202
    await send(api, ph, invoice_body(api, api.persons[2], "R-X", number))  # not served: R15
    await check(api, op, p, domain="OPTI")
    lens = line(
        domain="OPTI",
        code_system="LPP",
        code="2203240",
        unit_price="90.00",
        brss="0.05",
        amo_rate=60,
        amo_amount="0.03",
        amc_amount_claimed="89.97",
    )
    await send(api, op, invoice_body(api, p, "O-1", None, lines=[lens]))  # no engagement: R06
    eng = await check(api, op, api.persons[3], domain="OPTI")
    await send(api, op, invoice_body(api, api.persons[3], "O-2", eng, lines=[lens]))
    await adjudication.decide_all(api.rt)
    async with api.rt.db.transaction() as conn:  # bank details registered a month ago
        await conn.execute(update(bank_account).values(pays_from=api.rt.now() - timedelta(days=30)))
    return ph, op


async def test_a_run_pays_the_accepted_amc_parts_once_with_a_valid_stable_file(
    api: Api, tmp_path: Path
) -> None:
    ph, op = await billed_day(api)
    async with api.rt.db.transaction() as conn:  # the optician's new bank details: cooling off
        await conn.execute(
            update(bank_account)
            .where(bank_account.c.structure_id == api.optician.structure_id)
            .values(pays_from=api.rt.now() + timedelta(days=3))
        )
    dry = await payments.prepare(api.rt, ALICE, dry_run=True)
    assert dry.dry_run and dry.total_cents == 2100
    run = await payments.prepare(api.rt, ALICE)
    assert (run.id != dry.id, run.total_cents, run.transfers) == (True, 2100, 1)  # 3.50+7+10.50
    assert [(h["structure_id"], h["reason"], h["amount_cents"]) for h in run.holds] == [
        (str(api.optician.structure_id), "iban_cooling_off", 8997)
    ]
    assert (await payments.prepare(api.rt, BOB)).id == run.id  # the day's run, once
    with pytest.raises(FourEyesViolation):
        await payments.export(api.rt, ALICE, run.id, tmp_path / "early.xml")
    with pytest.raises(FourEyesViolation):
        await payments.approve(api.rt, ALICE, run.id)
    await payments.approve(api.rt, BOB, run.id)
    exported, digest = await payments.export(api.rt, ALICE, run.id, tmp_path / "a.xml")
    data = (tmp_path / "a.xml").read_bytes()
    assert digest == hashlib.sha256(data).hexdigest()
    payments.validate(data)
    text = data.decode()
    assert "<CtrlSum>21.00</CtrlSum>" in text and "<NbOfTxs>1</NbOfTxs>" in text
    assert f"<MsgId>RMP-{run.id.hex[:16]}</MsgId>" in text
    assert api.pharmacy.iban in text and "Pharmacie Test" in text
    await payments.export(api.rt, BOB, run.id, tmp_path / "b.xml")
    assert (tmp_path / "b.xml").read_bytes() == data  # byte-identical, nothing posted twice
    assert exported.status == "exported"

    balances = await ledger.balances(api.rt, ALICE)
    assert sum(balances.values()) == 0
    assert balances[f"ps:{api.pharmacy.structure_id}"] == 0  # paid what it was owed
    assert balances[f"ps:{api.optician.structure_id}"] == -8997  # still owed: held
    assert balances["bank"] == -2100

    r = await api.http.get("/api/v1/payments", headers=_auth(ph))
    [paid] = r.json()
    assert (paid["amount"], paid["end_to_end_id"]) == ("21.00", f"RMP{run.id.hex[:12]}-000001")
    assert paid["end_to_end_id"] in text
    rsp = await api.http.get(f"/api/v1/payments/{paid['payment_id']}/remittance", headers=_auth(ph))
    body = RemittanceOut.model_validate(rsp.json())
    assert [(ln.invoice_number, ln.status, ln.amc_amount) for ln in body.lines] == [
        ("R-0", "paid", "3.50"),
        ("R-1", "paid", "7.00"),
        ("R-2", "paid", "10.50"),
        ("R-X", "rejected", "0.00"),
    ]
    assert [r.code for r in body.lines[3].reasons] == ["R15"]
    as_csv = await api.http.get(
        f"/api/v1/payments/{paid['payment_id']}/remittance",
        headers=_auth(ph, Accept="text/csv"),
    )
    rows = list(csv.reader(io.StringIO(as_csv.text), delimiter=";"))
    assert rows[0][0] == "reference" and len(rows) == 5
    # another structure's remittance is not found, like a missing one
    theirs = await api.http.get(
        f"/api/v1/payments/{paid['payment_id']}/remittance", headers=_auth(op)
    )
    assert_problem(theirs, 404, "not_found")
    async with api.rt.db.transaction() as conn:
        statuses = dict(
            (await conn.execute(select(invoice.c.invoice_number, invoice.c.status))).all()
        )
    assert statuses["R-0"] == "paid" and statuses["O-2"] == "accepted"  # held, not paid
    # once the cooling-off is over, the next run pays what was held, and reports O-1 once
    api.rt.clock.advance(days=4)  # type: ignore[attr-defined]
    later = await payments.prepare(api.rt, ALICE)
    assert (later.total_cents, later.transfers, later.holds) == (8997, 1, [])


async def test_an_iban_shared_by_two_structures_is_held_for_both(api: Api) -> None:
    await billed_day(api)
    await create_structure(
        api.rt,
        name="Pharmacie Jumelle",
        profession=Profession.PHARMACY,
        bank=BankDetails(api.pharmacy.iban, "ZZZZFRPP", f.sensitive("holder", "Titulaire J")),
        pays_from=api.rt.now() - timedelta(days=30),
        actor=f.ACTOR,
    )
    run = await payments.prepare(api.rt, ALICE)
    reasons = {h["structure_id"]: h["reason"] for h in run.holds}
    assert reasons[str(api.pharmacy.structure_id)] == "iban_shared"


def camt054(*entries: tuple[str, int, str, str | None]) -> bytes:
    """A camt.054.001.08 notification: (EndToEndId, cents, DBIT|CRDT, return reason)."""
    body = []
    for e2e, cents, way, reason in entries:
        ret = f"<RtrInf><Rsn><Cd>{reason}</Cd></Rsn></RtrInf>" if reason else ""
        amt = f'<Amt Ccy="EUR">{cents // 100}.{cents % 100:02d}</Amt>'
        body.append(
            f"<Ntry>{amt}<CdtDbtInd>{way}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><NtryDtls><TxDtls>"
            f"<Refs><EndToEndId>{e2e}</EndToEndId></Refs>{amt}{ret}</TxDtls></NtryDtls></Ntry>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">'
        "<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>BANK-1</MsgId></GrpHdr><Ntfctn><Id>N1</Id>"
        + "".join(body)
        + "</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>"
    ).encode()


async def test_a_returned_transfer_reopens_the_amount_and_puts_the_iban_under_review(
    api: Api, tmp_path: Path
) -> None:
    from rempart.services import reconciliation

    await billed_day(api)
    run = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, run.id)
    await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")
    async with api.rt.db.transaction() as conn:
        sent = {
            r.structure_id: r
            for r in await conn.execute(
                select(payment_table).where(payment_table.c.run_id == run.id)
            )
        }
    ph, op = sent[api.pharmacy.structure_id], sent[api.optician.structure_id]
    statement = camt054(
        (ph.end_to_end_id, ph.amount_cents, "DBIT", None),
        (op.end_to_end_id, op.amount_cents, "DBIT", None),
        (op.end_to_end_id, op.amount_cents, "CRDT", "AC04"),  # closed account: back
        ("RMPunknown-000009", 1234, "DBIT", None),
    )
    report = await reconciliation.import_statement(api.rt, ALICE, statement, "camt.xml")
    assert report.booked == [ph.end_to_end_id, op.end_to_end_id]
    assert [(r["end_to_end_id"], r["reason"]) for r in report.returned] == [
        (op.end_to_end_id, "AC04")
    ]
    assert [u["end_to_end_id"] for u in report.unmatched] == ["RMPunknown-000009"]
    again = await reconciliation.import_statement(api.rt, ALICE, statement, "camt.xml")
    assert again.already_imported and again.as_json() == report.as_json()

    balances = await ledger.balances(api.rt, ALICE)
    assert sum(balances.values()) == 0
    assert balances[f"ps:{api.optician.structure_id}"] == -op.amount_cents  # owed again
    assert balances[f"ps:{api.pharmacy.structure_id}"] == 0
    async with api.rt.db.transaction() as conn:
        o2 = (
            await conn.execute(select(invoice.c.status).where(invoice.c.invoice_number == "O-2"))
        ).scalar_one()
        review = (
            await conn.execute(
                select(bank_account.c.status).where(
                    bank_account.c.structure_id == api.optician.structure_id
                )
            )
        ).scalar_one()
    assert (o2, review) == ("accepted", "review")
    api.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    nxt = await payments.prepare(api.rt, ALICE)
    assert [(h["structure_id"], h["reason"]) for h in nxt.holds] == [
        (str(api.optician.structure_id), "iban_under_review")
    ]
    # the remittance advice already sent still says what it said
    token = await api.token(api.optician)
    rsp = await api.http.get(f"/api/v1/payments/{op.id}/remittance", headers=_auth(token))
    assert [ln["invoice_number"] for ln in rsp.json()["lines"]] == ["O-1", "O-2"]


def test_a_file_that_is_not_camt_is_refused_naming_the_file() -> None:
    from rempart.domain.camt import StatementError, parse

    with pytest.raises(StatementError):
        parse(b"<Document><Other/></Document>")
    with pytest.raises(StatementError):
        parse(b"not xml")


async def test_an_advance_during_a_suspension_is_netted_until_the_ps_is_owed_exactly(
    api: Api, tmp_path: Path
) -> None:
    from rempart.domain.channels import Channel
    from rempart.domain.errors import ChannelClosed
    from rempart.services import advances, channels

    ph = await api.token()
    p = api.persons[0]
    number = await check(api, ph, p)

    async def bill(prefix: str, n: int, euros: int) -> None:
        ph = await api.token()
        for i in range(n):  # a drug at `euros` € with 0 % AMO: the AMC pays it all
            drug = line(quantity=i + 1, unit_price=f"{euros}.00", brss=f"{euros}.00",
                        amo_rate=0, amo_amount="0.00",
                        amc_amount_claimed=f"{euros * (i + 1)}.00")  # fmt: skip
            assert (await send(api, ph, invoice_body(api, p, f"{prefix}-{i}", number,
                                                     lines=[drug]))).status_code == 202  # fmt: skip
        await adjudication.decide_all(api.rt)

    await bill("J1", 3, 300)  # €300 + €600 + €900 = €1,800 accepted
    async with api.rt.db.transaction() as conn:
        await conn.execute(update(bank_account).values(pays_from=api.rt.now() - timedelta(days=30)))
    first = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, first.id)
    await payments.export(api.rt, ALICE, first.id, tmp_path / "j1.xml")
    assert first.total_cents == 180000

    # the operator's payments are suspended; intake and adjudication go on
    await channels.switch(api.rt, Channel.PAYMENTS, open_=False, reason="incident", actor=f.ACTOR)
    api.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    ph = await api.token()  # the day's token
    with pytest.raises(ChannelClosed):
        await payments.prepare(api.rt, ALICE)
    await bill("J2", 2, 500)  # €500 + €1,000 accepted, not paid
    granted = await advances.grant(api.rt, ALICE, api.pharmacy.structure_id, days=10, rate_pct=90)
    assert granted.amount_cents == 18000  # €1,800 / 90 days × 10 days × 90 %
    digest = await advances.export(api.rt, ALICE, granted.id, tmp_path / "acompte.xml")
    payments.validate((tmp_path / "acompte.xml").read_bytes())
    assert await advances.export(api.rt, BOB, granted.id, tmp_path / "again.xml") == digest

    await channels.switch(api.rt, Channel.PAYMENTS, open_=True, reason=None, actor=f.ACTOR)
    second = await payments.prepare(api.rt, ALICE)
    assert second.total_cents == 150000 - 18000  # the advance is netted
    await payments.approve(api.rt, BOB, second.id)
    await payments.export(api.rt, ALICE, second.id, tmp_path / "j2.xml")
    balances = await ledger.balances(api.rt, ALICE)
    assert balances[f"ps:{api.pharmacy.structure_id}"] == 0  # owed exactly what it was paid
    assert balances.get(f"advance:{api.pharmacy.structure_id}", 0) == 0  # absorbed
    assert balances["bank"] == -(180000 + 150000)  # €1,800 + €180 advance + €1,320
    assert sum(balances.values()) == 0
    listed = (await api.http.get("/api/v1/payments", headers=_auth(ph))).json()
    latest = listed[0]
    rsp = await api.http.get(
        f"/api/v1/payments/{latest['payment_id']}/remittance", headers=_auth(ph)
    )
    assert (rsp.json()["amount"], rsp.json()["advance_netted"]) == ("1320.00", "180.00")


async def test_nothing_to_pay_records_no_run_and_leaves_the_date_free(api: Api) -> None:
    empty = await payments.prepare(api.rt, ALICE)
    assert (empty.dry_run, empty.advices, empty.total_cents) == (True, 0, 0)
    await billed_day(api)
    run = await payments.prepare(api.rt, ALICE)  # the same day, now with invoices
    assert (run.dry_run, run.run_date, run.transfers) == (False, api.rt.today(), 2)


async def test_a_credit_note_on_a_paid_invoice_is_netted_by_the_next_runs(
    api: Api, tmp_path: Path
) -> None:
    ph, _ = await billed_day(api)
    run = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, run.id)
    await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")
    async with api.rt.db.transaction() as conn:
        r2 = (
            await conn.execute(select(invoice.c.id).where(invoice.c.invoice_number == "R-2"))
        ).scalar_one()
    credited = await api.http.post(f"/api/v1/invoices/{r2}/credit-note", headers=_auth(ph))
    assert credited.json() == {"invoice_id": str(r2), "credited_amount": "10.50"}
    twice = await api.http.post(f"/api/v1/invoices/{r2}/credit-note", headers=_auth(ph))
    assert_problem(twice, 409, "conflict")  # once per invoice, and only on a paid one
    balances = await ledger.balances(api.rt, ALICE)
    assert balances[f"advance:{api.pharmacy.structure_id}"] == 1050  # owed back
    assert sum(balances.values()) == 0
    # the next day: a new invoice of €3.50 is kept back against the €10.50 owed
    api.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    ph = await api.token()
    p = api.persons[0]
    number = await check(api, ph, p, care_date=api.rt.today().isoformat())
    body = invoice_body(api, p, "N-1", number, care_date=api.rt.today().isoformat())
    await send(api, ph, body)
    await adjudication.decide_all(api.rt)
    nxt = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, nxt.id)
    await payments.export(api.rt, ALICE, nxt.id, tmp_path / "next.xml")
    balances = await ledger.balances(api.rt, ALICE)
    assert balances[f"advance:{api.pharmacy.structure_id}"] == 700  # €7.00 left to net
    assert balances[f"ps:{api.pharmacy.structure_id}"] == 0
    assert sum(balances.values()) == 0
    listed = (await api.http.get("/api/v1/payments", headers=_auth(ph))).json()
    latest = listed[0]
    rsp = await api.http.get(
        f"/api/v1/payments/{latest['payment_id']}/remittance", headers=_auth(ph)
    )
    assert (rsp.json()["amount"], rsp.json()["advance_netted"]) == ("0.00", "3.50")
    async with api.rt.db.transaction() as conn:  # netted to nothing, yet paid: it is settled
        netted = await conn.execute(
            select(invoice.c.status).where(invoice.c.invoice_number == "N-1")
        )
        assert netted.scalar_one() == "paid"


async def test_an_invoice_decided_while_a_run_is_prepared_is_in_its_transfer_or_in_the_next(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker goes on during a run. An invoice it commits after the run has summed what
    each structure is due, but before the run claims the invoices, used to be claimed too:
    reported paid and marked paid at export, yet in no transfer — lost, the ledger still owing
    it. The run now settles each payment on the invoices it actually claimed."""
    ph, _ = await billed_day(api)
    p = api.persons[0]
    late = invoice_body(api, p, "R-LATE", await check(api, ph, p), lines=[line(quantity=4)])
    late["lines"][0]["amo_amount"], late["lines"][0]["amc_amount_claimed"] = "26.00", "14.00"
    assert (await send(api, ph, late)).status_code == 202
    summed = payments._dues

    async def worker_commits_meanwhile(conn: object, cutoff: object) -> object:
        dues = await summed(conn, cutoff)  # type: ignore[arg-type]
        assert await adjudication.decide_all(api.rt) == 1  # decided at the run's own instant
        return dues

    monkeypatch.setattr(payments, "_dues", worker_commits_meanwhile)
    run = await payments.prepare(api.rt, ALICE)
    monkeypatch.undo()
    assert (run.total_cents, run.transfers) == (2100 + 1400 + 8997, 2)
    await payments.approve(api.rt, BOB, run.id)
    await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")
    assert "<CtrlSum>124.97</CtrlSum>" in (tmp_path / "run.xml").read_text()
    balances = await ledger.balances(api.rt, ALICE)
    assert balances[f"ps:{api.pharmacy.structure_id}"] == 0  # nothing owed and marked paid
    assert balances["bank"] == -(2100 + 1400 + 8997)


async def test_bank_details_under_review_since_the_prepare_are_not_exported(
    api: Api, tmp_path: Path
) -> None:
    await billed_day(api)
    run = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, run.id)
    async with api.rt.db.transaction() as conn:  # a returned transfer elsewhere, meanwhile
        await conn.execute(
            update(bank_account)
            .where(bank_account.c.structure_id == api.optician.structure_id)
            .values(status="review")
        )
    with pytest.raises(payments.BankDetailsChanged) as e:
        await payments.export(api.rt, ALICE, run.id, tmp_path / "run.xml")
    assert str(api.optician.structure_id) in e.value.message
    assert not (tmp_path / "run.xml").exists()  # nothing written, nothing posted
    assert (await ledger.balances(api.rt, ALICE)).get("bank", 0) == 0  # no transfer posted


async def test_a_returned_transfer_that_netted_an_advance_owes_the_advance_again(
    api: Api, tmp_path: Path
) -> None:
    from rempart.services import advances, reconciliation

    await billed_day(api)
    first = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, first.id)
    await payments.export(api.rt, ALICE, first.id, tmp_path / "d1.xml")
    granted = await advances.grant(api.rt, ALICE, api.pharmacy.structure_id, days=30, rate_pct=90)
    assert granted.amount_cents == 630  # €21.00 over 90 days × 30 days × 90 %
    with pytest.raises(Conflict):  # not a second one while the first is not absorbed
        await advances.grant(api.rt, ALICE, api.pharmacy.structure_id, days=30, rate_pct=90)
    await advances.export(api.rt, ALICE, granted.id, tmp_path / "acompte.xml")
    api.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    ph = await api.token()
    p = api.persons[0]
    today = api.rt.today().isoformat()
    number = await check(api, ph, p, care_date=today)
    for i in (1, 2):  # €3.50 + €7.00 accepted
        body = invoice_body(api, p, f"N-{i}", number, care_date=today, lines=[line(quantity=i)])
        body["lines"][0]["amo_amount"] = f"{6.5 * i:.2f}"
        body["lines"][0]["amc_amount_claimed"] = f"{3.5 * i:.2f}"
        await send(api, ph, body)
    await adjudication.decide_all(api.rt)
    second = await payments.prepare(api.rt, ALICE)
    await payments.approve(api.rt, BOB, second.id)
    await payments.export(api.rt, ALICE, second.id, tmp_path / "d2.xml")
    async with api.rt.db.transaction() as conn:
        sent = (
            await conn.execute(
                select(payment_table).where(
                    payment_table.c.run_id == second.id,
                    payment_table.c.structure_id == api.pharmacy.structure_id,
                )
            )
        ).one()
    assert (sent.amount_cents, sent.netted_cents) == (420, 630)
    statement = camt054((sent.end_to_end_id, 420, "CRDT", "AC01"))
    report = await reconciliation.import_statement(api.rt, ALICE, statement, "c.xml")
    assert [r["end_to_end_id"] for r in report.returned] == [sent.end_to_end_id]
    balances = await ledger.balances(api.rt, ALICE)
    assert balances[f"advance:{api.pharmacy.structure_id}"] == 630  # owed back again
    assert balances[f"ps:{api.pharmacy.structure_id}"] == -1050  # both invoices owed again
    assert sum(balances.values()) == 0
