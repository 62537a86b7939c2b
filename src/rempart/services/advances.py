"""Use case: grant a professional an advance (acompte) while payments are stopped (DOMAIN.md §8).

    grant (payments role) → paid to it over the last 90 days → amount = average per day × days
          × rate → the advance, its ids derived from its own id → audited
    export → its own pain.001.001.09 (one transfer), byte-identical on re-export → ledger:
             advance:<id> ← bank

Regular runs then net it (``services.payments``): each keeps back from the transfer what is
left of the advance, until it is absorbed, and the remittance advice shows what was kept.
Advances are exported whether the ``payments`` channel is open or not: they are what the
professionals are paid with while it is closed.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import case, func, or_, select, update

from rempart import access
from rempart.db.tables import advance, bank_account, ledger_posting, payment, payment_run
from rempart.domain.errors import Conflict, FieldError, Forbidden, InvalidFields, NotFound
from rempart.domain.ledger import advance as advance_account
from rempart.domain.ledger import advance_paid
from rempart.domain.payments import ADVANCE_WINDOW_DAYS, advance_amount, advance_ids
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.services import ledger
from rempart.services.payments import sepa_file, write_atomically
from rempart.services.runtime import PARIS, Runtime


@dataclass(frozen=True, slots=True)
class Advance:
    id: UUID
    structure_id: UUID
    amount_cents: int
    paid_in_window_cents: int
    days: int
    rate_pct: int
    status: str


def _need(actor: Principal) -> None:
    if not actor.may(Permission.PREPARE_PAYMENTS):
        raise Forbidden("Réservé aux opérateurs habilités aux paiements.")


async def grant(
    rt: Runtime, actor: Principal, structure_id: UUID, *, days: int, rate_pct: int = 80
) -> Advance:
    _need(actor)
    if not 1 <= days <= 60:
        raise InvalidFields([FieldError("days", "entre 1 et 60 jours")])
    if not 1 <= rate_pct <= 100:
        raise InvalidFields([FieldError("rate", "entre 1 et 100 %")])
    now = rt.now()
    since = rt.today() - timedelta(days=ADVANCE_WINDOW_DAYS)
    async with rt.db.transaction() as conn:
        paid = (
            await conn.execute(
                select(func.coalesce(func.sum(payment.c.amount_cents + payment.c.netted_cents), 0))
                .join(payment_run, payment_run.c.id == payment.c.run_id)
                .where(
                    payment.c.structure_id == structure_id,
                    payment.c.status.in_(("exported", "booked")),
                    payment_run.c.run_date >= since,
                )
            )
        ).scalar_one()
        open_ = (
            await conn.execute(
                select(advance.c.id).where(
                    advance.c.structure_id == structure_id, advance.c.status == "granted"
                )
            )
        ).first()
        owed = (
            await conn.execute(
                select(
                    func.coalesce(
                        func.sum(
                            case(
                                (
                                    ledger_posting.c.debit == advance_account(structure_id),
                                    ledger_posting.c.amount_cents,
                                ),
                                else_=-ledger_posting.c.amount_cents,
                            )
                        ),
                        0,
                    )
                ).where(
                    or_(
                        ledger_posting.c.debit == advance_account(structure_id),
                        ledger_posting.c.credit == advance_account(structure_id),
                    )
                )
            )
        ).scalar_one()
        if open_ is not None or int(owed) > 0:
            raise Conflict(
                "Un acompte de cette structure n'est pas encore absorbé : pas de second acompte."
            )
        amount = advance_amount(int(paid), days, rate_pct)
        if amount <= 0:
            raise Conflict(
                "Aucun paiement sur les 90 derniers jours : pas de base pour un acompte."
            )
        account = (
            await conn.execute(
                select(bank_account.c.id).where(
                    bank_account.c.structure_id == structure_id,
                    bank_account.c.status == "active",
                    bank_account.c.pays_from <= now,
                )
            )
        ).first()
        if account is not None:  # the fraud check of payment runs: an IBAN two PS declare
            shared = (
                await conn.execute(
                    select(func.count(func.distinct(bank_account.c.structure_id))).where(
                        bank_account.c.iban_bi
                        == select(bank_account.c.iban_bi)
                        .where(bank_account.c.id == account.id)
                        .scalar_subquery(),
                        bank_account.c.status != "retired",
                    )
                )
            ).scalar_one()
            if shared > 1:
                account = None
        if account is None:
            raise Conflict(
                "Coordonnées bancaires absentes, récentes, partagées ou en vérification."
            )
        advance_id = uuid.uuid4()
        msg, pmt, e2e, ref = advance_ids(advance_id)
        basis = {"paid_cents": int(paid), "window_days": ADVANCE_WINDOW_DAYS, "days": days,
                 "rate_pct": rate_pct}  # fmt: skip
        await conn.execute(
            advance.insert().values(
                id=advance_id, structure_id=structure_id, bank_account_id=account.id,
                amount_cents=amount, basis=orjson.dumps(basis).decode(), granted_by=actor.label,
                granted_at=now.replace(microsecond=0), status="granted", msg_id=msg,
                pmt_inf_id=pmt, end_to_end_id=e2e, remittance_ref=ref,
            )
        )  # fmt: skip
        await audit.record(
            conn, at=now, actor=actor, channel="cli", purpose="advance_grant", result="granted",
            subject_kind="structure", subject_id=structure_id,
            detail={"advance_id": str(advance_id), **basis, "amount_cents": amount},
        )  # fmt: skip
    return Advance(advance_id, structure_id, amount, int(paid), days, rate_pct, "granted")


async def export(rt: Runtime, actor: Principal, advance_id: UUID, out: Path) -> str:
    """Write the advance's own SEPA file; returns its SHA-256. Idempotent."""
    _need(actor)
    now = rt.now()
    async with rt.db.transaction() as conn:
        q = select(advance).where(advance.c.id == advance_id)
        if rt.db.dialect == "postgresql":
            q = q.with_for_update()
        row = (await conn.execute(q)).first()
        if row is None:
            raise NotFound("Acompte introuvable.")
        payees = await access.read_payees(
            conn, rt.keys, principal=actor, accounts=[row.bank_account_id], now=now,
            purpose="advance_export",
        )  # fmt: skip
        run = SimpleNamespace(
            msg_id=row.msg_id, pmt_inf_id=row.pmt_inf_id, prepared_at=row.granted_at,
            run_date=row.granted_at.astimezone(PARIS).date(),  # a Paris day, as every day
        )  # fmt: skip
        transfer: Any = SimpleNamespace(
            bank_account_id=row.bank_account_id, amount_cents=row.amount_cents,
            remittance_ref=row.remittance_ref, end_to_end_id=row.end_to_end_id,
        )  # fmt: skip
        data = sepa_file(rt, run, payees, [transfer], label="Acompte Rempart tiers payant")
        digest = hashlib.sha256(data).hexdigest()
        if row.file_sha256 is not None and row.file_sha256 != digest:
            raise Conflict("Le fichier recalculé diffère de celui déjà exporté : rien n'est écrit.")
        write_atomically(out, data)
        if row.status == "granted":
            await conn.execute(
                update(advance)
                .where(advance.c.id == advance_id)
                .values(status="exported", exported_at=now, file_sha256=digest)
            )
            await ledger.post(
                conn,
                rt.db.dialect,
                [(advance_id, advance_paid(row.structure_id, int(row.amount_cents)))],
                now,
            )
    return digest
