"""The one audited path to personal data (DESIGN §3, §4.2–4.3).

Every function here reads personal data *and* writes its audit row in the caller's
transaction, refusals included. Nothing else in Rempart selects from the personal-data
columns of ``beneficiary`` (an import-linter-style test greps for it). If the audit insert
fails, the function raises and the caller's transaction rolls back: no data leaves.

Answers hold the minimum: the rights check returns a decision (status, guarantee, validity),
never the NIR, names or the contract number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    seen = _Seen.of(rows, card, keys)
    decision = decide(seen.right, seen.contract)
    await audit.record(
        conn, **seen.audit_fields(principal, domain, decision, channel, now, verification_id)
    )
    return seen.answer(decision, verification_id)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the card's key found: the person (``found``, None when unknown or when a NIR was
    given that does not match) and the person whose card it is (``subject``, audited)."""

    found: Any
    subject: Any
    right: Right | None
    contract: Contract | None

    @classmethod
    def of(cls, rows: Sequence[Any], card: Card, keys: KeyRing) -> _Seen:
        subject = rows[0] if rows and rows[0].id is not None else None
        found = subject
        if (
            found is not None
            and card.nir is not None
            and found.nir_bi != nir_index(keys, card.nir.value)
        ):
            found = None  # a NIR that does not match gets the same answer as an unknown card
        if found is None:
            return cls(None, subject, None, None)
        closes = [d for d in (found.valid_to, found.closed_on) if d is not None]
        contract_ = Contract(
            found.code,
            found.label,
            [_guarantee(r) for r in rows if r.domain is not None],
            valid_from=found.c_from,
            valid_to=found.c_to,
        )
        return cls(
            found, subject, Right(found.valid_from, min(closes) if closes else None), contract_
        )

    @property
    def is_canary(self) -> bool:
        # a canary's card used at all, even with a wrong NIR, is a tripwire
        return bool(self.subject is not None and self.subject.is_canary)

    def audit_fields(
        self,
        principal: Principal,
        domain: CareDomain,
        decision: Decision,
        channel: str,
        now: datetime,
        verification_id: UUID,
    ) -> dict[str, Any]:
        # The audit names the person whose card was used even when the NIR did not match:
        # someone probing a real card must be traceable to that person when an incident is
        # scoped.
        subject = self.subject
        return {
            "event_id": verification_id,
            "at": now,
            "actor": principal,
            "channel": channel,
            "purpose": "rights_check",
            "result": decision.status.value,
            "subject_kind": "beneficiary" if subject is not None else None,
            "subject_id": subject.id if subject is not None else None,
            "ocam_id": subject.ocam_id if subject is not None else None,
            "categories": ("coverage",) if decision.status is not Status.UNKNOWN else (),
            "detail": {
                "domain": domain.value,
                **({"canary": True} if self.is_canary else {}),
                **({"nir_mismatch": True} if subject is not None and self.found is None else {}),
            },
        }

    def answer(self, decision: Decision, verification_id: UUID) -> RightsRead:
        found = self.found
        return RightsRead(
            decision,
            verification_id,
            found.id if found is not None else None,
            found.ocam_id if found is not None else None,
            self.is_canary,
        )


# -- the hot path on PostgreSQL: one statement counts and reads, one audits and engages --------

# The card is counted for the principal and its structure (DESIGN §4.4) and read in the same
# statement; nothing is read when the principal is contained or past its hard ceiling.
_COUNT_AND_READ = """
WITH frozen AS (
    SELECT EXISTS (
        SELECT 1 FROM api_client WHERE id = $1::uuid AND contained_at IS NOT NULL
    ) AS f
), t1 AS (
    INSERT INTO subject_touch (day, principal_kind, principal_id, subject_bi)
    SELECT $2::date, $3::varchar, $4::uuid, $6::bytea FROM frozen WHERE NOT f
    ON CONFLICT DO NOTHING RETURNING 1
), c1 AS (
    INSERT INTO quota_count (day, principal_kind, principal_id, distinct_subjects)
    SELECT $2::date, $3::varchar, $4::uuid, 1 FROM t1
    ON CONFLICT (day, principal_kind, principal_id)
    DO UPDATE SET distinct_subjects = quota_count.distinct_subjects + 1
    RETURNING distinct_subjects
), t2 AS (
    INSERT INTO subject_touch (day, principal_kind, principal_id, subject_bi)
    SELECT $2::date, 'structure', $5::uuid, $6::bytea FROM frozen WHERE NOT f
    ON CONFLICT DO NOTHING RETURNING 1
), c2 AS (
    INSERT INTO quota_count (day, principal_kind, principal_id, distinct_subjects)
    SELECT $2::date, 'structure', $5::uuid, 1 FROM t2
    ON CONFLICT (day, principal_kind, principal_id)
    DO UPDATE SET distinct_subjects = quota_count.distinct_subjects + 1
    RETURNING distinct_subjects
), st AS (
    SELECT (SELECT f FROM frozen) AS frozen,
           (SELECT distinct_subjects FROM c1) AS new_count,
           (SELECT distinct_subjects FROM c2) AS structure_total
)
SELECT st.frozen, st.new_count, st.structure_total,
       b.id, b.ocam_id, b.nir_bi, b.valid_from, b.valid_to, b.closed_on, b.is_canary,
       c.code, c.label, c.valid_from AS c_from, c.valid_to AS c_to,
       g.domain, g.formula, g.rate_pct, g.flat_amount_cents, g.ceiling_amount_cents, g.period,
       g.valid_from AS g_from, g.valid_to AS g_to
FROM st
LEFT JOIN beneficiary b
       ON b.card_bi = $6::bytea AND NOT st.frozen AND coalesce(st.new_count, 0) <= $7::int
LEFT JOIN contract c ON c.id = b.contract_id
LEFT JOIN guarantee g ON g.contract_id = c.id AND g.domain = $8::varchar
"""

