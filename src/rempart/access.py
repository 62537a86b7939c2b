"""The one audited path to personal data (DESIGN §3, §4.2–4.3).

Every function here reads personal data *and* writes its audit row in the caller's
transaction, refusals included. Nothing else in Rempart selects from the personal-data
columns of ``beneficiary`` (an import-linter-style test greps for it). If the audit insert
fails, the function raises and the caller's transaction rolls back: no data leaves.

Answers hold the minimum: the rights check returns a decision (status, guarantee, validity),
never the NIR, names or the contract number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import beneficiary, contract, guarantee
from rempart.domain.care import CareDomain
from rempart.domain.coverage import Contract, Formula, Guarantee, Period
from rempart.domain.identifiers import Nir
from rempart.domain.money import Money
from rempart.domain.rights import Decision, Right, Status
from rempart.security import audit
from rempart.security.keys import KeyRing
from rempart.security.principal import Principal
from rempart.security.pseudonyms import card_index, nir_index


@dataclass(frozen=True, slots=True)
class Card:
    """What the attestation and the patient at the counter show."""

    amc_number: str
    adherent_number: str
    birth_date: date
    rank: int = 1
    nir: Nir | None = None


@dataclass(frozen=True, slots=True)
class RightsRead:
    decision: Decision
    verification_id: UUID
    beneficiary_id: UUID | None
    ocam_id: UUID | None
    is_canary: bool


Decide = Callable[[Right | None, Contract | None], Decision]


def _guarantee(row: Any) -> Guarantee:
    r = row
    return Guarantee(
        CareDomain(r.domain),
        Formula(r.formula),
        rate_pct=r.rate_pct,
        flat_amount=Money(r.flat_amount_cents) if r.flat_amount_cents is not None else None,
        ceiling_amount=Money(r.ceiling_amount_cents)
        if r.ceiling_amount_cents is not None
        else None,
        period=Period(r.period),
        valid_from=r.g_from,
        valid_to=r.g_to,
    )


async def read_rights(
    conn: AsyncConnection,
    keys: KeyRing,
    *,
    principal: Principal,
    card: Card,
    domain: CareDomain,
    decide: Decide,
    channel: str,
    now: datetime,
    verification_id: UUID,
    card_bi: bytes | None = None,
) -> RightsRead:
    """Find the person by the card's full key, decide, and audit: one read, one audit row.
    ``card_bi``: the card's blind index when the caller already computed it (quota counting)."""
    bi = card_bi or card_index(
        keys, card.amc_number, card.adherent_number, card.birth_date, card.rank
    )
    q = (
        select(
            beneficiary.c.id,
            beneficiary.c.ocam_id,
            beneficiary.c.nir_bi,
            beneficiary.c.valid_from,
            beneficiary.c.valid_to,
            beneficiary.c.closed_on,
            beneficiary.c.is_canary,
            contract.c.code,
            contract.c.label,
            contract.c.valid_from.label("c_from"),
            contract.c.valid_to.label("c_to"),
            guarantee.c.domain,
            guarantee.c.formula,
            guarantee.c.rate_pct,
            guarantee.c.flat_amount_cents,
            guarantee.c.ceiling_amount_cents,
            guarantee.c.period,
            guarantee.c.valid_from.label("g_from"),
            guarantee.c.valid_to.label("g_to"),
        )
        .select_from(beneficiary)
        .join(contract, contract.c.id == beneficiary.c.contract_id)
        .outerjoin(
            guarantee,
            and_(guarantee.c.contract_id == contract.c.id, guarantee.c.domain == domain.value),
        )
        .where(beneficiary.c.card_bi == bi)
    )
    rows = (await conn.execute(q)).all()
    found = rows[0] if rows else None
    if (
        found is not None
        and card.nir is not None
        and found.nir_bi != nir_index(keys, card.nir.value)
    ):
        found = None  # a NIR that does not match gets the same answer as an unknown card
    # The audit names the person whose card was used even when the NIR did not match: someone
    # probing a real card must be traceable to that person when an incident is scoped.
    subject = rows[0] if rows else None
    mismatch = subject is not None and found is None
    right = contract_ = None
    if found is not None:
        closes = [d for d in (found.valid_to, found.closed_on) if d is not None]
        right = Right(found.valid_from, min(closes) if closes else None)
        contract_ = Contract(
            found.code,
            found.label,
            [_guarantee(r) for r in rows if r.domain is not None],
            valid_from=found.c_from,
            valid_to=found.c_to,
        )
    decision = decide(right, contract_)
    await audit.record(
        conn,
        event_id=verification_id,
        at=now,
        actor=principal,
        channel=channel,
        purpose="rights_check",
        result=decision.status.value,
        subject_kind="beneficiary" if subject is not None else None,
        subject_id=subject.id if subject is not None else None,
        ocam_id=subject.ocam_id if subject is not None else None,
        categories=("coverage",) if decision.status is not Status.UNKNOWN else (),
        detail={
            "domain": domain.value,
            **({"canary": True} if subject is not None and subject.is_canary else {}),
            **({"nir_mismatch": True} if mismatch else {}),
        },
    )
    return RightsRead(
        decision,
        verification_id,
        found.id if found is not None else None,
        found.ocam_id if found is not None else None,
        # a canary's card used at all, even with a wrong NIR, is a tripwire
        bool(subject is not None and subject.is_canary),
    )


async def record_refusal(
    conn: AsyncConnection,
    *,
    principal: Principal,
    channel: str,
    purpose: str,
    reason: str,
    now: datetime,
) -> UUID:
    """A refused request, before any personal data was looked up."""
    return await audit.record(
        conn,
        at=now,
        actor=principal,
        channel=channel,
        purpose=purpose,
        result="refused",
        detail={"reason": reason},
    )
