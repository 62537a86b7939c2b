"""Mass revocation and bulk secret rotation (issue 9 §5), with four eyes on mass actions.

``request`` records what a security officer wants done. A structure's own revocation or
rotation runs at once; one OCAM's users or everyone needs a second, different officer to
``approve`` it (DESIGN §4.8). A revocation ends every portal session and API token in its
reach, and marks the accounts so that their next sign-in is a fresh passkey assertion
(``reverify``; the passkey sign-in clears the mark, and any other way in must refuse while it
is set: ``passkey_required``). A rotation gives every API client in reach a new secret (the
old one stops at once), writes the new secrets to a file for a safe hand-over, and queues a
mail to each structure's members saying so — never the secret itself.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import account, api_client, api_token, mass_action, reverify, web_session
from rempart.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    FourEyesViolation,
    InvalidFields,
    NotFound,
)
from rempart.domain.roles import Permission
from rempart.security import audit, tokens
from rempart.security.principal import ActorKind, Principal
from rempart.services import outbox
from rempart.services.runtime import Runtime

KINDS = ("revoke", "rotate")
SCOPES = ("structure", "ocam", "all")
MASS = frozenset({"ocam", "all"})  # these wait for a second officer

ROTATED_SUBJECT = "Rempart : le secret de votre logiciel a été renouvelé"
ROTATED_BODY = (
    "Bonjour,\n\nPar mesure de sécurité, le secret de connexion de votre logiciel (client "
    "API {client}) a été renouvelé le {at}. L'ancien secret ne fonctionne plus.\n\n"
    "Le nouveau secret vous sera remis par votre interlocuteur habituel, par téléphone ou en "
    "main propre : il ne vous sera jamais envoyé par courriel. Si l'on vous le propose par "
    "courriel, ne l'utilisez pas et prévenez-nous.\n\nL'équipe sécurité de Rempart"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    action_id: UUID
    status: str  # requested | done
    sessions: int = 0
    tokens: int = 0
    accounts: int = 0
    clients: int = 0
    secrets_file: Path | None = None


def _need(actor: Principal) -> None:
    if actor.kind is not ActorKind.ACCOUNT or not actor.may(Permission.MANAGE_ACCOUNTS):
        raise Forbidden("Réservé aux comptes du back-office ayant le rôle sécurité (--actor).")


async def passkey_required(conn: AsyncConnection, account_id: UUID) -> bool:
    """True while the account's next sign-in must be a fresh passkey assertion."""
    found = await conn.execute(select(exists().where(reverify.c.account_id == account_id)))
    return bool(found.scalar())


async def request(
    rt: Runtime,
    *,
    kind: str,
    scope: str,
    target_id: UUID | None,
    reason: str,
    actor: Principal,
    secrets_out: Path | None = None,
) -> Outcome:
    _need(actor)
    errors = []
    if kind not in KINDS:
        errors.append(FieldError("kind", "revoke ou rotate"))
    if scope not in SCOPES or (scope == "all") != (target_id is None):
        errors.append(FieldError("scope", "structure ID, ocam ID, ou all"))
    if kind == "rotate" and scope == "ocam":
        errors.append(FieldError("scope", "les clients API appartiennent aux structures"))
    if not reason.strip():
        errors.append(FieldError("reason", "obligatoire"))
    if errors:
        raise InvalidFields(errors)
    aid, now = uuid.uuid4(), rt.now()
    async with rt.db.transaction() as conn:
        await conn.execute(
            mass_action.insert().values(
                id=aid,
                kind=kind,
                scope=scope,
                target_id=target_id,
                reason=reason.strip(),
                requested_by=actor.label,
                requested_at=now,
            )
        )
        await _audit(conn, now, actor, aid, "requested", kind, scope)
    if scope in MASS:
        return Outcome(aid, "requested")
    return await _execute(rt, aid, actor=actor, secrets_out=secrets_out)


async def approve(
    rt: Runtime, action_id: UUID, *, actor: Principal, secrets_out: Path | None = None
) -> Outcome:
    _need(actor)
    async with rt.db.read() as conn:
        row = (await conn.execute(select(mass_action).where(mass_action.c.id == action_id))).first()
    if row is None:
        raise NotFound()
    if row.done_at is not None:
        raise Conflict("Cette action a déjà été exécutée.")
    if row.requested_by == actor.label:
        async with rt.db.transaction() as conn:
            await _audit(
                conn, rt.now(), actor, action_id, "refused_same_person", row.kind, row.scope
            )
        raise FourEyesViolation("Une action de masse doit être validée par une autre personne.")
    return await _execute(rt, action_id, actor=actor, secrets_out=secrets_out)


