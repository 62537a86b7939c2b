"""Use case: a professional sends invoices; store-and-forward intake (DESIGN §2.5, §5, §6).

Intake checks the form, stores the invoice durably and answers only after the commit: 202
``received`` for one invoice, an ARL for a batch. It needs nothing but the database — not the
worker, not the adjudication or payment channels, not the portal — so invoices keep coming in
when any of those is down. Adjudication happens later (``services.adjudication``).

    submit → admitted? (intake open, may submit) → form (lines, domains) → encrypt body
           → INSERT … ON CONFLICT DO NOTHING → inserted: 202
                                              → already there: same body? replay : 409

Idempotency: by ``Idempotency-Key`` and by the structure's own invoice number (unique per
structure). The body compared is the canonical JSON of the validated invoice, so key order and
spacing do not matter.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart import access
from rempart.access import record_refusal
from rempart.db.tables import care_key, invoice, invoice_batch, ledger_posting
from rempart.db.upsert import insert_for
from rempart.domain.adjudication import (
    InvoiceStatus,
    claim_from_doc,
    form_problems,
    may_move,
)
from rempart.domain.care import PROFESSION_DOMAINS
from rempart.domain.channels import Channel
from rempart.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidFields,
    NotFound,
)
from rempart.domain.ledger import Posting, credit_note, reverse
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.security.pseudonyms import card_index
from rempart.services import admission, ledger, pec
from rempart.services.idempotency import KeyReused, body_hash, canonical
from rempart.services.runtime import Runtime

BATCH_INVOICES_MAX = 1000
BATCH_LINES_MAX = 5000


@dataclass(frozen=True, slots=True)
class Receipt:
    invoice_id: UUID
    status: str
    received_at: datetime
    replayed: bool = False

    def as_json(self) -> dict[str, str]:
        return {
            "invoice_id": str(self.invoice_id),
            "status": self.status,
            "received_at": self.received_at.isoformat(),
        }


def form_errors(actor: Principal, doc: Mapping[str, Any], today: date) -> list[FieldError]:
    """The form checks types cannot express: amounts that cannot add up, optical equipments,
    domains the structure's profession does not bill."""
    claim = claim_from_doc(doc, today)
    errors = form_problems(claim)
    allowed = PROFESSION_DOMAINS[actor.profession] if actor.profession else frozenset()
    for i, line in enumerate(claim.lines):
        if line.domain not in allowed:
            errors.append(
                FieldError(f"lines.{i}.domain", "domaine non autorisé pour votre profession")
            )
    return errors


def _row(
    rt: Runtime,
    actor: Principal,
    doc: Mapping[str, Any],
    *,
    key: str | None,
    channel: str,
    batch_id: UUID | None,
    now: datetime,
) -> dict[str, Any]:
    invoice_id = uuid.uuid4()
    who = doc["beneficiary"]
    return {
        "id": invoice_id,
        "structure_id": actor.structure_id,
        "invoice_number": doc["invoice_number"],
        "idempotency_key": key,
        "body_hash": body_hash(doc),
        "body_enc": rt.keys.encrypt("invoice", "body", invoice_id, canonical(doc).decode()),
        "key_version": rt.keys.current_version,
        "card_bi": card_index(
            rt.keys,
            who["amc_number"],
            who["adherent_number"],
            date.fromisoformat(who["birth_date"]),
            who.get("rank", 1),
        ),
        "care_date": date.fromisoformat(doc["care_date"]),
        "channel": channel,
        "batch_id": batch_id,
        "status": InvoiceStatus.RECEIVED.value,
        "received_at": now,
    }


