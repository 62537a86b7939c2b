"""Use case: payment runs — prepare, approve (four eyes), export a SEPA file (DESIGN §2.7).

    prepare (payments role) → invoices decided and not yet reported, per structure
            → bank details OK? transfer : hold (reason) → ids derived from the run → commit
    approve (a second person with the payments role) → approved
    export  → IBANs read (audited) → pain.001.001.09 (sepaxml, ids and time from the run)
            → file written (temp, fsync, rename) → invoices paid, ledger posted → commit

Each step is idempotent: preparing the same date again returns the run already prepared;
exporting again writes the byte-identical file and posts nothing more. A crash between the file
and the commit leaves the run approved: the next export writes the same bytes.

Switching the ``payments`` channel off suspends runs; intake and adjudication go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import structlog
from sepaxml import SepaTransfer
from sqlalchemy import and_, func, or_, select, union_all, update

from rempart import access
from rempart.db.tables import (
    bank_account,
    beneficiary,
    invoice,
    invoice_line,
    ledger_posting,
    payment,
    payment_run,
    remitted_invoice,
)
from rempart.domain.channels import Channel
from rempart.domain.errors import Conflict, Forbidden, FourEyesViolation, NotFound
from rempart.domain.ledger import advance_netted, payment_sent
from rempart.domain.payments import (
    BankFacts,
    Due,
    Planned,
    end_to_end_id,
    msg_id,
    plan,
    pmt_inf_id,
    remittance_ref,
)
from rempart.domain.reasons import Reason
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.services import channels, ledger
from rempart.services.runtime import Runtime

log = structlog.get_logger("rempart.payments")

SCHEMA = "pain.001.001.09"
DECIDED = ("accepted", "rejected")


@dataclass(frozen=True, slots=True)
class Run:
    id: UUID
    run_date: date
    status: str
    total_cents: int
    transfers: int
    advices: int  # payments, transfers and remittance advices alone
    holds: list[dict[str, Any]]
    funding: list[dict[str, Any]]
    prepared_by: str
    approved_by: str | None
    dry_run: bool = False


class _DryRun(Exception):
    def __init__(self, run: Run) -> None:
        self.run = run


def _need(actor: Principal, permission: Permission) -> None:
    if not actor.may(permission):
        raise Forbidden("Réservé aux opérateurs habilités aux paiements.")


def _undecided_due(cutoff: datetime) -> Any:
    """Per structure, what the invoices decided by ``cutoff`` and not yet reported come to."""
    accepted_sum = func.sum(invoice.c.amc_cents).filter(invoice.c.status == "accepted")
    return (
        select(
            invoice.c.structure_id,
            func.coalesce(accepted_sum, 0).label("cents"),
            func.count().filter(invoice.c.status == "accepted").label("accepted"),
            func.count().filter(invoice.c.status == "rejected").label("rejected"),
        )
        .where(_unreported(cutoff))
        .group_by(invoice.c.structure_id)
    ).subquery("due")


def _unreported(cutoff: datetime) -> Any:
    # no IN (…): the same clause serves statements run once per row (executemany)
    return and_(
        or_(*(invoice.c.status == s for s in DECIDED)),
        invoice.c.payment_id.is_(None),
        invoice.c.decided_at <= cutoff,
    )


async def _dues(conn: Any, cutoff: datetime) -> list[Due]:
    """What each structure is due and the facts about its bank details, in one query (no list
    of ids bound: 50,000 structures would pass the driver's 32,767 parameters)."""
    due = _undecided_due(cutoff)
    owners = (
        select(
            bank_account.c.iban_bi,
            func.count(func.distinct(bank_account.c.structure_id)).label("owners"),
        )
        .where(bank_account.c.status != "retired")
        .group_by(bank_account.c.iban_bi)
    ).subquery("owners")
    bank = (
        select(bank_account, owners.c.owners)
        .join(owners, owners.c.iban_bi == bank_account.c.iban_bi)
        .where(bank_account.c.status.in_(("active", "review")))
    ).subquery("bank")
    rows = await conn.execute(
        select(due, bank.c.id, bank.c.pays_from, bank.c.status, bank.c.owners).outerjoin(
            bank, bank.c.structure_id == due.c.structure_id
        )
    )
    owed_back = await _advances_left(conn)
    dues: dict[UUID, Due] = {}
    for r in rows:
        facts = (
            None
            if r.id is None
            else BankFacts(r.id, r.pays_from, r.owners > 1, under_review=r.status == "review")
        )
        dues[r.structure_id] = Due(
            r.structure_id,
            int(r.cents),
            r.accepted,
            r.rejected,
            facts,
            owed_back.get(r.structure_id, 0),
        )
    return list(dues.values())


def _run_of(row: Any, count: int, dry_run: bool = False) -> Run:
    return Run(
        row.id,
        row.run_date,
        row.status,
        row.total_cents,
        row.transfers,
        count,
        orjson.loads(row.holds),
        orjson.loads(row.funding),
        row.prepared_by,
        row.approved_by,
        dry_run,
    )


async def _existing(conn: Any, run_date: date) -> Run | None:
    row = (
        await conn.execute(select(payment_run).where(payment_run.c.run_date == run_date))
    ).first()
    return None if row is None else await _reread(conn, row.id)


async def _reread(conn: Any, run_id: UUID) -> Run:
    """The run as stored now, with the number of its payments (transfers and advices)."""
    row = (await conn.execute(select(payment_run).where(payment_run.c.id == run_id))).one()
    n = (
        await conn.execute(
            select(func.count()).select_from(payment).where(payment.c.run_id == run_id)
        )
    ).scalar_one()
    return _run_of(row, n)


async def prepare(
    rt: Runtime, actor: Principal, *, run_date: date | None = None, dry_run: bool = False
) -> Run:
    """The run of ``run_date`` (default today): the one already prepared, or a new one."""
    _need(actor, Permission.PREPARE_PAYMENTS)
    await channels.ensure_open(rt, Channel.PAYMENTS)
    day = run_date or rt.today()
    now = rt.now()
    try:
        async with rt.db.transaction() as conn:
            found = await _existing(conn, day)
            if found is not None:
                return found
            run = await _prepare(rt, conn, actor, day, now, dry_run)
            if dry_run or run.advices == 0:  # nothing decided waits: no empty run holds the date
                raise _DryRun(replace(run, dry_run=True))
            return run
    except _DryRun as d:
        return d.run


async def _prepare(
    rt: Runtime, conn: Any, actor: Principal, day: date, now: datetime, dry_run: bool
) -> Run:
    planned, held = plan(await _dues(conn, now), now)
    run_id = uuid.uuid4()
    payments = [_payment_row(run_id, i, p) for i, p in enumerate(planned, 1)]
    holds = [
        {"structure_id": str(h.structure_id), "reason": h.reason.value, "label": h.reason.label,
         "amount_cents": h.amount_cents}
        for h in held
    ]  # fmt: skip
    await conn.execute(
        payment_run.insert().values(
            id=run_id, run_date=day, status="prepared", msg_id=msg_id(run_id),
            pmt_inf_id=pmt_inf_id(run_id), prepared_at=now.replace(microsecond=0),
            prepared_by=actor.label, total_cents=0, transfers=0,
            holds=orjson.dumps(holds).decode(), funding="[]",
        )
    )  # fmt: skip
    if payments:
        await conn.execute(payment.insert(), payments)
        await _claim(conn, rt.db.dialect, run_id, now)
        await _settle(conn, run_id)
    total, transfers = (
        await conn.execute(
            select(
                func.coalesce(func.sum(payment.c.amount_cents), 0),
                func.count().filter(payment.c.amount_cents > 0),
            ).where(payment.c.run_id == run_id)
        )
    ).one()
    await conn.execute(
        update(payment_run)
        .where(payment_run.c.id == run_id)
        .values(
            total_cents=total,
            transfers=transfers,
            funding=orjson.dumps(await _funding(conn, run_id)).decode(),
        )
    )
    await audit.record(
        conn,
        at=now,
        actor=actor,
        channel="cli",
        purpose="payment_prepare",
        result="dry_run" if dry_run else "prepared",
        detail={"run_id": str(run_id), "total_cents": int(total), "holds": len(held)},
    )
    row = (await conn.execute(select(payment_run).where(payment_run.c.id == run_id))).one()
    return _run_of(row, len(payments), dry_run)


async def _advances_left(conn: Any) -> dict[UUID, int]:
    """What is left to net of each structure's advances (and credit notes): the balance of its
    ``advance:`` account, minus what runs prepared and not yet exported already keep back
    (netting is posted at export: two runs must not net the same advance). Few accounts: no
    list of ids is bound."""
    debit = select(ledger_posting.c.debit.label("account"), ledger_posting.c.amount_cents).where(
        ledger_posting.c.debit.like("advance:%")
    )
    credit = select(
        ledger_posting.c.credit.label("account"),
        (-ledger_posting.c.amount_cents).label("amount_cents"),
    ).where(ledger_posting.c.credit.like("advance:%"))
    legs = union_all(debit, credit).subquery()
    left = {
        UUID(a.split(":", 1)[1]): int(n)
        for a, n in await conn.execute(
            select(legs.c.account, func.sum(legs.c.amount_cents)).group_by(legs.c.account)
        )
    }
    pending = await conn.execute(
        select(payment.c.structure_id, func.sum(payment.c.netted_cents))
        .join(payment_run, payment_run.c.id == payment.c.run_id)
        .where(payment_run.c.status.in_(("prepared", "approved")), payment.c.netted_cents > 0)
        .group_by(payment.c.structure_id)
    )
    for structure_id, kept in pending:
        left[structure_id] = left.get(structure_id, 0) - int(kept)
    return {k: v for k, v in left.items() if v > 0}


async def _claim(conn: Any, dialect: str, run_id: UUID, cutoff: datetime) -> None:
    """Give the run's payments their invoices, in one statement, and freeze what each remittance
    advice reports. A payment without a transfer (every invoice rejected when planned) takes
    rejected invoices only: an invoice accepted meanwhile waits for a run that checks the bank
    details it would be paid to."""
    claim = (
        update(invoice)
        .where(
            payment.c.run_id == run_id,
            payment.c.structure_id == invoice.c.structure_id,
            _unreported(cutoff),
            or_(payment.c.bank_account_id.is_not(None), invoice.c.status == "rejected"),
        )
        .values(payment_id=payment.c.id)
    )
    columns = ["payment_id", "invoice_id", "decision", "amc_cents"]
    if dialect == "postgresql":  # one pass over the invoices: the claim feeds the advice
        claimed = claim.returning(
            invoice.c.payment_id, invoice.c.id, invoice.c.status,
            func.coalesce(invoice.c.amc_cents, 0).label("amc_cents"),
        ).cte("claimed")  # fmt: skip
        await conn.execute(  # in key order: the advice's index is filled page after page
            remitted_invoice.insert().from_select(
                columns, select(claimed).order_by(claimed.c.payment_id, claimed.c.id)
            )
        )
        return
    await conn.execute(claim)
    await conn.execute(
        remitted_invoice.insert().from_select(
            columns,
            select(
                invoice.c.payment_id,
                invoice.c.id,
                invoice.c.status,
                func.coalesce(invoice.c.amc_cents, 0),
            )
            .join(payment, payment.c.id == invoice.c.payment_id)
            .where(payment.c.run_id == run_id),
        )
    )


async def _settle(conn: Any, run_id: UUID) -> None:
    """Each payment's amount is what its invoices add up to, minus the advance it nets. The
    plan summed them a moment before they were claimed: an invoice decided or cancelled in
    between (the worker and the portal go on during a run) would otherwise be reported paid
    without being in the transfer, or sent without being owed. Nothing to do, usually."""
    claimed = (
        select(
            remitted_invoice.c.payment_id,
            func.sum(remitted_invoice.c.amc_cents)
            .filter(remitted_invoice.c.decision == "accepted")
            .label("cents"),
        )
        .join(payment, payment.c.id == remitted_invoice.c.payment_id)
        .where(payment.c.run_id == run_id)
        .group_by(remitted_invoice.c.payment_id)
    ).subquery("claimed")
    cents = func.coalesce(claimed.c.cents, 0)
    moved = (
        await conn.execute(
            select(payment.c.id, payment.c.netted_cents, cents.label("cents"))
            .outerjoin(claimed, claimed.c.payment_id == payment.c.id)
            .where(
                payment.c.run_id == run_id,
                payment.c.amount_cents + payment.c.netted_cents != cents,
            )
        )
    ).all()
    for p in moved:  # an advance keeps back at most what was claimed
        netted = min(int(p.netted_cents), int(p.cents))
        amount = int(p.cents) - netted
        await conn.execute(
            update(payment)
            .where(payment.c.id == p.id)
            .values(
                amount_cents=amount,
                netted_cents=netted,
                end_to_end_id=payment.c.end_to_end_id if amount > 0 else None,
            )
        )
    if moved:
        log.info("payment_run.amounts_settled", run_id=str(run_id), payments=len(moved))


def _payment_row(run_id: UUID, n: int, p: Planned) -> dict[str, Any]:
    return {
        "id": uuid.uuid5(run_id, str(p.structure_id)),
        "run_id": run_id,
        "structure_id": p.structure_id,
        "bank_account_id": p.bank_account_id,
        "amount_cents": p.amount_cents,
        "netted_cents": p.netted_cents,
        "end_to_end_id": end_to_end_id(run_id, n) if p.amount_cents > 0 else None,
        "remittance_ref": remittance_ref(run_id, n),
    }


async def _funding(conn: Any, run_id: UUID) -> list[dict[str, Any]]:
    """Per OCAM, what its members' accepted invoices in this run cost."""
    rows = await conn.execute(
        select(
            beneficiary.c.ocam_id,
            func.sum(remitted_invoice.c.amc_cents).label("cents"),
            func.count().label("invoices"),
        )
        .select_from(remitted_invoice)
        .join(payment, payment.c.id == remitted_invoice.c.payment_id)
        .join(invoice, invoice.c.id == remitted_invoice.c.invoice_id)
        .join(beneficiary, beneficiary.c.id == invoice.c.beneficiary_id)
        .where(payment.c.run_id == run_id, remitted_invoice.c.decision == "accepted")
        .group_by(beneficiary.c.ocam_id)
        .order_by(beneficiary.c.ocam_id)
    )
    return [
        {"ocam_id": str(r.ocam_id), "amount_cents": int(r.cents), "invoices": r.invoices}
        for r in rows
    ]


async def approve(rt: Runtime, actor: Principal, run_id: UUID) -> Run:
    """The second pair of eyes: someone with the payments role who did not prepare it."""
    _need(actor, Permission.APPROVE_PAYMENTS)
    async with rt.db.transaction() as conn:
        row = await _locked(rt, conn, run_id)
        if row.status == "prepared":
            if row.prepared_by == actor.label:
                raise FourEyesViolation(
                    "Le paiement doit être validé par une autre personne que celle qui l'a préparé."
                )
            await conn.execute(
                update(payment_run)
                .where(payment_run.c.id == run_id)
                .values(status="approved", approved_by=actor.label, approved_at=rt.now())
            )
            await audit.record(
                conn, at=rt.now(), actor=actor, channel="cli", purpose="payment_approve",
                result="approved", detail={"run_id": str(run_id)},
            )  # fmt: skip
        return await _reread(conn, run_id)


async def runs(rt: Runtime, actor: Principal, *, limit: int = 50) -> list[Run]:
    """The latest runs, newest first, for the back office."""
    if not actor.may(Permission.PREPARE_PAYMENTS) and not actor.may(Permission.APPROVE_PAYMENTS):
        raise Forbidden("Réservé aux opérateurs habilités aux paiements.")
    count = (
        select(func.count())
        .select_from(payment)
        .where(payment.c.run_id == payment_run.c.id)
        .scalar_subquery()
    )
    async with rt.db.read() as conn:
        rows = (
            await conn.execute(
                select(payment_run, count.label("advices"))
                .order_by(payment_run.c.run_date.desc())
                .limit(limit)
            )
        ).all()
    return [_run_of(r, r.advices) for r in rows]


async def run(rt: Runtime, actor: Principal, run_id: UUID) -> Run:
    if not actor.may(Permission.PREPARE_PAYMENTS) and not actor.may(Permission.APPROVE_PAYMENTS):
        raise Forbidden("Réservé aux opérateurs habilités aux paiements.")
    async with rt.db.read() as conn:
        found = (
            await conn.execute(select(payment_run.c.id).where(payment_run.c.id == run_id))
        ).first()
        if found is None:
            raise NotFound("Campagne de paiement introuvable.")
        return await _reread(conn, run_id)


async def _locked(rt: Runtime, conn: Any, run_id: UUID) -> Any:
    q = select(payment_run).where(payment_run.c.id == run_id)
    if rt.db.dialect == "postgresql":
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound("Campagne de paiement introuvable.")
    return row


class _Transfer(SepaTransfer):  # type: ignore[misc]
    """sepaxml's transfer with the run's identifiers and time instead of random ones and now."""

    def __init__(self, config: dict[str, Any], *, msg: str, created: datetime, pmt: str) -> None:
        self._fixed = (msg, created, pmt)
        super().__init__(config, schema=SCHEMA)

    def _create_header(self) -> None:
        super()._create_header()
        header = self._xml.find("CstmrCdtTrfInitn").find("GrpHdr")
        header.find("MsgId").text = self._fixed[0]
        header.find("CreDtTm").text = self._fixed[1].strftime("%Y-%m-%dT%H:%M:%S")

    def _finalize_batch(self) -> None:
        super()._finalize_batch()
        for node in self._xml.iter("PmtInfId"):
            node.text = self._fixed[2]


def sepa_file(
    rt: Runtime,
    run: Any,
    payees: dict[UUID, access.Payee],
    rows: Sequence[Any],
    *,
    label: str = "Rempart tiers payant",
) -> bytes:
    """The pain.001.001.09 document of a run: one batch, one transfer per payment, in order."""
    s = rt.settings
    doc = _Transfer(
        {"name": s.debtor_name, "IBAN": s.debtor_iban, "BIC": s.debtor_bic, "batch": True,
         "currency": "EUR"},
        msg=run.msg_id, created=run.prepared_at, pmt=run.pmt_inf_id,
    )  # fmt: skip
    for p in rows:
        payee = payees[p.bank_account_id]
        doc.add_payment(
            {
                "name": payee.name,
                "IBAN": payee.iban,
                "BIC": payee.bic,
                "amount": int(p.amount_cents),
                "execution_date": run.run_date,
                "description": f"{p.remittance_ref} {label} {run.run_date:%d/%m/%Y}",
                "endtoend_id": p.end_to_end_id,
            }
        )
    return bytes(doc.export(validate=False))


async def export(rt: Runtime, actor: Principal, run_id: UUID, out: Path) -> tuple[Run, str]:
    """Write the run's SEPA file to ``out``; returns the run and the file's SHA-256."""
    _need(actor, Permission.PREPARE_PAYMENTS)
    await channels.ensure_open(rt, Channel.PAYMENTS)
    now = rt.now()
    async with rt.db.transaction() as conn:
        run = await _locked(rt, conn, run_id)
        if run.status == "prepared":
            raise FourEyesViolation("La campagne doit être validée avant l'export.")
        rows = (
            await conn.execute(
                select(payment)
                .where(payment.c.run_id == run_id, payment.c.amount_cents > 0)
                .order_by(payment.c.end_to_end_id)
            )
        ).all()
        if run.status == "approved":  # the first export: are the bank details still payable?
            await _still_payable(conn, rows, now)
        payees = await access.read_payees(
            conn, rt.keys, principal=actor, accounts=[p.bank_account_id for p in rows],
            now=now, purpose="payment_export",
        )  # fmt: skip
        data = sepa_file(rt, run, payees, rows)
        digest = hashlib.sha256(data).hexdigest()
        if run.file_sha256 is not None and run.file_sha256 != digest:
            raise Conflict("Le fichier recalculé diffère de celui déjà exporté : rien n'est écrit.")
        write_atomically(out, data)
        if run.status == "approved":
            await conn.execute(
                update(payment_run)
                .where(payment_run.c.id == run_id)
                .values(status="exported", exported_at=now, file_sha256=digest)
            )
            await conn.execute(  # by primary key: a payment's invoices are its advice's
                update(invoice)
                .where(
                    invoice.c.id == remitted_invoice.c.invoice_id,
                    invoice.c.payment_id == remitted_invoice.c.payment_id,
                    remitted_invoice.c.payment_id == payment.c.id,
                    payment.c.run_id == run_id,  # a payment netted to 0 pays its invoices too
                    remitted_invoice.c.decision == "accepted",
                    invoice.c.status == "accepted",
                )
                .values(status="paid")
            )
            await conn.execute(
                update(payment)
                .where(payment.c.run_id == run_id, payment.c.amount_cents > 0)
                .values(status="exported")
            )
            netted = (
                await conn.execute(
                    select(payment.c.id, payment.c.structure_id, payment.c.netted_cents).where(
                        payment.c.run_id == run_id, payment.c.netted_cents > 0
                    )
                )
            ).all()
            await ledger.post(
                conn,
                rt.db.dialect,
                [(p.id, payment_sent(p.structure_id, int(p.amount_cents))) for p in rows]
                + [(n.id, advance_netted(n.structure_id, int(n.netted_cents))) for n in netted],
                now,
            )
        return await _reread(conn, run_id), digest


class BankDetailsChanged(Conflict):
    code = "bank_details_changed"
    title = "Coordonnées bancaires modifiées depuis la préparation"


async def _still_payable(conn: Any, rows: Sequence[Any], now: datetime) -> None:
    """Bank details put under review (a returned transfer), retired or replaced since the run
    was prepared are not paid blindly: the export is refused, naming the structures."""
    ids = [p.bank_account_id for p in rows]
    changed = []
    for i in range(0, len(ids), 10_000):  # the driver binds at most 32,767 parameters
        changed += list(
            (
                await conn.execute(
                    select(bank_account.c.structure_id).where(
                        bank_account.c.id.in_(ids[i : i + 10_000]),
                        or_(bank_account.c.status != "active", bank_account.c.pays_from > now),
                    )
                )
            ).scalars()
        )
    if changed:
        names = ", ".join(str(s) for s in changed[:10])
        raise BankDetailsChanged(
            f"Les coordonnées bancaires de {len(changed)} structure(s) ont changé depuis la "
            f"préparation ({names}) : rien n'est exporté ; vérifiez-les, puis préparez une "
            "nouvelle campagne pour une autre date."
        )


def write_atomically(out: Path, data: bytes) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(out)
    directory = os.open(out.parent, os.O_RDONLY)
    try:  # the rename itself is durable before the run is marked exported
        os.fsync(directory)
    finally:
        os.close(directory)


def validate(data: bytes) -> None:
    """Raise unless ``data`` is valid pain.001.001.09 (the XSD sepaxml ships)."""
    from sepaxml.validation import try_valid_xml

    try_valid_xml(data, SCHEMA)


# -- the professional's side: payments and remittance advice ---------------------------------


@dataclass(frozen=True, slots=True)
class PaymentOut:
    id: UUID
    run_id: UUID
    amount_cents: int
    end_to_end_id: str | None
    remittance_ref: str
    executed_on: date
    netted_cents: int = 0  # kept back to absorb an advance

    @classmethod
    def of(cls, r: Any) -> PaymentOut:
        """From a ``payment`` row joined with its run's ``run_date``."""
        return cls(
            r.id, r.run_id, r.amount_cents, r.end_to_end_id, r.remittance_ref, r.run_date,
            r.netted_cents,
        )  # fmt: skip


async def list_payments(rt: Runtime, actor: Principal) -> list[PaymentOut]:
    if actor.structure_id is None or not actor.may(Permission.VIEW_PAYMENTS):
        raise Forbidden("Seul un professionnel de santé a des paiements.")
    async with rt.db.read(replica_ok=True) as conn:  # exported payments do not change
        rows = await conn.execute(
            select(payment, payment_run.c.run_date)
            .join(payment_run, payment_run.c.id == payment.c.run_id)
            .where(payment.c.structure_id == actor.structure_id, payment_run.c.status == "exported")
            .order_by(payment_run.c.run_date.desc())
        )
        return [PaymentOut.of(r) for r in rows]


@dataclass(frozen=True, slots=True)
class RemittanceLine:
    invoice_id: UUID
    invoice_number: str
    care_date: date
    status: str  # paid | rejected
    amc_cents: int
    reasons: tuple[Reason, ...]


async def remittance(
    rt: Runtime, actor: Principal, payment_id: UUID
) -> tuple[PaymentOut, list[RemittanceLine]]:
    """The RSP: every invoice the payment reports, paid or rejected, with the reasons."""
    if actor.structure_id is None or not actor.may(Permission.VIEW_PAYMENTS):
        raise Forbidden("Seul un professionnel de santé a des paiements.")
    async with rt.db.transaction() as conn:
        head = (
            await conn.execute(
                select(payment, payment_run.c.run_date)
                .join(payment_run, payment_run.c.id == payment.c.run_id)
                .where(
                    payment.c.id == payment_id,
                    payment.c.structure_id == actor.structure_id,
                    payment_run.c.status == "exported",
                )
            )
        ).first()
        if head is None:
            await access.record_refusal(
                conn, principal=actor, channel="api", purpose="remittance_read",
                reason="not_found", now=rt.now(),
            )  # fmt: skip
        else:
            await audit.record(
                conn, at=rt.now(), actor=actor, channel="api", purpose="remittance_read",
                result="ok", categories=("claims",), detail={"payment_id": str(payment_id)},
            )  # fmt: skip
    if head is None:
        raise NotFound("Paiement introuvable.")
    async with rt.db.read() as conn:  # the primary: an advice is never shown half-replicated
        invoices = (
            await conn.execute(
                select(invoice.c.id, invoice.c.invoice_number, invoice.c.care_date,
                       remitted_invoice.c.decision, remitted_invoice.c.amc_cents)
                .join(remitted_invoice, remitted_invoice.c.invoice_id == invoice.c.id)
                .where(remitted_invoice.c.payment_id == payment_id)
                .order_by(invoice.c.invoice_number)
            )
        ).all()  # fmt: skip
        reasons: dict[UUID, list[Reason]] = {}
        for r in await conn.execute(
            select(invoice_line.c.invoice_id, invoice_line.c.reasons)
            .join(remitted_invoice, remitted_invoice.c.invoice_id == invoice_line.c.invoice_id)
            .where(remitted_invoice.c.payment_id == payment_id)
            .order_by(invoice_line.c.line_no)
        ):
            for value in orjson.loads(r.reasons):
                reason = Reason.from_json(value)
                seen = reasons.setdefault(r.invoice_id, [])
                if reason not in seen:
                    seen.append(reason)
    lines = [
        RemittanceLine(
            i.id,
            i.invoice_number,
            i.care_date,
            "paid" if i.decision == "accepted" else "rejected",
            int(i.amc_cents) if i.decision == "accepted" else 0,
            tuple(reasons.get(i.id, ())),
        )
        for i in invoices
    ]
    return PaymentOut.of(head), lines


def remittance_csv(p: PaymentOut, lines: Sequence[RemittanceLine]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";")
    w.writerow(["reference", "facture", "numero", "date_soins", "statut", "montant_amc", "motifs"])
    for ln in lines:
        w.writerow(
            [
                p.remittance_ref,
                ln.invoice_id,
                ln.invoice_number,
                ln.care_date.isoformat(),
                "payée" if ln.status == "paid" else "rejetée",
                f"{ln.amc_cents // 100},{ln.amc_cents % 100:02d}",
                " | ".join(f"{r.code.value} {r.code.label}" for r in ln.reasons),
            ]
        )
    return buf.getvalue()
