"""Use case: the worker decides received invoices (DESIGN §2.6; ``domain.adjudication``).

Work is state in a table: a round picks the oldest ``received`` invoices (``SKIP LOCKED`` on
PostgreSQL, so that several workers share the load and never pick one invoice twice), looks up
what the decisions need for the whole batch, decides each invoice (pure), and writes the line
decisions, the invoice's status and one audit row per invoice, in one transaction. A worker
killed mid-batch leaves the batch ``received``: the next round decides it, once.

Duplicates (R10): each accepted line's care (person, date, domain, code, quantity, price) has a
keyed hash in ``care_key`` (primary key). Keys already there are duplicates; keys inserted by a
concurrent worker in the meantime make the insert conflict, and the batch is rolled back and
decided again, so that the first invoice to commit wins everywhere.

Switching the ``adjudication`` channel off stops decisions; intake goes on and the backlog is
decided when it is switched back on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

import orjson
import structlog
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart import access
from rempart.access import Insured, Received
from rempart.db.tables import audit_event, care_key, invoice, invoice_line, pec
from rempart.db.upsert import insert_for
from rempart.domain.adjudication import (
    RENEWAL_YEARS_MAX,
    Claim,
    EngagementFacts,
    Facts,
    InvoiceDecision,
    InvoiceStatus,
    PecRef,
    adjudicate,
    claim_from_doc,
    consumption,
    years_before,
)
from rempart.domain.channels import Channel
from rempart.domain.ledger import invoice_accepted
from rempart.domain.money import Money
from rempart.domain.pec import GRANTED, PecStatus
from rempart.security.pseudonyms import fingerprint
from rempart.services import channels, ledger
from rempart.services.runtime import PARIS, Runtime

log = structlog.get_logger("rempart.adjudication")

BATCH = 200
ROUNDS_MAX = 50  # batches per worker round, so that the worker's other jobs still run
_RETRIES = 3


class _Raced(Exception):
    """A concurrent worker committed the same care first: decide the batch again."""


@dataclass
class _Decided:
    picked: Received
    claim: Claim
    person: Insured | None
    decision: InvoiceDecision
    keys: list[bytes | None]  # per line, the care key (None without a person)
    consumes: UUID | None = None  # the PEC the accepted invoice uses up


async def decide_batch(rt: Runtime, *, limit: int = BATCH) -> int:
    """Decide up to ``limit`` received invoices; how many were decided (0: nothing to do, or
    the adjudication channel is closed)."""
    if not (await channels.states(rt))[Channel.ADJUDICATION].open:
        return 0
    for _ in range(_RETRIES):
        try:
            return await _decide_batch(rt, limit)
        except _Raced:
            log.info("adjudication.raced")
    return await _decide_batch(rt, limit)


async def decide_all(rt: Runtime) -> int:
    """The worker's job: batches until the queue is empty (or ``ROUNDS_MAX`` batches)."""
    total = 0
    for _ in range(ROUNDS_MAX):
        n = await decide_batch(rt)
        total += n
        if n < BATCH:
            break
    return total


async def _decide_batch(rt: Runtime, limit: int) -> int:
    now = rt.now()
    async with rt.db.transaction() as conn:
        picked = await access.pick_received(conn, rt.keys, dialect=rt.db.dialect, limit=limit)
        if not picked:
            return 0
        # the day received is a Paris day, as the care date and every other day (DESIGN §3)
        claims = [claim_from_doc(p.doc, p.received_at.astimezone(PARIS).date()) for p in picked]
        since = years_before(min(c.care_date for c in claims), RENEWAL_YEARS_MAX + 1)
        look = await access.claim_lookups(
            conn,
            cards=list({p.card_bi for p in picked}),
            structures=list({p.structure_id for p in picked}),
            numbers=list({c.engagement_number for c in claims if c.engagement_number}),
            history_since=since,
            domains=list({line.domain for c in claims for line in c.lines}),
            pec_numbers=list({c.pec_number for c in claims if c.pec_number}),
        )
        keys = [
            _care_keys(rt, c, look.insured.get(p.card_bi))
            for p, c in zip(picked, claims, strict=True)
        ]
        all_keys = {k for ks in keys for k in ks if k is not None}
        taken = set()
        if all_keys:
            rows = await conn.execute(select(care_key.c.key).where(care_key.c.key.in_(all_keys)))
            taken = {r.key for r in rows}
        decided = []
        for p, claim, care in zip(picked, claims, keys, strict=True):
            d = _decide(rt, p, claim, care, look, taken)
            decided.append(d)
            used = look.pecs.get(claim.pec_number or "")
            if used is not None and d.decision.status is InvoiceStatus.ACCEPTED:
                d.consumes = used.id
                look.pecs[claim.pec_number or ""] = replace(used, status=PecStatus.CONSUMED.value)
            for i, line in enumerate(d.decision.lines):
                key = d.keys[i]
                if line.accepted and key is not None:
                    taken.add(key)
                    if d.person is not None:
                        look.history.setdefault(d.person.id, []).append(
                            (claim.lines[i].domain, claim.care_date, line.amc.cents)
                        )
        await _write(rt, conn, decided, now)
    return len(picked)


