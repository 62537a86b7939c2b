"""Known devices: which browsers an account has signed in from (DESIGN §4.1).

A browser gets a long-lived random cookie (``rempart_device``, 256 bits, ``Secure; HttpOnly;
SameSite=Strict``, 400 days); the database keeps only its keyed hash per account. A sign-in
whose browser is not known for that account (no cookie, a cleared one, another person's
counter PC) is a *new device*: the caller notifies the account's existing channel. The cookie
opens nothing by itself — it only decides whether a notification goes out.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import known_device
from rempart.db.upsert import insert_ignore
from rempart.security.keys import KeyRing

COOKIE = "rempart_device"
MAX_AGE_SECONDS = 400 * 24 * 3600  # the longest a browser keeps a cookie
_CHARS_MAX = 100


def device_hash(keys: KeyRing, value: str) -> bytes:
    return keys.token_hash("device\x00" + value)


async def remember(
    conn: AsyncConnection,
    dialect: str,
    keys: KeyRing,
    *,
    account_id: UUID,
    cookie: str | None,
    now: datetime,
) -> tuple[str, bool]:
    """The device cookie to set (the browser's own, or a new one), and whether this browser is
    new for this account (then it is remembered from now on)."""
    value = cookie[:_CHARS_MAX] if cookie and len(cookie) >= 32 else secrets.token_urlsafe(32)
    h = device_hash(keys, value)
    seen = await conn.execute(
        update(known_device)
        .where(known_device.c.account_id == account_id, known_device.c.device_hash == h)
        .values(last_seen_at=now)
    )
    if seen.rowcount == 1:
        return value, False
    added = await conn.execute(
        insert_ignore(dialect, known_device, keys=["account_id", "device_hash"]).values(
            account_id=account_id, device_hash=h, first_seen_at=now, last_seen_at=now
        )
    )
    return value, added.rowcount == 1


async def is_known(conn: AsyncConnection, keys: KeyRing, account_id: UUID, cookie: str) -> bool:
    row = await conn.execute(
        select(known_device.c.account_id).where(
            known_device.c.account_id == account_id,
            known_device.c.device_hash == device_hash(keys, cookie[:_CHARS_MAX]),
        )
    )
    return row.first() is not None
