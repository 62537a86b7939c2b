"""Use case: a professional asks for a prise en charge (PEC); an agent reviews the doubtful ones.

    request → admitted? → form (PEC domain, one domain, the profession's) → replay? (key)
            → look up (person, relationship, consumption, last equipment) → decide (pure)
            → PEC row (number, validity) + audit row → answer

The decision is synchronous: the optician or the audioprothésiste waits for it with the
patient. A PEC ``to_review`` waits in a queue an operator agent decides (``rempart pec queue``,
``rempart pec decide``); the agent's decision is audited under their name. The invoice that
quotes the PEC number consumes it (``services.adjudication``) and is never paid above it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import select, update

from rempart import access
from rempart.access import record_refusal
from rempart.db.tables import beneficiary, pec
from rempart.db.upsert import insert_for
from rempart.domain.adjudication import (
    RENEWAL_YEARS_MAX,
    LineDecision,
    age_on,
    claim_line,
    consumption,
    request_problems,
    to_line,
    years_before,
)
from rempart.domain.care import PROFESSION_DOMAINS, CareDomain
from rempart.domain.channels import Channel
from rempart.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidFields,
    NotFound,
)
from rempart.domain.money import Money
from rempart.domain.pec import (
    GRANTED,
    HOLDS_PERIOD,
    PEC_DOMAINS,
    TRANSITIONS,
    PecDecision,
    PecFacts,
    PecStatus,
    Quote,
    decide_pec,
    status_after_review,
)
from rempart.domain.reasons import Reason
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.security.pseudonyms import card_index
from rempart.services import admission
from rempart.services.idempotency import KeyReused, canonical
from rempart.services.runtime import Runtime


@dataclass(frozen=True, slots=True)
class PecAnswer:
    id: UUID
    number: str
    status: PecStatus
    care_date: date
    valid_until: date | None
    amc: Money
    reasons: tuple[Reason, ...]
    lines: tuple[LineDecision, ...]
    replayed: bool = False


def new_pec_number() -> str:
    """'P' + 16 base32 characters (80 random bits)."""
    return "P" + base64.b32encode(secrets.token_bytes(10)).decode()


def _decision_json(d: PecDecision) -> str:
    return orjson.dumps(
        {
            "reasons": [r.as_json() for r in d.reasons],
            "lines": [
                {
                    "accepted": ln.accepted,
                    "amo": ln.amo.cents,
                    "amc": ln.amc.cents,
                    "patient": ln.patient.cents,
                    "reasons": [r.as_json() for r in ln.reasons],
                }
                for ln in d.lines
            ],
        }
    ).decode()


def _decision_of(row: Any) -> tuple[tuple[Reason, ...], tuple[LineDecision, ...]]:
    value = orjson.loads(row.decision)
    lines = tuple(
        LineDecision(
            ln["accepted"],
            Money(ln["amo"]),
            Money(ln["amc"]),
            Money(ln["patient"]),
            tuple(Reason.from_json(r) for r in ln["reasons"]),
        )
        for ln in value["lines"]
    )
    return tuple(Reason.from_json(r) for r in value["reasons"]), lines


def _answer(row: Any, *, replayed: bool = False) -> PecAnswer:
    reasons, lines = _decision_of(row)
    return PecAnswer(
        row.id,
        row.number,
        PecStatus(row.status),
        row.care_date,
        row.valid_until,
        Money(row.amc_cents),
        reasons,
        lines,
        replayed,
    )


def _form(actor: Principal, doc: Mapping[str, Any], today: date) -> Quote:
    care_date = date.fromisoformat(doc["care_date"])
    claims = [claim_line(line) for line in doc["lines"]]
    domain = claims[0].domain
    errors: list[FieldError] = []
    allowed = PROFESSION_DOMAINS[actor.profession] if actor.profession else frozenset()
    for i, c in enumerate(claims):
        if c.domain not in PEC_DOMAINS:
            errors.append(FieldError(f"lines.{i}.domain", "PEC en optique, audio ou dentaire"))
        elif c.domain not in allowed:
            errors.append(
                FieldError(f"lines.{i}.domain", "domaine non autorisé pour votre profession")
            )
        elif c.domain is not domain:
            errors.append(FieldError(f"lines.{i}.domain", "une PEC porte sur un seul domaine"))
    if care_date > today:
        errors.append(FieldError("care_date", "la date du devis ne peut pas être dans le futur"))
    birth = date.fromisoformat(doc["beneficiary"]["birth_date"])
    lines = tuple(to_line(c, care_date) for c in claims)
    errors += request_problems(lines)
    if errors:
        raise InvalidFields(errors)
    return Quote(
        domain,
        care_date,
        lines,
        tuple(c.amc_claimed for c in claims),
        vision_change=bool(doc.get("vision_change", False)),
        age_years=age_on(birth, care_date) if birth <= care_date else None,
    )


async def request(
    rt: Runtime, actor: Principal, doc: Mapping[str, Any], *, idempotency_key: str | None
) -> PecAnswer:
    await admission.admit(
        rt,
        actor,
        channel=Channel.API_RIGHTS,
        permission=Permission.REQUEST_PEC,
        purpose="pec_request",
        refusal="Seul un professionnel de santé peut demander une prise en charge.",
    )
    quote = _form(actor, doc, rt.today())
    assert actor.structure_id is not None
    digest = hashlib.sha256(canonical(doc)).digest()
    who = doc["beneficiary"]
    bi = card_index(
        rt.keys,
        who["amc_number"],
        who["adherent_number"],
        date.fromisoformat(who["birth_date"]),
        who.get("rank", 1),
    )
    now = rt.now()
    pec_id = uuid.uuid4()
    async with rt.db.transaction() as conn:
        if idempotency_key is not None:
            prior = (
                await conn.execute(
                    select(pec).where(
                        pec.c.structure_id == actor.structure_id,
                        pec.c.idempotency_key == idempotency_key,
                    )
                )
            ).first()
            if prior is not None:
                if prior.body_hash != digest:
                    raise KeyReused()
                return _answer(prior, replayed=True)
        look = await access.claim_lookups(
            conn,
            cards=[bi],
            structures=[actor.structure_id],
            numbers=[],
            history_since=years_before(quote.care_date, RENEWAL_YEARS_MAX + 1),
            domains=[quote.domain],
        )
        person = look.insured.get(bi)
        facts = PecFacts(None)
        if person is not None and rt.db.dialect == "postgresql":
            # one PEC decision at a time per person: two requests at once must not both find
            # the renewal period free (SQLite's writer lock serialises them already)
            await conn.execute(
                select(beneficiary.c.id).where(beneficiary.c.id == person.id).with_for_update()
            )
        if person is not None:
            expires = look.relationships.get((actor.structure_id, person.id))
            history = look.history.get(person.id, [])
            billed = [d for dom, d, cents in history if dom is quote.domain and cents > 0]
            held = await access.last_equipment(
                conn, person.id, quote.domain, [s.value for s in HOLDS_PERIOD]
            )
            last = max([*billed, *([held] if held else [])], default=None)
            facts = PecFacts(
                person.right,
                person.guarantees,
                responsible=person.responsible,
                relationship=expires is not None and expires >= now,
                consumption=consumption(quote.care_date, history),
                last_equipment=last,
            )
        decision = decide_pec(quote, facts)
        holds = decision.status in GRANTED or decision.status is PecStatus.TO_REVIEW
        valid_until = quote.care_date + timedelta(days=rt.settings.pec_validity_days)
        number = new_pec_number()
        until = valid_until if holds else None
        values = {
            "id": pec_id,
            "number": number,
            "structure_id": actor.structure_id,
            "beneficiary_id": person.id if person is not None else None,
            "domain": quote.domain.value,
            "care_date": quote.care_date,
            "status": decision.status.value,
            "valid_until": until,
            "idempotency_key": idempotency_key,
            "body_hash": digest,
            "body_enc": rt.keys.encrypt("pec", "body", pec_id, canonical(doc).decode()),
            "key_version": rt.keys.current_version,
            "amc_cents": decision.amc.cents,
            "expense_cents": quote.expense.cents,
            "decision": _decision_json(decision),
            "created_at": now,
            "decided_at": now if decision.status is not PecStatus.TO_REVIEW else None,
        }
        stmt = insert_for(rt.db.dialect, pec).on_conflict_do_nothing().returning(pec.c.id)
        if (await conn.execute(stmt, values)).first() is None:
            raise Conflict("Demande en cours sous la même clé d'idempotence : renvoyez-la.")
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel="api",
            purpose="pec_request",
            result=decision.status.value,
            subject_kind="beneficiary" if person is not None else None,
            subject_id=person.id if person is not None else None,
            ocam_id=person.ocam_id if person is not None else None,
            categories=("coverage", "claims") if facts.relationship else (),
            detail={"pec_id": str(pec_id)},
        )
    return PecAnswer(
        pec_id,
        number,
        decision.status,
        quote.care_date,
        until,
        decision.amc,
        decision.reasons,
        decision.lines,
    )


async def _own(rt: Runtime, conn: Any, actor: Principal, pec_id: UUID, purpose: str) -> Any:
    q = select(pec).where(pec.c.id == pec_id, pec.c.structure_id == actor.structure_id)
    if rt.db.dialect == "postgresql":
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    if row is None:
        await record_refusal(
            conn, principal=actor, channel="api", purpose=purpose, reason="not_found", now=rt.now()
        )
    return row


async def get(rt: Runtime, actor: Principal, pec_id: UUID) -> PecAnswer:
    async with rt.db.transaction() as conn:
        row = await _own(rt, conn, actor, pec_id, "pec_read")
        if row is not None:
            await _audit(conn, rt.now(), actor, row, "pec_read", "ok")
    if row is None:
        raise NotFound("Prise en charge introuvable.")
    return _answer(row)


async def _audit(
    conn: Any, now: datetime, actor: Principal, row: Any, purpose: str, result: str
) -> None:
    await audit.record(
        conn,
        at=now,
        actor=actor,
        channel="api" if actor.structure_id else "cli",
        purpose=purpose,
        result=result,
        subject_kind="beneficiary" if row.beneficiary_id else None,
        subject_id=row.beneficiary_id,
        categories=("claims",),
        detail={"pec_id": str(row.id)},
    )


async def cancel(rt: Runtime, actor: Principal, pec_id: UUID) -> PecAnswer:
    """The sale did not happen: the PEC no longer holds the renewal period."""
    if actor.structure_id is None or not actor.may(Permission.REQUEST_PEC):
        await admission.refuse(rt, actor, "pec_cancel", "not_allowed")
        raise Forbidden("Seul le professionnel qui l'a demandée peut annuler une PEC.")
    async with rt.db.transaction() as conn:
        row = await _own(rt, conn, actor, pec_id, "pec_cancel")
        movable = row is not None and PecStatus.CANCELLED in TRANSITIONS[PecStatus(row.status)]
        if row is not None and movable:
            await conn.execute(
                update(pec)
                .where(pec.c.id == pec_id)
                .values(status=PecStatus.CANCELLED.value, cancelled_at=rt.now())
            )
            await _audit(conn, rt.now(), actor, row, "pec_cancel", "ok")
            row = (await conn.execute(select(pec).where(pec.c.id == pec_id))).first()
    if row is None:
        raise NotFound("Prise en charge introuvable.")
    if not movable:
        raise Conflict("Cette prise en charge ne peut plus être annulée (facturée, refusée…).")
    return _answer(row)


@dataclass(frozen=True, slots=True)
class PecLine:
    """One of the structure's PECs as its list shows it: no person is named."""

    id: UUID
    number: str
    domain: CareDomain
    status: PecStatus
    care_date: date
    valid_until: date | None
    amc: Money
    created_at: datetime


