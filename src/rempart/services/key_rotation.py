"""Use case: rotate the data key while serving (performance issue, DESIGN §4.5).

Data keys are versions derived from the master key (``security.keys``: HKDF per version);
every ciphertext carries its version, so every version stays readable. Rotating:

1. ``rotate`` makes version v+1 current (the ``setting`` row ``data_key_version``): new writes
   of this process use it at once, other processes when they next load it (every worker round,
   and at start-up);
2. it then re-encrypts, batch after batch, every row still under an older version
   (``access.reencrypt_batch``: decrypted and encrypted again in memory, one transaction and
   one audit row per batch), table after table, with progress.

Reads never fail meanwhile — an old row is read with its old version until its batch commits —
and blind indexes do not change (they use their own key), so rights checks go on answering. A
rotation interrupted, or rows written by a process that had not yet loaded the new version, are
caught by running it again (``--resume``: no new version, only the re-encryption).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from rempart import access
from rempart.db.tables import setting
from rempart.db.upsert import upsert
from rempart.domain.errors import Forbidden
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.services.runtime import Runtime

SETTING = "data_key_version"
BATCH = 1000

Progress = Callable[[str, int, int], None]  # table, rows done, rows to do


async def load(rt: Runtime) -> int:
    """Make this process write with the current data-key version (1 until a first rotation)."""
    async with rt.db.read() as conn:
        value = (
            await conn.execute(select(setting.c.value).where(setting.c.key == SETTING))
        ).scalar()
    rt.keys.current_version = max(rt.keys.current_version, int(value) if value else 1)
    return rt.keys.current_version


async def _left(rt: Runtime, table: Any, target: int) -> int:
    async with rt.db.read() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).select_from(table).where(table.c.key_version < target)
                )
            ).scalar_one()
        )


@dataclass
class Rotation:
    version: int
    rows: dict[str, int] = field(default_factory=dict)


async def rotate(
    rt: Runtime,
    actor: Principal,
    *,
    resume: bool = False,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> Rotation:
    if not actor.may(Permission.MANAGE_ACCOUNTS) and not actor.may(Permission.SWITCH_CHANNELS):
        raise Forbidden("Réservé aux responsables de la sécurité et aux administrateurs.")
    current = await load(rt)
    target = current if resume else current + 1
    async with rt.db.transaction() as conn:
        await conn.execute(
            upsert(
                rt.db.dialect,
                setting,
                {"key": SETTING, "value": str(target)},
                keys=["key"],
                update={"value": str(target)},
            )
        )
        await audit.record(
            conn,
            at=rt.now(),
            actor=actor,
            channel="cli",
            purpose="key_rotation",
            result="resumed" if resume else "started",
            detail={"version": target},
        )
    rt.keys.current_version = target
    done = Rotation(target)
    for table, columns in access.ENCRYPTED:
        todo = await _left(rt, table, target)
        n = 0
        while True:  # passes over the table until one finds nothing left (rows held by
            found, after = 0, None  # another transaction during a pass wait for the next)
            while True:
                async with rt.db.transaction() as conn:
                    got, after = await access.reencrypt_batch(
                        conn,
                        rt.keys,
                        table=table,
                        columns=columns,
                        dialect=rt.db.dialect,
                        limit=batch,
                        now=rt.now(),
                        after=after,
                    )
                found += got
                n += got
                if got and progress is not None:
                    progress(table.name, n, max(todo, n))
                if after is None:
                    break
            if not found:
                left = await _left(rt, table, target)
                if not left:
                    break
                await asyncio.sleep(0.5)  # rows another transaction held: wait, then again
        if progress is not None:
            progress(table.name, n, max(todo, n))
        done.rows[table.name] = n
    return done