async def submit(
    rt: Runtime,
    actor: Principal,
    doc: Mapping[str, Any],
    *,
    idempotency_key: str | None,
    channel: str = "api",
) -> Receipt:
    """Store one invoice (validated for types by the caller) and return its receipt, or the
    first receipt when it was already received with the same content."""
    await admission.admit(
        rt,
        actor,
        channel=Channel.INTAKE,
        permission=Permission.SUBMIT_INVOICES,
        purpose="invoice_intake",
        refusal="Seul un professionnel de santé peut envoyer des factures.",
    )
    errors = form_errors(actor, doc, rt.today())
    if errors:
        raise InvalidFields(errors)
    now = rt.now()
    values = _row(rt, actor, doc, key=idempotency_key, channel=channel, batch_id=None, now=now)
    stmt = insert_for(rt.db.dialect, invoice).on_conflict_do_nothing().returning(invoice.c.id)
    async with rt.db.transaction() as conn:
        if (await conn.execute(stmt, values)).first() is not None:
            return Receipt(values["id"], "received", now)
        same = or_(
            invoice.c.invoice_number == values["invoice_number"],
            *([invoice.c.idempotency_key == idempotency_key] if idempotency_key else []),
        )
        found = (
            await conn.execute(
                select(invoice.c.id, invoice.c.body_hash, invoice.c.received_at).where(
                    invoice.c.structure_id == actor.structure_id, same
                )
            )
        ).all()
    if len(found) == 1 and found[0].body_hash == values["body_hash"]:
        return Receipt(found[0].id, "received", found[0].received_at, replayed=True)
    raise KeyReused()


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One invoice of a batch: its validated body, or the problems its form has."""

    index: int
    invoice_number: str | None
    doc: Mapping[str, Any] | None
    errors: Sequence[FieldError] = ()


async def submit_batch(
    rt: Runtime,
    actor: Principal,
    items: Sequence[BatchItem],
    *,
    idempotency_key: str | None,
    batch_hash: bytes,
) -> tuple[dict[str, Any], bool]:
    """Store a batch's valid invoices in one transaction and return its ARL (and whether it is
    a replay). Invalid invoices and numbers already used for another content are listed as
    rejected with their reasons; nothing of them is stored."""
    await admission.admit(
        rt,
        actor,
        channel=Channel.INTAKE,
        permission=Permission.SUBMIT_INVOICES,
        purpose="invoice_intake",
        refusal="Seul un professionnel de santé peut envoyer des factures.",
    )
    if len(items) > BATCH_INVOICES_MAX:
        raise InvalidFields(
            [FieldError("invoices", f"au plus {BATCH_INVOICES_MAX} factures par lot")]
        )
    lines = sum(len(i.doc["lines"]) for i in items if i.doc is not None)
    if lines > BATCH_LINES_MAX:
        raise InvalidFields([FieldError("invoices", f"au plus {BATCH_LINES_MAX} lignes par lot")])
    today, now = rt.today(), rt.now()
    checked = [
        item
        if item.doc is None
        else BatchItem(
            item.index, item.invoice_number, item.doc, form_errors(actor, item.doc, today)
        )
        for item in items
    ]
    batch_id = uuid.uuid4()
    rows = {
        item.index: _row(rt, actor, item.doc, key=None, channel="batch", batch_id=batch_id, now=now)
        for item in checked
        if item.doc is not None and not item.errors
    }
    async with rt.db.transaction() as conn:
        if not await _claim_batch(rt, conn, actor, batch_id, idempotency_key, batch_hash, now):
            assert idempotency_key is not None
            return await _prior_arl(conn, actor, idempotency_key, batch_hash), True
        inserted, existing = await _store(rt, conn, actor, list(rows.values()))
        arl = _arl(batch_id, now, checked, rows, inserted, existing)
        await conn.execute(
            update(invoice_batch)
            .where(invoice_batch.c.id == batch_id)
            .values(arl=orjson.dumps(arl).decode())
        )
    return arl, False


async def _claim_batch(
    rt: Runtime,
    conn: AsyncConnection,
    actor: Principal,
    batch_id: UUID,
    idempotency_key: str | None,
    batch_hash: bytes,
    now: datetime,
) -> bool:
    """Write the batch's row before its invoices (its ARL comes last, in this transaction);
    False when its key was already taken. A copy of the request running at the same time
    waits here for the first one's commit, then finds the key taken and replays its ARL."""
    claimed = await conn.execute(
        insert_for(rt.db.dialect, invoice_batch)
        .values(
            id=batch_id,
            structure_id=actor.structure_id,
            idempotency_key=idempotency_key,
            body_hash=batch_hash,
            received_at=now,
            arl="",
        )
        .on_conflict_do_nothing()
        .returning(invoice_batch.c.id)
    )
    return claimed.first() is not None


async def _store(
    rt: Runtime, conn: AsyncConnection, actor: Principal, rows: list[dict[str, Any]]
) -> tuple[set[UUID], dict[str, Any]]:
    """Insert the invoices whose number is free; the ids inserted, and the invoices already
    there (by number) for the others."""
    inserted: set[UUID] = set()
    if rows:
        stmt = insert_for(rt.db.dialect, invoice).on_conflict_do_nothing().returning(invoice.c.id)
        inserted = {r.id for r in await conn.execute(stmt, rows)}
    missing = [v["invoice_number"] for v in rows if v["id"] not in inserted]
    existing = {}
    if missing:
        for r in await conn.execute(
            select(invoice.c.id, invoice.c.invoice_number, invoice.c.body_hash).where(
                invoice.c.structure_id == actor.structure_id,
                invoice.c.invoice_number.in_(missing),
            )
        ):
            existing[r.invoice_number] = r
    return inserted, existing