async def list_own(rt: Runtime, actor: Principal, *, limit: int = 100) -> list[PecLine]:
    """The structure's PECs, newest first; the page names no person (like the invoice list)."""
    if actor.structure_id is None or not actor.may(Permission.REQUEST_PEC):
        await admission.refuse(rt, actor, "pec_list", "not_allowed")
        raise Forbidden("Seul un professionnel de santé a des prises en charge.")
    async with rt.db.transaction() as conn:
        rows = (
            await conn.execute(
                select(
                    pec.c.id, pec.c.number, pec.c.domain, pec.c.status, pec.c.care_date,
                    pec.c.valid_until, pec.c.amc_cents, pec.c.created_at,
                )
                .where(pec.c.structure_id == actor.structure_id)
                .order_by(pec.c.created_at.desc(), pec.c.id.desc())
                .limit(limit)
            )
        ).all()  # fmt: skip
        await audit.record(
            conn, at=rt.now(), actor=actor, channel="api", purpose="pec_list", result="ok",
            categories=("claims",), detail={"count": len(rows)},
        )  # fmt: skip
    return [
        PecLine(
            r.id, r.number, CareDomain(r.domain), PecStatus(r.status), r.care_date,
            r.valid_until, Money(r.amc_cents), r.created_at,
        )
        for r in rows
    ]  # fmt: skip


