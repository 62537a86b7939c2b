"""Counting distinct subjects, and containing a principal (DESIGN §4.4).

``touch`` inserts (day, principal, card index) with ``ON CONFLICT DO NOTHING``: the count is
exact under concurrency, and the rows are the scope index of an incident. ``contain`` revokes
the principal's tokens, freezes its reads and opens a security alert, in the caller's
transaction.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import (
    account,
    api_client,
    api_token,
    containment,
    quota_count,
    security_alert,
    subject_touch,
    web_session,
)
from rempart.db.upsert import insert_for
from rempart.security import audit
from rempart.security.principal import Principal


def _counter(day: date, kind: str, principal_id: UUID) -> tuple[Any, ...]:
    """The one ``quota_count`` row of a principal and day."""
    return (
        quota_count.c.day == day,
        quota_count.c.principal_kind == kind,
        quota_count.c.principal_id == principal_id,
    )


async def touch(
    conn: AsyncConnection,
    dialect: str,
    *,
    day: date,
    kind: str,
    principal_id: UUID,
    subject_bi: bytes,
) -> int | None:
    """The principal's distinct count after this subject, or None if already touched today."""
    inserted = await conn.execute(
        insert_for(dialect, subject_touch)
        .values(day=day, principal_kind=kind, principal_id=principal_id, subject_bi=subject_bi)
        .on_conflict_do_nothing()
    )
    if not inserted.rowcount:
        return None
    stmt = insert_for(dialect, quota_count).values(
        day=day, principal_kind=kind, principal_id=principal_id, distinct_subjects=1
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "principal_kind", "principal_id"],
        set_={"distinct_subjects": quota_count.c.distinct_subjects + 1},
    ).returning(quota_count.c.distinct_subjects)
    return int((await conn.execute(stmt)).scalar_one())


async def untouch(
    conn: AsyncConnection, *, day: date, kind: str, principal_id: UUID, subject_bi: bytes
) -> None:
    """Take back a touch that was refused before any read: the scope is what was read."""
    deleted = await conn.execute(
        delete(subject_touch).where(
            subject_touch.c.day == day,
            subject_touch.c.principal_kind == kind,
            subject_touch.c.principal_id == principal_id,
            subject_touch.c.subject_bi == subject_bi,
        )
    )
    if deleted.rowcount:
        await conn.execute(
            update(quota_count)
            .where(*_counter(day, kind, principal_id))
            .values(distinct_subjects=quota_count.c.distinct_subjects - 1)
        )


async def is_contained(conn: AsyncConnection, principal: Principal) -> bool:
    """Read in the request's own transaction: a containment holds from its commit on."""
    if principal.id is None or principal.kind.value not in ("client", "account"):
        return False
    table = api_client if principal.kind.value == "client" else account
    at = (
        await conn.execute(select(table.c.contained_at).where(table.c.id == principal.id))
    ).scalar()
    return at is not None


async def count(conn: AsyncConnection, *, day: date, kind: str, principal_id: UUID) -> int:
    n = (
        await conn.execute(
            select(quota_count.c.distinct_subjects).where(*_counter(day, kind, principal_id))
        )
    ).scalar()
    return int(n or 0)


async def open_alert(
    conn: AsyncConnection,
    dialect: str,
    *,
    kind: str,
    principal: Principal,
    principal_kind: str,
    principal_id: UUID,
    day: date,
    now: datetime,
    detail: dict[str, Any],
) -> UUID:
    """One alert per kind, principal and day; returns its id (new or existing)."""
    await conn.execute(
        insert_for(dialect, security_alert)
        .values(
            id=uuid.uuid4(),
            kind=kind,
            principal_kind=principal_kind,
            principal_id=principal_id,
            structure_id=principal.structure_id,
            day=day,
            opened_at=now,
            detail=json.dumps(detail, sort_keys=True),
        )
        .on_conflict_do_nothing()
    )
    return (  # type: ignore[no-any-return]
        await conn.execute(
            select(security_alert.c.id).where(
                security_alert.c.kind == kind,
                security_alert.c.principal_kind == principal_kind,
                security_alert.c.principal_id == principal_id,
                security_alert.c.day == day,
            )
        )
    ).scalar_one()


async def contain(
    conn: AsyncConnection,
    dialect: str,
    *,
    principal: Principal,
    reason: str,
    day: date,
    now: datetime,
    detail: dict[str, Any],
) -> UUID:
    """Revoke every token of the client (every session of the account), refuse new ones,
    freeze its reads; open the alert."""
    assert principal.id is not None
    alert_id = await open_alert(
        conn,
        dialect,
        kind=reason,
        principal=principal,
        principal_kind=principal.kind.value,
        principal_id=principal.id,
        day=day,
        now=now,
        detail=detail,
    )
    if principal.kind.value == "account":
        await conn.execute(
            update(account)
            .where(account.c.id == principal.id, account.c.contained_at.is_(None))
            .values(contained_at=now)
        )
        await conn.execute(
            update(web_session)
            .where(web_session.c.account_id == principal.id, web_session.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    else:
        await conn.execute(
            update(api_client)
            .where(api_client.c.id == principal.id, api_client.c.contained_at.is_(None))
            .values(contained_at=now)
        )
        await conn.execute(
            update(api_token)
            .where(api_token.c.api_client_id == principal.id, api_token.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    containment_id = uuid.uuid4()
    await conn.execute(
        containment.insert().values(
            id=containment_id,
            principal_kind=principal.kind.value,
            principal_id=principal.id,
            alert_id=alert_id,
            reason=reason,
            opened_at=now,
        )
    )
    await audit.record(
        conn,
        at=now,
        actor=principal,
        channel="system",
        purpose="containment",
        result=reason,
        subject_kind="containment",
        subject_id=containment_id,
        detail=detail,
    )
    return containment_id
