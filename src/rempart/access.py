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
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import (
    account,
    audit_event,
    bank_account,
    beneficiary,
    care_relationship,
    contract,
    engagement,
    guarantee,
    invoice,
    invoice_line,
    ocam,
    pec,
    structure,
)
from rempart.domain.adjudication import RENEWAL_YEARS
from rempart.domain.care import CareDomain
from rempart.domain.coverage import Contract, Formula, Guarantee, Period
from rempart.domain.identifiers import Nir
from rempart.domain.money import Money
from rempart.domain.rights import Decision, Right, Status
from rempart.security import audit
from rempart.security.keys import KeyRing
from rempart.security.principal import Principal, system
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


# -- the hot path on PostgreSQL: one statement touches and reads, one audits, engages, counts -

# The card is recorded as touched by the principal and its structure (DESIGN §4.4) and read in
# the same statement; nothing is read when the principal is contained or when the count it
# would reach is past its hard ceiling. The counts themselves (one row per principal per day,
# that every new card of the principal increments) are taken in the last statement, just
# before the commit: the row lock they hold serialises one principal's checks, for as short a
# time as possible. The count read here, before locking, is a lower bound; the caller decides
# on the exact count the last statement returns, and rolls everything back when it differs.
_TOUCH_AND_READ = """
WITH frozen AS (
    SELECT EXISTS (
        SELECT 1 FROM api_client WHERE id = $1::uuid AND contained_at IS NOT NULL
    ) AS f
), t1 AS (
    INSERT INTO subject_touch (day, principal_kind, principal_id, subject_bi)
    SELECT $2::date, $3::varchar, $4::uuid, $6::bytea FROM frozen WHERE NOT f
    ON CONFLICT DO NOTHING RETURNING 1
), t2 AS (
    INSERT INTO subject_touch (day, principal_kind, principal_id, subject_bi)
    SELECT $2::date, 'structure', $5::uuid, $6::bytea FROM frozen WHERE NOT f
    ON CONFLICT DO NOTHING RETURNING 1
), st AS (
    SELECT (SELECT f FROM frozen) AS frozen,
           EXISTS (SELECT 1 FROM t1) AS new_subject,
           EXISTS (SELECT 1 FROM t2) AS new_for_structure,
           (SELECT distinct_subjects FROM quota_count
            WHERE day = $2::date AND principal_kind = $3::varchar AND principal_id = $4::uuid
           ) AS counted
)
SELECT st.frozen, st.new_subject, st.new_for_structure,
       b.id, b.ocam_id, b.nir_bi, b.valid_from, b.valid_to, b.closed_on, b.is_canary,
       c.code, c.label, c.valid_from AS c_from, c.valid_to AS c_to,
       g.domain, g.formula, g.rate_pct, g.flat_amount_cents, g.ceiling_amount_cents, g.period,
       g.valid_from AS g_from, g.valid_to AS g_to
FROM st
LEFT JOIN beneficiary b
       ON b.card_bi = $6::bytea AND NOT st.frozen
          AND coalesce(st.counted, 0) + st.new_subject::int <= $7::int
LEFT JOIN contract c ON c.id = b.contract_id
LEFT JOIN guarantee g ON g.contract_id = c.id AND g.domain = $8::varchar
"""

