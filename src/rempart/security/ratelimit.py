"""Rate limits kept in the database (DESIGN §4.8: shared by all workers), GCRA per key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import rate_limit
from rempart.db.upsert import upsert
from rempart.domain.ratelimit import Decision, gcra


async def hit(
    conn: AsyncConnection, dialect: str, key: str, *, now: datetime, rate_per_s: float, burst: int
) -> Decision:
    """One request under ``key``: allowed or not; the state moves only when allowed."""
    q = select(rate_limit.c.tat).where(rate_limit.c.key == key[:120])
    if dialect == "postgresql":
        q = q.with_for_update()
    tat = (await conn.execute(q)).scalar()
    decision = gcra(tat, now, rate_per_s=rate_per_s, burst=burst)
    if decision.allowed:
        await conn.execute(
            upsert(
                dialect,
                rate_limit,
                {"key": key[:120], "tat": decision.tat},
                keys=["key"],
                update={"tat": decision.tat},
            )
        )
    return decision


async def tat(conn: AsyncConnection, key: str) -> datetime | None:
    """The key's theoretical arrival time, read without moving it (to check a budget before
    an expensive step, and spend it only on failure)."""
    return (
        await conn.execute(select(rate_limit.c.tat).where(rate_limit.c.key == key[:120]))
    ).scalar()