# Bound parameters: the audit row's columns in ``audit.ROW_FIELDS`` order, then the
# engagement's (``_ENGAGEMENT_FIELDS``, all None when the answer opens none).
_ENGAGEMENT_FIELDS = (
    "id",
    "number",
    "domain",
    "care_date",
    "valid_until",
    "fingerprint",
    "relationship_expires",
)
_A = {name: f"${i}" for i, name in enumerate(audit.ROW_FIELDS, 1)}
_E = {name: f"${i}" for i, name in enumerate(_ENGAGEMENT_FIELDS, len(_A) + 1)}
# built once from constant column names; every value is bound
_AUDIT_AND_ENGAGE = f"""
WITH a AS (
    INSERT INTO audit_event ({", ".join(audit.ROW_FIELDS)})
    VALUES ({", ".join(_A.values())})
), e AS (
    INSERT INTO engagement (id, number, structure_id, beneficiary_id, verification_id, domain,
                            care_date, valid_until, fingerprint, created_at)
    SELECT {_E["id"]}::uuid, {_E["number"]}::varchar, {_A["structure_id"]}::uuid,
           {_A["subject_id"]}::uuid, {_A["id"]}::uuid, {_E["domain"]}::varchar,
           {_E["care_date"]}::date, {_E["valid_until"]}::date, {_E["fingerprint"]}::bytea,
           {_A["at"]}::timestamptz
    WHERE {_E["id"]}::uuid IS NOT NULL
), r AS (
    INSERT INTO care_relationship (structure_id, beneficiary_id, opened_at, expires_at)
    SELECT {_A["structure_id"]}::uuid, {_A["subject_id"]}::uuid, {_A["at"]}::timestamptz,
           {_E["relationship_expires"]}::timestamptz
    WHERE {_E["id"]}::uuid IS NOT NULL
    ON CONFLICT (structure_id, beneficiary_id) DO UPDATE SET expires_at = excluded.expires_at
)
SELECT 1
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class Counted:
    """The quota bookkeeping of one check: the principal's distinct count after this card and
    its structure's (None when the card was already counted today), and whether the principal
    was contained when the statement ran."""

    frozen: bool
    new_count: int | None
    structure_total: int | None
    is_canary: bool


@dataclass(frozen=True, slots=True)
class Engagement:
    """The engagement number and the care relationship a ``covered`` answer opens."""

    id: UUID
    number: str
    domain: str
    care_date: date
    valid_until: date
    fingerprint: bytes
    relationship_expires: datetime


class _Fallback(Exception):
    pass


class _Record:
    """Attribute access over an asyncpg record, as SQLAlchemy rows give."""

    __slots__ = ("_r",)

    def __init__(self, record: Any) -> None:
        self._r = record

    def __getattr__(self, name: str) -> Any:
        return self._r[name]


async def check_rights_counted(
    apg: Any,
    keys: KeyRing,
    *,
    principal: Principal,
    card: Card,
    card_bi: bytes,
    domain: CareDomain,
    day: date,
    hard: int,
    decide: Decide,
    admit: Callable[[Counted], bool],
    engage: Callable[[UUID, Decision, bool], Engagement],
    channel: str,
    now: datetime,
    verification_id: UUID,
) -> tuple[RightsRead, str | None] | None:
    """The rights check's usual case on PostgreSQL, in its own transaction (a savepoint under
    tests) on the asyncpg connection ``apg``: count the card and read (one statement), decide,
    then audit and, when covered, engage (one statement), commit.

    ``admit`` sees the bookkeeping first; when it says no (contained, a ceiling or threshold
    crossed, a canary's card) the transaction rolls back, nothing was counted, nothing left,
    and the caller returns None to take the general path, which handles every case."""
    assert principal.id is not None
    assert principal.structure_id is not None
    try:
        async with apg.transaction():
            rows = await apg.fetch(
                _COUNT_AND_READ,
                principal.id if principal.kind.value == "client" else None,
                day,
                principal.kind.value,
                principal.id,
                principal.structure_id,
                card_bi,
                hard,
                domain.value,
            )
            top = rows[0]
            seen = _Seen.of([_Record(r) for r in rows], card, keys)
            counted = Counted(
                top["frozen"], top["new_count"], top["structure_total"], seen.is_canary
            )
            if not admit(counted):
                raise _Fallback
            decision = decide(seen.right, seen.contract)
            values = audit.row(
                **seen.audit_fields(principal, domain, decision, channel, now, verification_id)
            )
            e = (
                engage(seen.found.id, decision, seen.is_canary)
                if decision.status is Status.COVERED and seen.found is not None
                else None
            )
            await apg.execute(
                _AUDIT_AND_ENGAGE,
                *(values[f] for f in audit.ROW_FIELDS),
                *(getattr(e, f) if e is not None else None for f in _ENGAGEMENT_FIELDS),
            )
    except _Fallback:
        return None
    return seen.answer(decision, verification_id), e.number if e is not None else None


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