async def _execute(
    rt: Runtime, action_id: UUID, *, actor: Principal, secrets_out: Path | None
) -> Outcome:
    now = rt.now()
    async with rt.db.transaction() as conn:
        row = (
            await conn.execute(
                select(mass_action).where(
                    mass_action.c.id == action_id, mass_action.c.done_at.is_(None)
                )
            )
        ).first()
        if row is None:
            raise Conflict("Cette action a déjà été exécutée.")
        if row.kind == "revoke":
            sessions, tokens_, accounts = await _revoke(conn, row, now)
            outcome = Outcome(action_id, "done", sessions, tokens_, accounts)
        else:
            if secrets_out is None:
                raise InvalidFields([FieldError("out", "fichier où écrire les nouveaux secrets")])
            clients = await _rotate(conn, rt, row, now, secrets_out)
            outcome = Outcome(action_id, "done", clients=clients, secrets_file=secrets_out)
        result = {k: getattr(outcome, k) for k in ("sessions", "tokens", "accounts", "clients")}
        await conn.execute(
            update(mass_action)
            .where(mass_action.c.id == action_id)
            .values(
                done_at=now,
                approved_by=actor.label if row.scope in MASS else None,
                result=json.dumps(result),
            )
        )
        await _audit(conn, now, actor, action_id, "done", row.kind, row.scope, result)
    rt.principals.clear()  # this process at once; the others within their cache TTL (≤ 2 s)
    return outcome


def _accounts(row: Any) -> Any:
    q = select(account.c.id)
    if row.scope == "structure":
        return q.where(account.c.structure_id == row.target_id)
    if row.scope == "ocam":
        return q.where(account.c.ocam_id == row.target_id)
    return q


def _clients(row: Any) -> Any:
    q = select(api_client.c.id)
    return q.where(api_client.c.structure_id == row.target_id) if row.scope == "structure" else q


async def _revoke(conn: AsyncConnection, row: Any, now: datetime) -> tuple[int, int, int]:
    accounts = list((await conn.execute(_accounts(row))).scalars())
    ended = await conn.execute(
        update(web_session)
        .where(web_session.c.account_id.in_(_accounts(row)), web_session.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    tokens_ended = 0
    if row.scope != "ocam":  # an OCAM's users are accounts; API clients belong to structures
        done = await conn.execute(
            update(api_token)
            .where(api_token.c.api_client_id.in_(_clients(row)), api_token.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        tokens_ended = done.rowcount
    await conn.execute(delete(reverify).where(reverify.c.account_id.in_(_accounts(row))))
    if accounts:
        await conn.execute(
            reverify.insert(),
            [{"account_id": a, "required_at": now, "reason": row.reason[:200]} for a in accounts],
        )
    return ended.rowcount, tokens_ended, len(accounts)


async def _rotate(conn: AsyncConnection, rt: Runtime, row: Any, now: datetime, out: Path) -> int:
    clients = (
        await conn.execute(
            select(api_client.c.id, api_client.c.client_id, api_client.c.structure_id).where(
                api_client.c.id.in_(_clients(row)), api_client.c.revoked_at.is_(None)
            )
        )
    ).all()
    handed: list[dict[str, str]] = []
    for c in clients:
        secret = tokens.new_secret()
        await conn.execute(
            update(api_client)
            .where(api_client.c.id == c.id)
            .values(secret_hash=tokens.secret_hash(rt.keys, secret))
        )
        handed.append(
            {"client_id": c.client_id, "structure_id": str(c.structure_id), "client_secret": secret}
        )
    await conn.execute(
        update(api_token)
        .where(api_token.c.api_client_id.in_(_clients(row)), api_token.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    members = (
        await conn.execute(
            select(account.c.id, account.c.structure_id).where(
                account.c.structure_id.in_({c.structure_id for c in clients}),
                account.c.disabled_at.is_(None),
            )
        )
    ).all()
    at = now.isoformat(timespec="minutes")
    for m in members:
        for c in clients:
            if c.structure_id == m.structure_id:
                await outbox.queue(
                    conn,
                    account_id=m.id,
                    kind="client_secret_rotated",
                    subject=ROTATED_SUBJECT,
                    body=ROTATED_BODY.format(client=c.client_id, at=at),
                    now=now,
                )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(handed, f, indent=1)
    return len(clients)


async def _audit(
    conn: AsyncConnection,
    now: datetime,
    actor: Principal,
    action_id: UUID,
    result: str,
    kind: str,
    scope: str,
    counts: dict[str, Any] | None = None,
) -> None:
    await audit.record(
        conn,
        at=now,
        actor=actor,
        channel="cli",
        purpose=f"mass_{kind}",
        result=result,
        subject_kind="mass_action",
        subject_id=action_id,
        detail={"scope": scope, **(counts or {})},
    )
