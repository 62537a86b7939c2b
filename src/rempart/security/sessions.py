"""Portal sessions, server-side (DESIGN §4.9, issue 7).

The cookie carries a 256-bit random id; the database stores only its keyed hash
(``KeyRing.token_hash``, like API tokens), so a dump of ``web_session`` opens no session.
A session ends after 30 minutes idle or 12 hours in all (``domain.sessions``), at sign-out,
at "sign out elsewhere", and when its account is disabled or contained.

The CSRF token of a session is a keyed hash of its id: nothing more to store, different per
session, and unknowable to another site (which cannot read the cookie).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import account, structure, web_session
from rempart.domain.care import Profession
from rempart.domain.roles import Role
from rempart.domain.sessions import ABSOLUTE, SessionTimes, device_label, is_live, needs_touch
from rempart.security.keys import KeyRing
from rempart.security.principal import ActorKind, Principal

COOKIE = "rempart_session"


def id_hash(keys: KeyRing, session_id: str) -> bytes:
    return keys.token_hash("web-session\x00" + session_id)


def csrf_token(keys: KeyRing, session_id: str) -> str:
    mac = keys.token_hash("csrf\x00" + session_id)
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_ok(keys: KeyRing, session_id: str, given: str) -> bool:
    return hmac.compare_digest(csrf_token(keys, session_id), given)


@dataclass(frozen=True, slots=True)
class Session:
    id: UUID  # the row's public id (the security page names it), not the cookie's secret
    principal: Principal
    display_name: str
    structure_name: str | None
    device: str
    created_at: datetime
    last_seen_at: datetime
    stepped_up_at: datetime | None = None  # last fresh passkey assertion (sign-in or step-up)
    passkey_id: UUID | None = None  # None: opened with a transitional password and TOTP


async def open_session(
    conn: AsyncConnection,
    keys: KeyRing,
    *,
    account_id: UUID,
    passkey_id: UUID | None,
    user_agent: str,
    now: datetime,
) -> str:
    """A new session; returns the cookie value (shown once, stored hashed). A passkey sign-in
    is itself a fresh assertion: the session starts stepped up."""
    secret = secrets.token_urlsafe(32)
    await conn.execute(
        web_session.insert().values(
            id_hash=id_hash(keys, secret),
            id=uuid.uuid4(),
            account_id=account_id,
            passkey_id=passkey_id,
            device=device_label(user_agent),
            created_at=now,
            last_seen_at=now,
            expires_at=now + ABSOLUTE,
            stepped_up_at=now if passkey_id is not None else None,
        )
    )
    return secret


async def record_step_up(conn: AsyncConnection, session_id: UUID, *, now: datetime) -> None:
    await conn.execute(
        update(web_session).where(web_session.c.id == session_id).values(stepped_up_at=now)
    )


_COLUMNS = (
    web_session.c.id,
    web_session.c.created_at,
    web_session.c.last_seen_at,
    web_session.c.expires_at,
    web_session.c.revoked_at,
    web_session.c.device,
    web_session.c.stepped_up_at,
    web_session.c.passkey_id,
    account.c.id.label("account_id"),
    account.c.username,
    account.c.display_name_enc,
    account.c.role,
    account.c.structure_id,
    account.c.ocam_id,
    account.c.disabled_at,
    account.c.contained_at,
    structure.c.name.label("structure_name"),
    structure.c.profession,
    structure.c.quota_soft,
    structure.c.quota_hard,
)


async def find_live(
    conn: AsyncConnection, keys: KeyRing, session_id: str, *, now: datetime
) -> Session | None:
    """The live session of this cookie, its ``last_seen_at`` moved on (at most once a minute);
    None if unknown, ended, revoked, or its account disabled or contained."""
    key = id_hash(keys, session_id)
    q = (
        select(*_COLUMNS)
        .select_from(web_session)
        .join(account, account.c.id == web_session.c.account_id)
        .outerjoin(structure, structure.c.id == account.c.structure_id)
        .where(web_session.c.id_hash == key)
    )
    row = (await conn.execute(q)).first()
    if row is None or row.disabled_at is not None or row.contained_at is not None:
        return None
    times = SessionTimes(row.created_at, row.last_seen_at, row.expires_at, row.revoked_at)
    if not is_live(times, now=now):
        return None
    if needs_touch(times, now=now):
        await conn.execute(
            update(web_session).where(web_session.c.id_hash == key).values(last_seen_at=now)
        )
    return _session(keys, row)


def _session(keys: KeyRing, row: Any) -> Session:
    principal = Principal(
        ActorKind.ACCOUNT,
        row.account_id,
        row.username,
        Role(row.role),
        structure_id=row.structure_id,
        profession=Profession(row.profession) if row.profession else None,
        ocam_id=row.ocam_id,
        quota_soft=row.quota_soft,
        quota_hard=row.quota_hard,
    )
    name = keys.decrypt("account", "display_name", row.account_id, row.display_name_enc)
    return Session(
        row.id,
        principal,
        name,
        row.structure_name,
        row.device,
        row.created_at,
        row.last_seen_at,
        row.stepped_up_at,
        row.passkey_id,
    )


async def revoke(conn: AsyncConnection, keys: KeyRing, session_id: str, *, now: datetime) -> None:
    await conn.execute(
        update(web_session)
        .where(web_session.c.id_hash == id_hash(keys, session_id))
        .where(web_session.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_all(
    conn: AsyncConnection, account_id: UUID, *, now: datetime, keep: UUID | None = None
) -> int:
    """End every session of the account (but ``keep``); the number ended."""
    q = (
        update(web_session)
        .where(web_session.c.account_id == account_id, web_session.c.revoked_at.is_(None))
        .where(web_session.c.expires_at > now)
        .values(revoked_at=now)
    )
    if keep is not None:
        q = q.where(web_session.c.id != keep)
    return int((await conn.execute(q)).rowcount or 0)


async def revoke_opened_with(conn: AsyncConnection, passkey_id: UUID, *, now: datetime) -> None:
    await conn.execute(
        update(web_session)
        .where(web_session.c.passkey_id == passkey_id, web_session.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


@dataclass(frozen=True, slots=True)
class SessionLine:
    id: UUID
    device: str
    created_at: datetime
    last_seen_at: datetime


async def list_live(conn: AsyncConnection, account_id: UUID, *, now: datetime) -> list[SessionLine]:
    rows = (
        await conn.execute(
            select(
                web_session.c.id,
                web_session.c.device,
                web_session.c.created_at,
                web_session.c.last_seen_at,
                web_session.c.expires_at,
                web_session.c.revoked_at,
            )
            .where(web_session.c.account_id == account_id, web_session.c.revoked_at.is_(None))
            .where(web_session.c.expires_at > now)
            .order_by(web_session.c.last_seen_at.desc())
        )
    ).all()
    return [
        SessionLine(r.id, r.device, r.created_at, r.last_seen_at)
        for r in rows
        if is_live(SessionTimes(r.created_at, r.last_seen_at, r.expires_at), now=now)
    ]
