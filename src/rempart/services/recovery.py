"""Account recovery through an operator and a second approver (DESIGN §4.1, issue 7).

A person who lost every passkey calls the operator. One operator account with
``Permission.MANAGE_ACCOUNTS`` records the request (``rempart account recover USERNAME
--actor A``) after checking who is calling; a *different* one approves it (``rempart account
approve-recovery REQUEST_ID --actor B``). The approval, in one transaction: revokes the
account's passkeys (a lost key may be found) and every session, spends any invitation still
open, issues a new one-time enrolment invitation (printed once, to hand over through another
channel than the account's e-mail), notifies the account's existing channel and audits. The
same person twice, or an operator recovering their own account, is refused and audited.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select, update

from rempart.db.tables import account, invitation, passkey, recovery_request
from rempart.domain.errors import Conflict, Forbidden, FourEyesViolation, NotFound
from rempart.domain.roles import Permission
from rempart.security import audit, sessions
from rempart.security.principal import ActorKind, Principal
from rempart.services import notifications
from rempart.services.registry import INVITATION_VALIDITY
from rempart.services.runtime import Runtime

CHANNEL = "backoffice"
REASON_CHARS_MAX = 300


def _need(actor: Principal) -> None:
    if actor.kind is not ActorKind.ACCOUNT or not actor.may(Permission.MANAGE_ACCOUNTS):
        raise Forbidden("Réservé aux comptes du back-office qui gèrent les comptes (--actor).")


@dataclass(frozen=True, slots=True)
class Requested:
    id: UUID
    account_id: UUID


@dataclass(frozen=True, slots=True)
class Approved:
    account_id: UUID
    username: str
    invitation_token: str  # shown once; stored as a keyed hash
    passkeys_revoked: int
    sessions_revoked: int


async def _refuse(rt: Runtime, actor: Principal, purpose: str, reason: str, subject: UUID) -> None:
    async with rt.db.transaction() as conn:
        await audit.record(
            conn,
            at=rt.now(),
            actor=actor,
            channel=CHANNEL,
            purpose=purpose,
            result="refused",
            subject_kind="account",
            subject_id=subject,
            detail={"reason": reason},
        )


async def request(rt: Runtime, username: str, *, actor: Principal, reason: str) -> Requested:
    _need(actor)
    async with rt.db.read() as conn:
        target = (
            await conn.execute(select(account.c.id).where(account.c.username == username))
        ).scalar()
    if target is None:
        raise NotFound("Compte inconnu.")
    if target == actor.id:
        await _refuse(rt, actor, "recovery.request", "own_account", target)
        raise FourEyesViolation("On ne lance pas la récupération de son propre compte.")
    rid, now = uuid.uuid4(), rt.now()
    async with rt.db.transaction() as conn:
        await conn.execute(
            recovery_request.insert().values(
                id=rid,
                account_id=target,
                requested_by=actor.id,
                reason=" ".join(reason.split())[:REASON_CHARS_MAX] or "(sans motif)",
                status="pending",
                created_at=now,
            )
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel=CHANNEL,
            purpose="recovery.request",
            result="ok",
            subject_kind="account",
            subject_id=target,
            detail={"request_id": str(rid)},
        )
    return Requested(rid, target)


async def approve(rt: Runtime, request_id: UUID, *, actor: Principal) -> Approved:
    _need(actor)
    async with rt.db.read() as conn:
        row = (
            await conn.execute(
                select(
                    recovery_request.c.account_id,
                    recovery_request.c.requested_by,
                    recovery_request.c.status,
                    account.c.username,
                )
                .join(account, account.c.id == recovery_request.c.account_id)
                .where(recovery_request.c.id == request_id)
            )
        ).first()
    if row is None:
        raise NotFound("Demande de récupération inconnue.")
    if actor.id in (row.requested_by, row.account_id):
        await _refuse(rt, actor, "recovery.approve", "same_person", row.account_id)
        raise FourEyesViolation("La récupération doit être validée par une autre personne.")
    token, now = secrets.token_urlsafe(32), rt.now()
    async with rt.db.transaction() as conn:
        done = await conn.execute(
            update(recovery_request)
            .where(recovery_request.c.id == request_id, recovery_request.c.status == "pending")
            .values(status="approved", approved_by=actor.id, approved_at=now)
        )
        if done.rowcount != 1:
            raise Conflict("Cette demande a déjà été validée.")
        keys = await conn.execute(
            update(passkey)
            .where(passkey.c.account_id == row.account_id, passkey.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        ended = await sessions.revoke_all(conn, row.account_id, now=now)
        await conn.execute(
            update(invitation)
            .where(invitation.c.account_id == row.account_id, invitation.c.used_at.is_(None))
            .values(used_at=now)
        )
        await conn.execute(
            invitation.insert().values(
                id=uuid.uuid4(),
                account_id=row.account_id,
                token_hash=rt.keys.token_hash("invitation\x00" + token),
                expires_at=now + INVITATION_VALIDITY,
                created_at=now,
            )
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel=CHANNEL,
            purpose="recovery.approve",
            result="ok",
            subject_kind="account",
            subject_id=row.account_id,
            detail={
                "request_id": str(request_id),
                "passkeys_revoked": int(keys.rowcount or 0),
                "sessions_revoked": ended,
            },
        )
        await notifications.recovery_approved(conn, account_id=row.account_id, now=now)
    return Approved(row.account_id, row.username, token, int(keys.rowcount or 0), ended)