# Bound parameters of the last statement: the audit row's columns in ``audit.ROW_FIELDS``
# order, the engagement's (``_ENGAGEMENT_FIELDS``, all None when the answer opens none), then
# the counting's (``_COUNT_FIELDS``).
_ENGAGEMENT_FIELDS = (
    "id",
    "number",
    "domain",
    "care_date",
    "valid_until",
    "fingerprint",
    "relationship_expires",
)
_COUNT_FIELDS = ("day", "principal_kind", "principal_id", "new_subject", "new_for_structure")
_A = {name: f"${i}" for i, name in enumerate(audit.ROW_FIELDS, 1)}
_E = {name: f"${i}" for i, name in enumerate(_ENGAGEMENT_FIELDS, len(_A) + 1)}
_C = {name: f"${i}" for i, name in enumerate(_COUNT_FIELDS, len(_A) + len(_E) + 1)}
# built once from constant column names; every value is bound
_AUDIT_ENGAGE_COUNT = f"""
WITH c1 AS (
    INSERT INTO quota_count (day, principal_kind, principal_id, distinct_subjects)
    SELECT {_C["day"]}::date, {_C["principal_kind"]}::varchar, {_C["principal_id"]}::uuid, 1
    WHERE {_C["new_subject"]}::bool
    ON CONFLICT (day, principal_kind, principal_id)
    DO UPDATE SET distinct_subjects = quota_count.distinct_subjects + 1
    RETURNING distinct_subjects
), c2 AS (
    INSERT INTO quota_count (day, principal_kind, principal_id, distinct_subjects)
    SELECT {_C["day"]}::date, 'structure', {_A["structure_id"]}::uuid, 1
    WHERE {_C["new_for_structure"]}::bool
    ON CONFLICT (day, principal_kind, principal_id)
    DO UPDATE SET distinct_subjects = quota_count.distinct_subjects + 1
    RETURNING distinct_subjects
), a AS (

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
SELECT (SELECT distinct_subjects FROM c1) AS new_count,
       (SELECT distinct_subjects FROM c2) AS structure_total
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
    tests) on the asyncpg connection ``apg``: record the card as touched and read (one
    statement), decide, then audit, engage when covered and count (one statement), commit.

    ``admit`` decides on the exact counts the last statement returns; when it says no
    (contained, a ceiling or threshold crossed, a canary's card) the transaction rolls back,
    nothing was counted, nothing left, and the caller returns None to take the general path,
    which handles every case."""
    assert principal.id is not None
    assert principal.structure_id is not None
    try:
        async with apg.transaction():
            rows = await apg.fetch(
                _TOUCH_AND_READ,
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
            if top["frozen"] or seen.is_canary:
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
            counting = {
                "day": day,
                "principal_kind": principal.kind.value,
                "principal_id": principal.id,
                "new_subject": top["new_subject"],
                "new_for_structure": top["new_for_structure"],
            }
            counts = await apg.fetchrow(
                _AUDIT_ENGAGE_COUNT,
                *(values[f] for f in audit.ROW_FIELDS),
                *(getattr(e, f) if e is not None else None for f in _ENGAGEMENT_FIELDS),
                *(counting[f] for f in _COUNT_FIELDS),
            )
            exact = Counted(False, counts["new_count"], counts["structure_total"], False)
            if not admit(exact):  # past a ceiling or at a threshold: the general path decides
                raise _Fallback
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


# -- invoices (DESIGN §2.5, §2.6) ----------------------------------------------------------------
#
# An invoice's body (the beneficiary's identity and the care) is personal data: it is decrypted
# here only, by the worker that decides it, and each decision is audited with the person it is
# about. A professional reads back its own invoices' status and amounts, audited too.


@dataclass(frozen=True, slots=True)
class Received:
    """A received invoice picked for adjudication, its body decrypted."""

    id: UUID
    structure_id: UUID
    card_bi: bytes
    received_at: datetime
    doc: dict[str, Any]


async def pick_received(
    conn: AsyncConnection, keys: KeyRing, *, dialect: str, limit: int
) -> list[Received]:
    """The oldest received invoices, locked for this transaction. On PostgreSQL rows another
    worker holds are skipped, so several workers never pick one invoice twice; on SQLite the
    writer lock (``BEGIN IMMEDIATE``) serialises workers."""
    q = (
        select(
            invoice.c.id,
            invoice.c.structure_id,
            invoice.c.card_bi,
            invoice.c.received_at,
            invoice.c.body_enc,
        )
        .where(
            invoice.c.decided_at.is_(None),  # the work-queue index's predicate (tables.QUEUED)
            invoice.c.cancelled_at.is_(None),
            invoice.c.status == "received",
        )
        .order_by(invoice.c.received_at)
        .limit(limit)
    )
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = (await conn.execute(q)).all()
    return [
        Received(
            r.id,
            r.structure_id,
            r.card_bi,
            r.received_at,
            orjson.loads(keys.decrypt("invoice", "body", r.id, r.body_enc)),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Insured:
    """What adjudication needs to know about the person an invoice is for."""

    id: UUID
    ocam_id: UUID
    right: Right
    guarantees: tuple[Guarantee, ...]
    responsible: bool
    deadline_days: int


@dataclass(frozen=True, slots=True)
class EngagementRow:
    structure_id: UUID
    beneficiary_id: UUID
    domain: CareDomain
    care_date: date
    valid_until: date
    revoked: bool


@dataclass(frozen=True, slots=True)
class PecRow:
    id: UUID
    structure_id: UUID
    beneficiary_id: UUID | None
    domain: CareDomain
    status: str
    valid_until: date | None
    amc_cents: int


@dataclass
class Lookups:
    insured: dict[bytes, Insured]  # by card blind index
    relationships: dict[tuple[UUID, UUID], datetime]  # (structure, beneficiary) → expires_at
    engagements: dict[str, EngagementRow]  # by number
    history: dict[UUID, list[tuple[CareDomain, date, int]]]  # accepted AMC per person
    pecs: dict[str, PecRow]  # by number


async def claim_lookups(
    conn: AsyncConnection,
    *,
    cards: Sequence[bytes],
    structures: Sequence[UUID],
    numbers: Sequence[str],
    history_since: date,
    domains: Sequence[CareDomain],
    pec_numbers: Sequence[str] = (),
) -> Lookups:
    """What deciding (or simulating) claims of these cards by these structures quoting these
    engagement numbers needs, in at most five indexed queries for a whole batch. The caller
    audits each use of it (``adjudication_audit_row``, ``calculation``).

    The AMC already paid (``history``) is read only for the ``domains`` billed whose guarantee
    counts per year or renewal period, or whose equipment renews (optique, audio): a pharmacy's
    batch of per-line guarantees reads none."""
    people = (
        await conn.execute(
            select(
                beneficiary.c.id,
                beneficiary.c.ocam_id,
                beneficiary.c.card_bi,
                beneficiary.c.valid_from,
                beneficiary.c.valid_to,
                beneficiary.c.closed_on,
                beneficiary.c.contract_id,
                contract.c.responsible,
                contract.c.valid_to.label("c_to"),
                ocam.c.invoice_deadline_days,
            )
            .join(contract, contract.c.id == beneficiary.c.contract_id)
            .join(ocam, ocam.c.id == beneficiary.c.ocam_id)
            .where(beneficiary.c.card_bi.in_(cards))
        )
    ).all()
    contract_ids = list({p.contract_id for p in people})
    grid: dict[UUID, list[Guarantee]] = {}
    if contract_ids:
        for g in await conn.execute(
            select(
                guarantee,
                guarantee.c.valid_from.label("g_from"),
                guarantee.c.valid_to.label("g_to"),
            ).where(guarantee.c.contract_id.in_(contract_ids))
        ):
            grid.setdefault(g.contract_id, []).append(_guarantee(g))
    insured = {}
    for p in people:
        closes = [d for d in (p.valid_to, p.closed_on, p.c_to) if d is not None]
        insured[p.card_bi] = Insured(
            p.id,
            p.ocam_id,
            Right(p.valid_from, min(closes) if closes else None),
            tuple(grid.get(p.contract_id, ())),
            p.responsible,
            p.invoice_deadline_days,
        )
    ids = [i.id for i in insured.values()]
    relationships: dict[tuple[UUID, UUID], datetime] = {}
    history: dict[UUID, list[tuple[CareDomain, date, int]]] = {}
    if ids:
        for r in await conn.execute(
            select(care_relationship).where(
                care_relationship.c.beneficiary_id.in_(ids),
                care_relationship.c.structure_id.in_(structures),
            )
        ):
            relationships[(r.structure_id, r.beneficiary_id)] = r.expires_at
        periodic = set(RENEWAL_YEARS) | {
            g.domain for gs in grid.values() for g in gs if g.period is not Period.LINE
        }
        wanted = sorted({d.value for d in domains if d in periodic})
        if wanted:
            paid = func.sum(invoice_line.c.amc_cents).label("amc_cents")
            for h in await conn.execute(
                select(invoice.c.beneficiary_id, invoice_line.c.domain, invoice.c.care_date, paid)
                .join(invoice_line, invoice_line.c.invoice_id == invoice.c.id)
                .where(
                    invoice.c.beneficiary_id.in_(ids),
                    invoice.c.status.in_(("accepted", "paid")),
                    invoice.c.care_date >= history_since,
                    invoice_line.c.status == "accepted",
                    invoice_line.c.domain.in_(wanted),
                )
                .group_by(invoice.c.beneficiary_id, invoice_line.c.domain, invoice.c.care_date)
            ):
                history.setdefault(h.beneficiary_id, []).append(
                    (CareDomain(h.domain), h.care_date, int(h.amc_cents))
                )
    engagements = {}
    if numbers:
        for e in await conn.execute(select(engagement).where(engagement.c.number.in_(numbers))):
            engagements[e.number] = EngagementRow(
                e.structure_id,
                e.beneficiary_id,
                CareDomain(e.domain),
                e.care_date,
                e.valid_until,
                e.revoked_at is not None,
            )
    pecs = {}
    if pec_numbers:
        for r in await conn.execute(select(pec).where(pec.c.number.in_(pec_numbers))):
            pecs[r.number] = PecRow(
                r.id,
                r.structure_id,
                r.beneficiary_id,
                CareDomain(r.domain),
                r.status,
                r.valid_until,
                r.amc_cents,
            )
    return Lookups(insured, relationships, engagements, history, pecs)


async def last_equipment(
    conn: AsyncConnection, beneficiary_id: UUID, domain: CareDomain, holding: Sequence[str]
) -> date | None:
    """The quote date of the person's latest PEC of this domain that holds its renewal period
    (a PEC decision reads it, under the decision's audit row)."""
    return (  # type: ignore[no-any-return]
        await conn.execute(
            select(func.max(pec.c.care_date)).where(
                pec.c.beneficiary_id == beneficiary_id,
                pec.c.domain == domain.value,
                pec.c.status.in_(holding),
            )
        )
    ).scalar()


def adjudication_audit_row(
    picked: Received, person: Insured | None, status: str, now: datetime
) -> dict[str, Any]:
    """The audit row of one decision: the worker read this person's invoice and coverage."""
    return audit.row(
        at=now,
        actor=WORKER,
        channel="worker",
        purpose="adjudication",
        result=status,
        subject_kind="beneficiary" if person is not None else None,
        subject_id=person.id if person is not None else None,
        ocam_id=person.ocam_id if person is not None else None,
        categories=("claims", "coverage") if person is not None else ("claims",),
        detail={"invoice_id": str(picked.id)},
    )


WORKER = system("worker")


@dataclass(frozen=True, slots=True)
class InvoiceRead:
    row: Any
    lines: list[Any]


async def read_invoice(
    conn: AsyncConnection, *, principal: Principal, invoice_id: UUID, now: datetime, channel: str
) -> InvoiceRead | None:
    """One of the caller's structure's invoices with its line decisions, audited; None (and a
    refusal audited) when it does not exist or is another structure's — the same answer."""
    row = (
        await conn.execute(
            select(
                invoice.c.id,
                invoice.c.invoice_number,
                invoice.c.status,
                invoice.c.received_at,
                invoice.c.decided_at,
                invoice.c.beneficiary_id,
                invoice.c.amc_cents,
            ).where(invoice.c.id == invoice_id, invoice.c.structure_id == principal.structure_id)
        )
    ).first()
    if row is None:
        await record_refusal(
            conn,
            principal=principal,
            channel=channel,
            purpose="invoice_read",
            reason="not_found",
            now=now,
        )
        return None
    lines = (
        await conn.execute(
            select(invoice_line)
            .where(invoice_line.c.invoice_id == invoice_id)
            .order_by(invoice_line.c.line_no)
        )
    ).all()
    await audit.record(
        conn,
        at=now,
        actor=principal,
        channel=channel,
        purpose="invoice_read",
        result="ok",
        subject_kind="beneficiary" if row.beneficiary_id else None,
        subject_id=row.beneficiary_id,
        categories=("claims",),
        detail={"invoice_id": str(invoice_id)},
    )
    return InvoiceRead(row, list(lines))


async def list_invoices(
    conn: AsyncConnection,
    *,
    principal: Principal,
    status: str | None,
    received_from: date | None,
    received_to: date | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
    now: datetime,
    channel: str,
) -> list[Any]:
    """The caller's structure's invoices, newest first, from after the cursor ``after``
    (received_at, id); one audit row per page (the page names no person)."""
    q = select(
        invoice.c.id,
        invoice.c.invoice_number,
        invoice.c.status,
        invoice.c.care_date,
        invoice.c.received_at,
        invoice.c.decided_at,
        invoice.c.amc_cents,
    ).where(invoice.c.structure_id == principal.structure_id)
    if status is not None:
        q = q.where(invoice.c.status == status)
    if received_from is not None:
        q = q.where(invoice.c.received_at >= _day_start(received_from))
    if received_to is not None:
        q = q.where(invoice.c.received_at < _day_start(received_to + timedelta(days=1)))
    if after is not None:
        at, last_id = after
        q = q.where(
            or_(
                invoice.c.received_at < at,
                and_(invoice.c.received_at == at, invoice.c.id < last_id),
            )
        )
    rows = (
        await conn.execute(
            q.order_by(invoice.c.received_at.desc(), invoice.c.id.desc()).limit(limit)
        )
    ).all()
    await audit.record(
        conn,
        at=now,
        actor=principal,
        channel=channel,
        purpose="invoice_list",
        result="ok",
        categories=("claims",),
        detail={"count": len(rows)},
    )
    return list(rows)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- bank details of the professionals a payment run pays (DESIGN §2.7) ------------------------


@dataclass(frozen=True, slots=True)
class Payee:
    structure_id: UUID
    name: str  # the structure's registered name: the creditor's name on the transfer
    iban: str
    bic: str


# asyncpg binds at most 32,767 parameters per statement (a run pays 50,000 structures or more)
_IDS_PER_QUERY = 10_000


async def _audit_each(
    conn: AsyncConnection,
    rows: Sequence[Any],
    *,
    principal: Principal,
    now: datetime,
    channel: str,
    purpose: str,
    subject_kind: str,
    categories: tuple[str, ...],
    subject: Callable[[Any], UUID],
    ocam: Callable[[Any], UUID | None] = lambda r: None,
    detail: Callable[[Any], dict[str, Any] | None] = lambda r: None,
) -> None:
    """One audit row per record read (in the caller's transaction), naming its subject."""
    if not rows:
        return
    await conn.execute(
        audit_event.insert(),
        [
            audit.row(
                at=now, actor=principal, channel=channel, purpose=purpose, result="ok",
                subject_kind=subject_kind, subject_id=subject(r), ocam_id=ocam(r),
                categories=categories, detail=detail(r),
            )
            for r in rows
        ],
    )  # fmt: skip


async def read_payees(
    conn: AsyncConnection,
    keys: KeyRing,
    *,
    principal: Principal,
    accounts: Sequence[UUID],
    now: datetime,
    purpose: str,
) -> dict[UUID, Payee]:
    """Decrypt the IBANs of these bank accounts to write them into a transfer file: one audit
    row per account, naming the structure whose bank details were read."""
    rows: list[Any] = []
    for at in range(0, len(accounts), _IDS_PER_QUERY):
        rows += (
            await conn.execute(
                select(
                    bank_account.c.id,
                    bank_account.c.structure_id,
                    bank_account.c.iban_enc,
                    bank_account.c.bic,
                    structure.c.name,
                )
                .join(structure, structure.c.id == bank_account.c.structure_id)
                .where(bank_account.c.id.in_(accounts[at : at + _IDS_PER_QUERY]))
            )
        ).all()
    await _audit_each(
        conn, rows, principal=principal, now=now, channel="cli", purpose=purpose,
        subject_kind="structure", categories=("bank",), subject=lambda r: r.structure_id,
        detail=lambda r: {"bank_account_id": str(r.id)},
    )  # fmt: skip
    return {
        r.id: Payee(
            r.structure_id, r.name, keys.decrypt("bank_account", "iban", r.id, r.iban_enc), r.bic
        )
        for r in rows
    }


# -- notifications: the address a mail goes to ---------------------------------------------


async def mail_recipients(
    conn: AsyncConnection,
    keys: KeyRing,
    *,
    principal: Principal,
    accounts: Sequence[UUID],
    now: datetime,
) -> dict[UUID, str]:
    """Decrypt the e-mail addresses of these accounts to deliver their notifications: one
    audit row per account (subject ``account``, category ``contact``)."""
    rows: list[Any] = []
    ids = list(accounts)
    for at in range(0, len(ids), _IDS_PER_QUERY):
        rows += (
            await conn.execute(
                select(account.c.id, account.c.email_enc).where(
                    account.c.id.in_(ids[at : at + _IDS_PER_QUERY])
                )
            )
        ).all()
    await _audit_each(
        conn, rows, principal=principal, now=now, channel="worker", purpose="notification",
        subject_kind="account", categories=("contact",), subject=lambda r: r.id,
    )  # fmt: skip
    return {r.id: keys.decrypt("account", "email", r.id, r.email_enc) for r in rows}


# -- incident notification: the names the art. 34 letters are addressed to -----------------


@dataclass(frozen=True, slots=True)
class Addressee:
    beneficiary_id: UUID
    ocam_id: UUID
    first_name: str
    last_name: str


async def incident_addressees(
    conn: AsyncConnection,
    keys: KeyRing,
    *,
    principal: Principal,
    beneficiaries: Sequence[UUID],
    now: datetime,
) -> dict[UUID, Addressee]:
    """Decrypt the names of the people a breach scope found, to address their letters: one
    audit row per person (purpose ``incident_notification``, category ``identity``). The
    postal address is the insurer's, merged by its own mail house from this list."""
    rows: list[Any] = []
    ids = list(beneficiaries)
    for at in range(0, len(ids), _IDS_PER_QUERY):
        rows += (
            await conn.execute(
                select(
                    beneficiary.c.id,
                    beneficiary.c.ocam_id,
                    beneficiary.c.first_name_enc,
                    beneficiary.c.last_name_enc,
                ).where(beneficiary.c.id.in_(ids[at : at + _IDS_PER_QUERY]))
            )
        ).all()
    await _audit_each(
        conn, rows, principal=principal, now=now, channel="cli",
        purpose="incident_notification", subject_kind="beneficiary", categories=("identity",),
        subject=lambda r: r.id, ocam=lambda r: r.ocam_id,
    )  # fmt: skip
    return {
        r.id: Addressee(
            r.id,
            r.ocam_id,
            keys.decrypt("beneficiary", "first_name", r.id, r.first_name_enc),
            keys.decrypt("beneficiary", "last_name", r.id, r.last_name_enc),
        )
        for r in rows
    }


# -- key rotation: re-encrypting stored personal data under the current data-key version ------

# (table, [(column, name in the ciphertext's associated data)]) of every encrypted column.
ENCRYPTED: tuple[tuple[Any, tuple[tuple[str, str], ...]], ...] = (
    (
        beneficiary,
        (
            ("adherent_enc", "adherent_number"),
            ("nir_enc", "nir"),
            ("birth_date_enc", "birth_date"),
            ("last_name_enc", "last_name"),
            ("first_name_enc", "first_name"),
        ),
    ),
    (bank_account, (("iban_enc", "iban"), ("holder_enc", "holder"))),
    (account, (("display_name_enc", "display_name"), ("email_enc", "email"))),
    (invoice, (("body_enc", "body"),)),
    (pec, (("body_enc", "body"),)),
)


async def reencrypt_batch(
    conn: AsyncConnection,
    keys: KeyRing,
    *,
    table: Any,
    columns: Sequence[tuple[str, str]],
    dialect: str,
    limit: int,
    now: datetime,
    after: UUID | None = None,
) -> tuple[int, UUID | None]:
    """Re-encrypt the rows still under an older data-key version among the next ``limit`` rows
    of ``table`` after ``after`` (primary-key order: each batch reads its own rows, not the
    table), in the caller's transaction: decrypted and encrypted again in memory, never written
    in clear; one audit row for the batch. Returns (rows re-encrypted, last id scanned — None at
    the end of the table). Rows another transaction holds are skipped (PostgreSQL)."""
    target = keys.current_version
    page = select(table.c.id).order_by(table.c.id).limit(limit)
    if after is not None:
        page = page.where(table.c.id > after)
    ids = list((await conn.execute(page)).scalars())
    if not ids:
        return 0, None
    q = select(table.c.id, *(table.c[c] for c, _ in columns)).where(
        table.c.id.in_(ids), table.c.key_version < target
    )
    if dialect == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = (await conn.execute(q)).all()
    if not rows:
        return 0, ids[-1]
    values = []
    for r in rows:
        fresh: dict[str, Any] = {"b_id": r.id}
        for column, name in columns:
            plain = keys.decrypt(table.name, name, r.id, getattr(r, column))
            fresh[f"b_{column}"] = keys.encrypt(table.name, name, r.id, plain, version=target)
        values.append(fresh)
    await conn.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(key_version=target, **{c: bindparam(f"b_{c}") for c, _ in columns}),
        values,
    )
    await audit.record(
        conn,
        at=now,
        actor=system("key-rotation"),
        channel="cli",
        purpose="key_rotation",
        result="ok",
        detail={"table": table.name, "rows": len(rows), "version": target},
    )
    return len(rows), ids[-1]