async def _prior_arl(
    conn: AsyncConnection, actor: Principal, idempotency_key: str, batch_hash: bytes
) -> dict[str, Any]:
    """The ARL of the batch first received under this key, or a 409 for another content."""
    prior = (
        await conn.execute(
            select(invoice_batch.c.body_hash, invoice_batch.c.arl).where(
                invoice_batch.c.structure_id == actor.structure_id,
                invoice_batch.c.idempotency_key == idempotency_key,
            )
        )
    ).one()
    if prior.body_hash != batch_hash:
        raise KeyReused()
    return orjson.loads(prior.arl)  # type: ignore[no-any-return]


def _arl(
    batch_id: UUID,
    now: datetime,
    items: Sequence[BatchItem],
    rows: Mapping[int, Mapping[str, Any]],
    inserted: set[UUID],
    existing: Mapping[str, Any],
) -> dict[str, Any]:
    received, rejected = [], []
    for item in items:
        if item.doc is None or item.errors:
            rejected.append(_rejected(item, "invalid_fields", item.errors))
            continue
        row = rows[item.index]
        if row["id"] in inserted:
            received.append(_received(item, row["id"], now))
            continue
        prior = existing.get(row["invoice_number"])
        if prior is not None and prior.body_hash == row["body_hash"]:
            received.append(_received(item, prior.id, now, replayed=True))
        else:
            conflict = FieldError("invoice_number", "numéro déjà utilisé pour une autre facture")
            rejected.append(_rejected(item, "idempotency_conflict", [conflict]))
    return {
        "batch_id": str(batch_id),
        "received_at": now.isoformat(),
        "accepted": len(received),
        "invoices": received,
        "rejected": rejected,
    }


def _received(item: BatchItem, invoice_id: UUID, now: datetime, **extra: bool) -> dict[str, Any]:
    return {
        "index": item.index,
        "invoice_number": item.invoice_number,
        "invoice_id": str(invoice_id),
        "status": "received",
        **extra,
    }


def _rejected(item: BatchItem, code: str, errors: Sequence[FieldError]) -> dict[str, Any]:
    return {
        "index": item.index,
        "invoice_number": item.invoice_number,
        "code": code,
        "errors": [{"field": e.field, "reason": e.reason} for e in errors],
    }


# -- reading back and cancelling -------------------------------------------------------------


async def get(rt: Runtime, actor: Principal, invoice_id: UUID) -> access.InvoiceRead:
    async with rt.db.transaction() as conn:
        found = await access.read_invoice(
            conn, principal=actor, invoice_id=invoice_id, now=rt.now(), channel="api"
        )
    if found is None:
        raise NotFound("Facture introuvable.")
    return found


async def cancel(rt: Runtime, actor: Principal, invoice_id: UUID) -> str:
    """Cancel one of the structure's invoices before it is paid; its care may be billed again."""
    if actor.structure_id is None or not actor.may(Permission.SUBMIT_INVOICES):
        await admission.refuse(rt, actor, "invoice_cancel", "not_allowed")
        raise Forbidden("Seul le professionnel de santé qui l'a envoyée peut annuler une facture.")
    now = rt.now()
    async with rt.db.transaction() as conn:
        q = select(
            invoice.c.status, invoice.c.beneficiary_id, invoice.c.amc_cents, invoice.c.payment_id
        ).where(invoice.c.id == invoice_id, invoice.c.structure_id == actor.structure_id)
        if rt.db.dialect == "postgresql":
            q = q.with_for_update()  # wait for a worker deciding it, then see its decision
        row = (await conn.execute(q)).first()
        if row is None:
            await record_refusal(
                conn,
                principal=actor,
                channel="api",
                purpose="invoice_cancel",
                reason="not_found",
                now=now,
            )
        elif row.payment_id is None and may_move(
            InvoiceStatus(row.status), InvoiceStatus.CANCELLED
        ):
            await conn.execute(
                update(invoice)
                .where(invoice.c.id == invoice_id)
                .values(status=InvoiceStatus.CANCELLED.value, cancelled_at=now)
            )
            await conn.execute(delete(care_key).where(care_key.c.invoice_id == invoice_id))
            await pec.release(conn, invoice_id)
            if row.status == InvoiceStatus.ACCEPTED.value and row.amc_cents:
                # what the acceptance posted, posted back: the PS is no longer owed it
                accepted = await conn.execute(
                    select(ledger_posting).where(
                        ledger_posting.c.ref == invoice_id,
                        ledger_posting.c.event == "invoice_accepted",
                    )
                )
                back = [Posting(r.debit, r.credit, r.amount_cents, r.event) for r in accepted]
                await ledger.post(
                    conn,
                    rt.db.dialect,
                    [(invoice_id, p) for p in reverse(back, "invoice_cancelled")],
                    now,
                )
            await audit.record(
                conn,
                at=now,
                actor=actor,
                channel="api",
                purpose="invoice_cancel",
                result="ok",
                subject_kind="beneficiary" if row.beneficiary_id else None,
                subject_id=row.beneficiary_id,
                categories=("claims",),
                detail={"invoice_id": str(invoice_id), "was": row.status},
            )
    if row is None:
        raise NotFound("Facture introuvable.")
    if row.payment_id is not None or not may_move(
        InvoiceStatus(row.status), InvoiceStatus.CANCELLED
    ):
        raise Conflict(
            "Cette facture ne peut plus être annulée (déjà payée ou annulée) : émettez un avoir."
        )
    return InvoiceStatus.CANCELLED.value


