"""Use cases: a structure's titulaire reads and changes its bank details from the portal
(DESIGN §4.7, issue 7).

- Only an account with ``Permission.CHANGE_BANK_DETAILS`` (a titulaire) sees or changes them;
  anyone else is refused, and the refusal is audited.
- What is shown is the last four characters of the IBAN, its BIC, and its state: in
  cooling-off until a date (no transfer before it), or active. The full IBAN is never read
  back: the encrypted column is only written here.
- A change needs a fresh passkey assertion (``step_up``), validates IBAN and BIC (schwifty,
  through ``domain.identifiers``), stores a new ``bank_account`` row, encrypted and bound to
  its row, whose ``pays_from`` is the end of the cooling-off (five French business days:
  payment runs hold the structure until then and flag an IBAN shared by several structures),
  retires the previous details, audits the change and notifies the previous channel — the
  e-mail on file of every titulaire of the structure — in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.access import record_refusal
from rempart.db.tables import bank_account, structure
from rempart.domain.errors import FieldError, Forbidden, InvalidFields
from rempart.domain.identifiers import IdentifierError, parse_bic, parse_iban
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.security.pseudonyms import iban_index
from rempart.services import notifications, step_up
from rempart.services.registry import NAME_CHARS_MAX, cooling_off_end
from rempart.services.runtime import Runtime

CHANNEL = "portal"


@dataclass(frozen=True, slots=True)
class BankLine:
    id: UUID
    last4: str
    bic: str
    pays_from: datetime
    created_at: datetime
    cooling_off: bool  # no transfer before ``pays_from``


async def _need(rt: Runtime, actor: Principal, purpose: str) -> UUID:
    if not actor.may(Permission.CHANGE_BANK_DETAILS) or actor.structure_id is None:
        async with rt.db.transaction() as conn:
            await record_refusal(
                conn,
                principal=actor,
                channel=CHANNEL,
                purpose=purpose,
                reason="not_allowed",
                now=rt.now(),
            )
        raise Forbidden(
            "Seul le titulaire de la structure peut consulter et modifier ses coordonnées "
            "bancaires."
        )
    return actor.structure_id


def _line(row: Any, now: datetime) -> BankLine:
    return BankLine(row.id, row.iban_last4, row.bic, row.pays_from, row.created_at,
                    row.pays_from > now)  # fmt: skip


async def _current(conn: AsyncConnection, structure_id: UUID) -> Any:
    return (
        await conn.execute(
            select(
                bank_account.c.id,
                bank_account.c.iban_last4,
                bank_account.c.bic,
                bank_account.c.pays_from,
                bank_account.c.created_at,
            )
            .where(
                bank_account.c.structure_id == structure_id,
                bank_account.c.status.in_(("active", "review")),
            )
            .order_by(bank_account.c.created_at.desc())
            .limit(1)
        )
    ).first()


async def current(rt: Runtime, *, actor: Principal) -> BankLine | None:
    structure_id = await _need(rt, actor, "bank_details.read")
    async with rt.db.read() as conn:
        row = await _current(conn, structure_id)
    return None if row is None else _line(row, rt.now())


def _validated(iban: str, bic: str, holder: str) -> tuple[Any, str, str]:
    errors: list[FieldError] = []
    parsed = parsed_bic = None
    try:
        parsed = parse_iban(iban)
    except IdentifierError as e:
        errors.append(FieldError("iban", e.reason))
    try:
        parsed_bic = parse_bic(bic)
    except IdentifierError as e:
        errors.append(FieldError("bic", e.reason))
    holder = " ".join(holder.split())
    if not holder:
        errors.append(FieldError("holder", "obligatoire"))
    elif len(holder) > NAME_CHARS_MAX:
        errors.append(FieldError("holder", f"{NAME_CHARS_MAX} caractères au plus"))
    if errors or parsed is None or parsed_bic is None:
        raise InvalidFields(errors, "Vérifiez les coordonnées bancaires saisies.")
    return parsed, parsed_bic, holder


async def change(
    rt: Runtime,
    *,
    actor: Principal,
    stepped_up_at: datetime | None,
    iban: str,
    bic: str,
    holder: str,
) -> BankLine:
    """New bank details for the actor's structure: see the module's docstring."""
    structure_id = await _need(rt, actor, "bank_details.change")
    await step_up.require(
        rt, actor=actor, stepped_up_at=stepped_up_at, purpose="bank_details.change"
    )
    parsed, parsed_bic, holder = _validated(iban, bic, holder)
    now, bank_id, k = rt.now(), uuid.uuid4(), rt.keys
    pays_from = cooling_off_end(rt, now)
    async with rt.db.transaction() as conn:
        lock = select(structure.c.name).where(structure.c.id == structure_id)
        if rt.db.dialect == "postgresql":
            lock = lock.with_for_update()  # two changes at once: one after the other
        name = (await conn.execute(lock)).scalar_one()
        previous = await _current(conn, structure_id)
        retired = await conn.execute(
            update(bank_account)
            .where(
                bank_account.c.structure_id == structure_id,
                bank_account.c.status != "retired",
            )
            .values(status="retired")
        )
        await conn.execute(
            bank_account.insert().values(
                id=bank_id,
                structure_id=structure_id,
                iban_enc=k.encrypt("bank_account", "iban", bank_id, parsed.value),
                iban_bi=iban_index(k, parsed.value),
                iban_last4=parsed.last4,
                bic=parsed_bic,
                holder_enc=k.encrypt("bank_account", "holder", bank_id, holder),
                status="active",
                pays_from=pays_from,
                key_version=k.current_version,
                created_at=now,
            )
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel=CHANNEL,
            purpose="bank_details.change",
            result="ok",
            subject_kind="bank_account",
            subject_id=bank_id,
            detail={
                "structure_id": str(structure_id),
                "replaces": str(previous.id) if previous else None,
                "retired": int(retired.rowcount or 0),
                "pays_from": pays_from.isoformat(),
            },
        )
        await notifications.bank_details_changed(
            conn,
            recipients=await notifications.structure_titulaires(conn, structure_id),
            structure_name=name,
            by=actor.label,
            last4=parsed.last4,
            pays_from=pays_from,
            now=now,
        )
    return BankLine(bank_id, parsed.last4, parsed_bic, pays_from, now, True)
