"""Use case: import a bank statement and reconcile it with the payments sent (DOMAIN.md §8).

Each movement is matched by ``EndToEndId`` to an exported payment:

- a debit of the payment's amount → the payment is ``booked``;
- a credit carrying a return reason (``RtrInf``) → the transfer came back: the payment is
  ``returned`` with its reason, the money is posted back (``bank`` → ``ps:<id>``), its invoices
  are accepted and unpaid again (the next run pays them), and the professional's bank details
  go under review — the next runs hold them until someone checks them (never resent blindly);
- anything else (unknown id, amount that differs) is listed as unmatched, and nothing of it
  changes any state.

A statement is imported once (its SHA-256): importing it again returns the same report.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select, update

from rempart.db.tables import bank_account, bank_statement, invoice, payment, remitted_invoice
from rempart.domain.adjudication import InvoiceStatus, may_move
from rempart.domain.camt import StatementError, parse
from rempart.domain.errors import FieldError, Forbidden, InvalidFields
from rempart.domain.ledger import BANK, Posting, advance, ps
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.services import ledger
from rempart.services.runtime import Runtime

_STATUS_FR = {"planned": "non exporté", "returned": "déjà retourné"}


@dataclass
class Report:
    booked: list[str] = field(default_factory=list)
    returned: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    already_imported: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"booked": self.booked, "returned": self.returned, "unmatched": self.unmatched}


async def import_statement(rt: Runtime, actor: Principal, data: bytes, filename: str) -> Report:
    if not actor.may(Permission.PREPARE_PAYMENTS):
        raise Forbidden("Réservé aux opérateurs habilités aux paiements.")
    try:
        movements = parse(data)
    except StatementError as e:
        raise InvalidFields([FieldError("file", str(e))]) from None
    digest = hashlib.sha256(data).hexdigest()
    now = rt.now()
    async with rt.db.transaction() as conn:
        prior = (
            await conn.execute(
                select(bank_statement.c.report).where(bank_statement.c.sha256 == digest)
            )
        ).first()
        if prior is not None:
            report = Report(**orjson.loads(prior.report), already_imported=True)
            return report
        report = Report()
        ids = [m.end_to_end_id for m in movements if m.end_to_end_id]
        sent = {
            r.end_to_end_id: r
            for r in await conn.execute(select(payment).where(payment.c.end_to_end_id.in_(ids)))
        }
        for m in movements:
            p = sent.get(m.end_to_end_id or "")
            if p is None or p.amount_cents != m.cents or p.status not in ("exported", "booked"):
                report.unmatched.append(
                    {"end_to_end_id": m.end_to_end_id, "amount_cents": m.cents,
                     "debit": m.debit, "return_reason": m.return_reason,
                     "why": "inconnu" if p is None else
                            ("montant différent" if p.amount_cents != m.cents
                             else _STATUS_FR.get(p.status, p.status))}
                )  # fmt: skip
            elif m.return_reason is not None and not m.debit:
                await _returned(rt, conn, p, m.return_reason, now)
                report.returned.append(
                    {"end_to_end_id": p.end_to_end_id, "structure_id": str(p.structure_id),
                     "amount_cents": p.amount_cents, "reason": m.return_reason}
                )  # fmt: skip
            elif m.debit:
                await conn.execute(
                    update(payment).where(payment.c.id == p.id).values(status="booked")
                )
                report.booked.append(str(p.end_to_end_id))
            else:
                report.unmatched.append(
                    {"end_to_end_id": m.end_to_end_id, "amount_cents": m.cents, "debit": False,
                     "return_reason": None, "why": "crédit sans motif de retour"}
                )  # fmt: skip
        await conn.execute(
            bank_statement.insert().values(
                id=uuid.uuid4(), sha256=digest, filename=filename[:255], imported_at=now,
                actor=actor.label, report=orjson.dumps(report.as_json()).decode(),
            )
        )  # fmt: skip
        await audit.record(
            conn, at=now, actor=actor, channel="cli", purpose="bank_statement", result="ok",
            detail={"booked": len(report.booked), "returned": len(report.returned),
                    "unmatched": len(report.unmatched)},
        )  # fmt: skip
    return report


async def _returned(rt: Runtime, conn: Any, p: Any, reason: str, now: Any) -> None:
    await conn.execute(
        update(payment)
        .where(payment.c.id == p.id)
        .values(status="returned", return_reason=reason[:10], returned_at=now)
    )
    assert may_move(InvoiceStatus.PAID, InvoiceStatus.ACCEPTED)  # the table allows it
    await conn.execute(
        update(invoice)
        .where(
            invoice.c.id.in_(
                select(remitted_invoice.c.invoice_id).where(remitted_invoice.c.payment_id == p.id)
            ),
            invoice.c.payment_id == p.id,
            invoice.c.status == InvoiceStatus.PAID.value,
        )
        .values(status=InvoiceStatus.ACCEPTED.value, payment_id=None)
    )
    back = [Posting(BANK, ps(p.structure_id), p.amount_cents, "payment_returned")]
    if p.netted_cents:  # the advance this payment absorbed is owed again: the invoices reopen
        back.append(
            Posting(
                advance(p.structure_id),
                ps(p.structure_id),
                p.netted_cents,
                "advance_netted_returned",
            )
        )
    await ledger.post(conn, rt.db.dialect, [(p.id, b) for b in back], now)
    if p.bank_account_id is not None:
        await conn.execute(
            update(bank_account)
            .where(bank_account.c.id == p.bank_account_id, bank_account.c.status == "active")
            .values(status="review")
        )