async def list_own(
    rt: Runtime,
    actor: Principal,
    *,
    status: InvoiceStatus | None,
    received_from: date | None,
    received_to: date | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Any]:
    if actor.structure_id is None:
        raise Forbidden("Seul un professionnel de santé a des factures.")
    async with rt.db.transaction() as conn:
        return await access.list_invoices(
            conn,
            principal=actor,
            status=status.value if status else None,
            received_from=received_from,
            received_to=received_to,
            after=after,
            limit=limit,
            now=rt.now(),
            channel="api",
        )


async def credit(rt: Runtime, actor: Principal, invoice_id: UUID) -> int:
    """A credit note (avoir) on one of the structure's paid invoices: its AMC part is owed back
    and netted by the next payment runs; the care may be billed again. Once per invoice; the
    cents credited."""
    if actor.structure_id is None or not actor.may(Permission.SUBMIT_INVOICES):
        await admission.refuse(rt, actor, "invoice_credit", "not_allowed")
        raise Forbidden("Seul le professionnel de santé qui l'a envoyée peut émettre un avoir.")
    now = rt.now()
    async with rt.db.transaction() as conn:
        q = select(invoice.c.status, invoice.c.amc_cents, invoice.c.beneficiary_id).where(
            invoice.c.id == invoice_id, invoice.c.structure_id == actor.structure_id
        )
        if rt.db.dialect == "postgresql":
            q = q.with_for_update()
        row = (await conn.execute(q)).first()
        if row is None:
            await record_refusal(
                conn, principal=actor, channel="api", purpose="invoice_credit",
                reason="not_found", now=now,
            )  # fmt: skip
        elif row.status == InvoiceStatus.PAID.value and row.amc_cents:
            already = (
                await conn.execute(
                    select(ledger_posting.c.id).where(
                        ledger_posting.c.ref == invoice_id,
                        ledger_posting.c.event == "credit_note",
                    )
                )
            ).first()
            if already is not None:
                raise Conflict("Un avoir a déjà été émis sur cette facture.")
            accepted = (
                await conn.execute(
                    select(ledger_posting.c.debit).where(
                        ledger_posting.c.ref == invoice_id,
                        ledger_posting.c.event == "invoice_accepted",
                    )
                )
            ).scalar_one()  # "ocam:<id>": the insurer the acceptance billed
            ocam_id = UUID(accepted.split(":", 1)[1])
            await ledger.post(
                conn,
                rt.db.dialect,
                [(invoice_id, credit_note(ocam_id, actor.structure_id, int(row.amc_cents)))],
                now,
            )
            await conn.execute(delete(care_key).where(care_key.c.invoice_id == invoice_id))
            await audit.record(
                conn, at=now, actor=actor, channel="api", purpose="invoice_credit", result="ok",
                subject_kind="beneficiary" if row.beneficiary_id else None,
                subject_id=row.beneficiary_id, categories=("claims",),
                detail={"invoice_id": str(invoice_id), "amount_cents": int(row.amc_cents)},
            )  # fmt: skip
    if row is None:
        raise NotFound("Facture introuvable.")
    if row.status != InvoiceStatus.PAID.value or not row.amc_cents:
        raise Conflict("Un avoir porte sur une facture payée ; annulez une facture non payée.")
    return int(row.amc_cents)