def _care_keys(rt: Runtime, claim: Claim, person: Insured | None) -> list[bytes | None]:
    if person is None:
        return [None] * len(claim.lines)
    keys: list[bytes | None] = []
    seen: dict[tuple[object, ...], int] = {}
    for line in claim.lines:
        care = (line.domain, line.code_system, line.code, line.quantity, line.unit_price.cents)
        # the same care twice in one invoice (a box listed twice) is two cares: the n-th
        # occurrence has its own key, so the invoice sent again matches both, and no key of an
        # invoice collides with another of the same invoice
        n = seen[care] = seen.get(care, -1) + 1
        keys.append(fingerprint(rt.keys, "care", person.id, claim.care_date, *care, n))
    return keys


def _decide(
    rt: Runtime,
    p: Received,
    claim: Claim,
    keys: list[bytes | None],
    look: access.Lookups,
    taken: set[bytes],
) -> _Decided:
    person = look.insured.get(p.card_bi)
    if person is None:
        return _Decided(p, claim, None, adjudicate(claim, Facts(None)), keys)
    expires = look.relationships.get((p.structure_id, person.id))
    e = look.engagements.get(claim.engagement_number or "")
    q = look.pecs.get(claim.pec_number or "")
    facts = Facts(
        person.right,
        person.guarantees,
        responsible=person.responsible,
        relationship=expires is not None and expires >= p.received_at,
        engagement=EngagementFacts(
            e.structure_id == p.structure_id,
            e.beneficiary_id == person.id,
            e.domain,
            e.care_date,
            e.valid_until,
            e.revoked,
        )
        if e is not None
        else None,
        pec=PecRef(
            q.structure_id == p.structure_id,
            q.beneficiary_id == person.id,
            q.domain,
            PecStatus(q.status) in GRANTED,
            q.valid_until + timedelta(days=rt.settings.pec_grace_days),
            Money(q.amc_cents),
        )
        if q is not None and q.valid_until is not None
        else None,
        deadline_days=person.deadline_days,
        duplicates=frozenset(i for i, k in enumerate(keys) if k in taken),
        consumption=consumption(claim.care_date, look.history.get(person.id, [])),
    )
    return _Decided(p, claim, person, adjudicate(claim, facts), keys)


async def _write(
    rt: Runtime, conn: AsyncConnection, decided: list[_Decided], now: datetime
) -> None:
    new_keys = sorted(  # one order for every worker: concurrent inserts cannot deadlock
        (key, d.picked.id, i)
        for d in decided
        for i, (line, key) in enumerate(zip(d.decision.lines, d.keys, strict=True))
        if line.accepted and key is not None
    )
    if new_keys:
        stmt = (
            insert_for(rt.db.dialect, care_key).on_conflict_do_nothing().returning(care_key.c.key)
        )
        got = await conn.execute(
            stmt, [{"key": k, "invoice_id": iid, "line_no": i} for k, iid, i in new_keys]
        )
        if len(got.all()) != len(new_keys):
            raise _Raced
    for d in decided:
        if d.consumes is not None:
            done = await conn.execute(
                update(pec)
                .where(pec.c.id == d.consumes, pec.c.status.in_([s.value for s in GRANTED]))
                .values(status=PecStatus.CONSUMED.value, consumed_by=d.picked.id)
            )
            if done.rowcount != 1:  # another worker's invoice used it first
                raise _Raced
    await conn.execute(
        invoice_line.insert(),
        [
            {
                "invoice_id": d.picked.id,
                "line_no": i,
                "domain": d.claim.lines[i].domain.value,
                "status": "accepted" if line.accepted else "rejected",
                "amo_cents": line.amo.cents,
                "amc_cents": line.amc.cents,
                "patient_cents": line.patient.cents,
                "reasons": orjson.dumps([r.as_json() for r in line.reasons]).decode(),
            }
            for d in decided
            for i, line in enumerate(d.decision.lines)
        ],
    )
    await conn.execute(
        update(invoice)
        .where(invoice.c.id == bindparam("b_id"), invoice.c.status == "received")
        .values(
            status=bindparam("b_status"),
            decided_at=bindparam("b_at"),
            beneficiary_id=bindparam("b_person"),
            amo_cents=bindparam("b_amo"),
            amc_cents=bindparam("b_amc"),
            patient_cents=bindparam("b_patient"),
        ),
        [
            {
                "b_id": d.picked.id,
                "b_status": d.decision.status.value,
                "b_at": now,
                "b_person": d.person.id if d.person else None,
                "b_amo": d.decision.amo.cents,
                "b_amc": d.decision.amc.cents,
                "b_patient": d.decision.patient.cents,
            }
            for d in decided
        ],
    )
    await ledger.post(
        conn,
        rt.db.dialect,
        [
            (
                d.picked.id,
                invoice_accepted(d.person.ocam_id, d.picked.structure_id, d.decision.amc.cents),
            )
            for d in decided
            if d.person is not None and d.decision.amc.cents > 0
        ],
        now,
    )
    await conn.execute(
        audit_event.insert(),
        [
            access.adjudication_audit_row(d.picked, d.person, d.decision.status.value, now)
            for d in decided
        ],
    )
