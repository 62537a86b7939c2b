"""Use cases of the security officer: alerts, what a contained principal touched, and lifting
a containment — which takes two different people with the security role (DESIGN §4.8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, func, select, update

from rempart.db.tables import (
    account,
    api_client,
    beneficiary,
    containment,
    quota_count,
    security_alert,
    subject_touch,
)
from rempart.domain.errors import Conflict, Forbidden, FourEyesViolation, NotFound
from rempart.domain.roles import Permission
from rempart.security import audit, tokens
from rempart.security.principal import ActorKind, Principal
from rempart.security.pseudonyms import canary_engagement_number
from rempart.services.runtime import Runtime


def _need(actor: Principal) -> None:
    if actor.kind is not ActorKind.ACCOUNT or not actor.may(Permission.MANAGE_INCIDENTS):
        raise Forbidden("Réservé aux comptes du back-office ayant le rôle sécurité (--actor).")


@dataclass(frozen=True, slots=True)
class Alert:
    id: UUID
    kind: str
    principal_kind: str
    principal_id: UUID
    structure_id: UUID | None
    day: date
    opened_at: datetime
    detail: str | None


async def alerts(rt: Runtime, *, actor: Principal) -> list[Alert]:
    _need(actor)
    async with rt.db.read() as conn:
        rows = (
            await conn.execute(select(security_alert).order_by(security_alert.c.opened_at.desc()))
        ).all()
    return [
        Alert(
            r.id,
            r.kind,
            r.principal_kind,
            r.principal_id,
            r.structure_id,
            r.day,
            r.opened_at,
            r.detail,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Touched:
    beneficiary_ids: list[UUID]
    unknown_cards: int


async def touched(rt: Runtime, alert_id: UUID, *, actor: Principal) -> Touched:
    """The people the alert's principal touched that day (card indexes that match nobody are
    counted: they were guesses)."""
    _need(actor)
    async with rt.db.read() as conn:
        alert = (
            await conn.execute(select(security_alert).where(security_alert.c.id == alert_id))
        ).first()
        if alert is None:
            raise NotFound()
        scope = and_(
            subject_touch.c.day == alert.day,
            subject_touch.c.principal_kind == alert.principal_kind,
            subject_touch.c.principal_id == alert.principal_id,
        )
        ids = (
            (
                await conn.execute(
                    select(beneficiary.c.id)
                    .join(subject_touch, subject_touch.c.subject_bi == beneficiary.c.card_bi)
                    .where(scope)
                    .order_by(beneficiary.c.id)
                )
            )
            .scalars()
            .all()
        )
        total = (
            await conn.execute(select(func.count()).select_from(subject_touch).where(scope))
        ).scalar_one()
        await audit.record(
            conn,
            at=rt.now(),
            actor=actor,
            channel="cli",
            purpose="alert_scope",
            result="ok",
            subject_kind="security_alert",
            subject_id=alert_id,
        )
    return Touched(list(ids), int(total) - len(ids))


@dataclass(frozen=True, slots=True)
class LiftOutcome:
    status: str  # requested | lifted | lifted_others_open
    new_client_secret: str | None = None  # shown once, to hand to the practice; stored hashed


async def lift(rt: Runtime, containment_id: UUID, *, actor: Principal) -> LiftOutcome:
    """First call: request the lift. Second call, by another security officer: lift it, rotate
    the client's secret (the leaked one stops working) and restart its count for the day. While
    another containment of the same client is open, the client stays frozen."""
    _need(actor)
    now, new_secret = rt.now(), None
    async with rt.db.transaction() as conn:
        row = (
            await conn.execute(select(containment).where(containment.c.id == containment_id))
        ).first()
        if row is None:
            raise NotFound()
        if row.lifted_at is not None:
            raise Conflict("Ce confinement est déjà levé.")
        if row.lift_requested_by is None:
            await conn.execute(
                update(containment)
                .where(containment.c.id == containment_id)
                .values(lift_requested_by=actor.label, lift_requested_at=now)
            )
            outcome = "requested"
        elif row.lift_requested_by == actor.label:
            outcome = "refused_same_person"
        else:
            await conn.execute(
                update(containment)
                .where(containment.c.id == containment_id)
                .values(lifted_by=actor.label, lifted_at=now)
            )
            outcome, new_secret = await _release(rt, conn, row)
        await _audit(conn, rt, actor, containment_id, outcome)
    if outcome == "refused_same_person":
        raise FourEyesViolation("La levée doit être validée par une autre personne.")
    return LiftOutcome(outcome, new_secret)


async def _release(rt: Runtime, conn: Any, row: Any) -> tuple[str, str | None]:
    still_open = (
        await conn.execute(
            select(func.count())
            .select_from(containment)
            .where(
                containment.c.principal_id == row.principal_id, containment.c.lifted_at.is_(None)
            )
        )
    ).scalar_one()
    if still_open:
        return "lifted_others_open", None
    secret: str | None = None
    if row.principal_kind == "account":  # its sessions stay ended: the person signs in again
        await conn.execute(
            update(account).where(account.c.id == row.principal_id).values(contained_at=None)
        )
    else:
        secret = tokens.new_secret()
        await conn.execute(
            update(api_client)
            .where(api_client.c.id == row.principal_id)
            .values(contained_at=None, secret_hash=tokens.secret_hash(rt.keys, secret))
        )
    await conn.execute(
        update(quota_count)
        .where(
            quota_count.c.principal_kind == row.principal_kind,
            quota_count.c.principal_id == row.principal_id,
            quota_count.c.day == rt.today(),
        )
        .values(distinct_subjects=0)
    )
    return "lifted", secret


async def _audit(
    conn: Any, rt: Runtime, actor: Principal, containment_id: UUID, result: str
) -> None:
    await audit.record(
        conn,
        at=rt.now(),
        actor=actor,
        channel="cli",
        purpose="containment_lift",
        result=result,
        subject_kind="containment",
        subject_id=containment_id,
    )


async def identify(rt: Runtime, engagement_number: str, *, actor: Principal) -> list[str]:
    """Which API client(s) a canary engagement number found in a dump was issued to. Works from
    the keys alone (the canaries and the clients), even if the engagement rows are gone."""
    _need(actor)
    async with rt.db.read() as conn:
        canaries = (
            (await conn.execute(select(beneficiary.c.id).where(beneficiary.c.is_canary)))
            .scalars()
            .all()
        )
        clients = (await conn.execute(select(api_client.c.id, api_client.c.client_id))).all()
        await audit.record(
            conn, at=rt.now(), actor=actor, channel="cli", purpose="canary_identify", result="ok"
        )
    number = engagement_number.strip().upper()
    return sorted(
        c.client_id
        for c in clients
        for b in canaries
        if canary_engagement_number(rt.keys, c.id, b) == number
    )