# -- the review queue (operator agents) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: UUID
    number: str
    domain: CareDomain
    care_date: date
    expense: Money
    proposal: Money
    reasons: tuple[Reason, ...]
    created_at: datetime


async def queue(rt: Runtime, actor: Principal) -> list[QueueItem]:
    if not actor.may(Permission.REVIEW_PEC):
        await admission.refuse(rt, actor, "pec_review", "not_allowed")
        raise Forbidden("Réservé aux gestionnaires habilités à examiner les PEC.")
    async with rt.db.transaction() as conn:
        rows = (
            await conn.execute(
                select(pec)
                .where(pec.c.status == PecStatus.TO_REVIEW.value)
                .order_by(pec.c.created_at)
            )
        ).all()
    return [
        QueueItem(
            r.id,
            r.number,
            CareDomain(r.domain),
            r.care_date,
            Money(r.expense_cents),
            Money(r.amc_cents),
            _decision_of(r)[0],
            r.created_at,
        )
        for r in rows
    ]


async def review(rt: Runtime, actor: Principal, pec_id: UUID, *, accept: bool) -> PecAnswer:
    """An agent accepts (at the computed proposal) or refuses a PEC to review."""
    if not actor.may(Permission.REVIEW_PEC):
        await admission.refuse(rt, actor, "pec_review", "not_allowed")
        raise Forbidden("Réservé aux gestionnaires habilités à examiner les PEC.")
    now = rt.now()
    async with rt.db.transaction() as conn:
        q = select(pec).where(pec.c.id == pec_id)
        if rt.db.dialect == "postgresql":
            q = q.with_for_update()
        row = (await conn.execute(q)).first()
        if row is None:
            raise NotFound("Prise en charge introuvable.")
        if row.status != PecStatus.TO_REVIEW.value:
            raise Conflict(f"Cette prise en charge n'est pas à examiner ({row.status}).")
        _, lines = _decision_of(row)
        status = status_after_review(lines, accept)
        await conn.execute(
            update(pec)
            .where(pec.c.id == pec_id)
            .values(
                status=status.value,
                decided_at=now,
                decided_by=actor.label,
                valid_until=row.valid_until if status in GRANTED else None,
                amc_cents=row.amc_cents if status in GRANTED else 0,
            )
        )
        await _audit(conn, now, actor, row, "pec_review", status.value)
        row = (await conn.execute(select(pec).where(pec.c.id == pec_id))).first()
    return _answer(row)


async def release(conn: Any, invoice_id: UUID) -> None:
    """An invoice that consumed a PEC is cancelled: the PEC is granted again, as decided."""
    used = (await conn.execute(select(pec).where(pec.c.consumed_by == invoice_id))).first()
    if used is not None:
        _, lines = _decision_of(used)
        await conn.execute(
            update(pec)
            .where(pec.c.id == used.id)
            .values(status=status_after_review(lines, True).value, consumed_by=None)
        )
