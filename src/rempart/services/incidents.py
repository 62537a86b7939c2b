"""What the public is told during an incident: the status page, its Atom feed, and the
publications behind them (``rempart incident open|update|close``, or a back-office page).

One incident is open at a time. Each publication is kept (``incident_update``) and audited;
the status page shows the open incident's plain-language summary, what users should do and
when the next update comes, next to every channel's state (``services.channels``).

    await incidents.open_incident(rt, title="Portail fermé", summary="…", advice="…",
                                  next_update_at=now + timedelta(hours=2), actor=officer)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update

from rempart.db.tables import channel_event, incident, incident_update
from rempart.domain.channels import Channel, ChannelState
from rempart.domain.errors import Conflict, FieldError, Forbidden, InvalidFields, NotFound
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import ActorKind, Principal
from rempart.services import channels
from rempart.services.runtime import Runtime

DEFAULT_ADVICE = (
    "Méfiez-vous des courriels, SMS ou appels qui se réclameraient de cet incident : Rempart ne "
    "vous demandera jamais vos identifiants, un code ou vos coordonnées bancaires. Vérifiez vos "
    "coordonnées bancaires dans le portail avant tout paiement."
)


@dataclass(frozen=True, slots=True)
class Incident:
    id: UUID
    title: str
    summary: str
    advice: str
    status: str
    opened_at: datetime
    updated_at: datetime
    next_update_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class FeedEntry:
    id: str  # a stable tag URI part
    at: datetime
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class PublicStatus:
    channels: list[ChannelState]
    incident: Incident | None
    history: list[FeedEntry]

    @property
    def all_open(self) -> bool:
        return all(s.open for s in self.channels)


def _need(actor: Principal) -> None:
    if not actor.may(Permission.MANAGE_INCIDENTS):
        raise Forbidden("Réservé aux comptes ayant le rôle sécurité.")


def _text(field: str, value: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit:
        reason = "obligatoire" if not value else f"{limit} caractères au plus"
        raise InvalidFields([FieldError(field, reason)])
    return value


def _incident(r: object) -> Incident:
    return Incident(**{f: getattr(r, f) for f in Incident.__dataclass_fields__})


async def current(rt: Runtime) -> Incident | None:
    async with rt.db.read() as conn:
        row = (
            await conn.execute(
                select(incident)
                .where(incident.c.status == "open")
                .order_by(incident.c.opened_at.desc())
                .limit(1)
            )
        ).first()
    return _incident(row) if row else None


async def _publish(
    rt: Runtime,
    *,
    kind: str,
    actor: Principal,
    summary: str,
    advice: str,
    next_update_at: datetime | None,
    title: str | None = None,
) -> Incident:
    _need(actor)
    summary = _text("summary", summary, 2000)
    advice = _text("advice", advice or DEFAULT_ADVICE, 2000)
    now = rt.now()
    if next_update_at is not None and next_update_at <= now and kind != "close":
        raise InvalidFields([FieldError("next_update_at", "doit être dans le futur")])
    async with rt.db.transaction() as conn:
        row = (
            await conn.execute(select(incident).where(incident.c.status == "open").limit(1))
        ).first()
        if kind == "open":
            if row is not None:
                raise Conflict("Un incident est déjà ouvert : publiez une mise à jour.")
            iid = uuid.uuid4()
            await conn.execute(
                incident.insert().values(
                    id=iid,
                    title=_text("title", title or "", 200),
                    summary=summary,
                    advice=advice,
                    status="open",
                    opened_at=now,
                    updated_at=now,
                    next_update_at=next_update_at,
                )
            )
        else:
            if row is None:
                raise NotFound("Aucun incident ouvert.")
            iid = row.id
            await conn.execute(
                update(incident)
                .where(incident.c.id == iid)
                .values(
                    summary=summary,
                    advice=advice,
                    updated_at=now,
                    next_update_at=None if kind == "close" else next_update_at,
                    **({"status": "closed", "closed_at": now} if kind == "close" else {}),
                )
            )
        await conn.execute(
            incident_update.insert().values(
                id=uuid.uuid4(),
                incident_id=iid,
                kind=kind,
                at=now,
                actor=actor.label,
                summary=summary,
                advice=advice,
                next_update_at=None if kind == "close" else next_update_at,
            )
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel="cli" if actor.kind is ActorKind.SYSTEM else "backoffice",
            purpose="incident_publish",
            result=kind,
            subject_kind="incident",
            subject_id=iid,
        )
        done = (await conn.execute(select(incident).where(incident.c.id == iid))).one()
    return _incident(done)


async def open_incident(
    rt: Runtime,
    *,
    title: str,
    summary: str,
    advice: str = "",
    next_update_at: datetime | None = None,
    actor: Principal,
) -> Incident:
    return await _publish(
        rt,
        kind="open",
        title=title,
        summary=summary,
        advice=advice,
        next_update_at=next_update_at,
        actor=actor,
    )


async def update_incident(
    rt: Runtime,
    *,
    summary: str,
    advice: str = "",
    next_update_at: datetime | None = None,
    actor: Principal,
) -> Incident:
    return await _publish(
        rt,
        kind="update",
        summary=summary,
        advice=advice,
        next_update_at=next_update_at,
        actor=actor,
    )


async def close_incident(
    rt: Runtime, *, summary: str, advice: str = "", actor: Principal
) -> Incident:
    return await _publish(
        rt, kind="close", summary=summary, advice=advice, next_update_at=None, actor=actor
    )


async def public_status(rt: Runtime, *, history_max: int = 20) -> PublicStatus:
    """What ``/status`` and ``/status.atom`` show: channels, the open incident, and the latest
    publications and switches, newest first. Nothing here is personal data."""
    states = await channels.states(rt, fresh=True)
    async with rt.db.read() as conn:
        ups = (
            await conn.execute(
                select(incident_update, incident.c.title)
                .join(incident, incident.c.id == incident_update.c.incident_id)
                .order_by(incident_update.c.at.desc())
                .limit(history_max)
            )
        ).all()
        switches = (
            await conn.execute(
                select(channel_event).order_by(channel_event.c.at.desc()).limit(history_max)
            )
        ).all()
    now_open = await current(rt)
    label = {"open": "", "update": "Mise à jour : ", "close": "Fin de l'incident : "}
    entries = [
        FeedEntry(
            f"incident-update-{u.id}",
            u.at,
            f"{label[u.kind]}{u.title}",
            f"{u.summary}\n\n{u.advice}",
        )
        for u in ups
    ] + [
        FeedEntry(
            f"channel-event-{e.id}",
            e.at,
            f"{Channel(e.name).label} : service {'rétabli' if e.open else 'suspendu'}",
            e.reason or ("Service rétabli." if e.open else "Service momentanément fermé."),
        )
        for e in switches
        if e.name in Channel._value2member_map_
    ]
    entries.sort(key=lambda x: x.at, reverse=True)
    return PublicStatus([states[c] for c in Channel], now_open, entries[:history_max])
