"""API client credentials and opaque bearer tokens (OAuth 2.0 client credentials).

A client secret and an access token are 256-bit random strings; only their keyed hashes are
stored (``KeyRing.token_hash``), so a database dump yields no usable credential. A token is
scoped to one structure, expires after ``token_ttl_seconds`` and is checked against the
database on use; each process may cache the answer for at most ``principal_cache_seconds``
(DESIGN §4.8), so a revocation holds everywhere within seconds.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import api_client, api_token, structure
from rempart.domain.care import Profession
from rempart.domain.roles import Role
from rempart.security.keys import KeyRing
from rempart.security.principal import ActorKind, Principal


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_client_id() -> str:
    return "cli_" + secrets.token_hex(12)


def secret_hash(keys: KeyRing, secret: str) -> bytes:
    return keys.token_hash("client-secret\x00" + secret)


def access_token_hash(keys: KeyRing, token: str) -> bytes:
    return keys.token_hash("access-token\x00" + token)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    principal: Principal


def _client_principal(row: Any) -> Principal:
    return Principal(
        ActorKind.CLIENT,
        row.id,
        row.client_id,
        Role.API_CLIENT,
        structure_id=row.structure_id,
        profession=Profession(row.profession),
        quota_soft=row.quota_soft if row.quota_soft is not None else row.s_quota_soft,
        quota_hard=row.quota_hard if row.quota_hard is not None else row.s_quota_hard,
    )


_CLIENT_COLUMNS = (
    api_client.c.id,
    api_client.c.client_id,
    api_client.c.secret_hash,
    api_client.c.structure_id,
    api_client.c.revoked_at,
    api_client.c.contained_at,
    api_client.c.quota_soft,
    api_client.c.quota_hard,
    structure.c.profession,
    structure.c.quota_soft.label("s_quota_soft"),
    structure.c.quota_hard.label("s_quota_hard"),
)


async def find_client(conn: AsyncConnection, client_id: str) -> Any:
    q = (
        select(*_CLIENT_COLUMNS)
        .join(structure, structure.c.id == api_client.c.structure_id)
        .where(api_client.c.client_id == client_id)
    )
    return (await conn.execute(q)).first()


def secret_matches(keys: KeyRing, client: Any, secret: str) -> bool:
    expected = client.secret_hash if client is not None else b"\0" * 32
    ok = hmac.compare_digest(expected, secret_hash(keys, secret))
    return ok and client is not None and client.revoked_at is None and client.contained_at is None


async def store_token(
    conn: AsyncConnection, keys: KeyRing, client: Any, *, now: datetime, ttl_seconds: int
) -> IssuedToken:
    token = secrets.token_urlsafe(32)
    principal = _client_principal(client)
    await conn.execute(
        api_token.insert().values(
            token_hash=access_token_hash(keys, token),
            api_client_id=principal.id,
            structure_id=principal.structure_id,
            issued_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    return IssuedToken(token, ttl_seconds, principal)


class PrincipalCache:
    """token hash → principal, for at most ``ttl_seconds`` (monotonic clock)."""

    def __init__(self, ttl_seconds: float, size_max: int = 100_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.size_max = size_max
        self._entries: dict[bytes, tuple[float, Principal]] = {}

    def get(self, key: bytes) -> Principal | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def clear(self) -> None:
        """After a containment in this process: no cached principal outlives it here."""
        self._entries.clear()

    def put(self, key: bytes, principal: Principal) -> None:
        if self.ttl_seconds <= 0:
            return
        if len(self._entries) >= self.size_max:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl_seconds, principal)


async def principal_for_token(
    conn: AsyncConnection, key: bytes, *, now: datetime, cache: PrincipalCache
) -> Principal | None:
    """The principal of the token whose hash is ``key`` (``access_token_hash``), from the
    database; a valid one is cached. Callers look in ``cache`` first, without a transaction."""
    q = (
        select(*_CLIENT_COLUMNS, api_token.c.expires_at, api_token.c.revoked_at.label("t_revoked"))
        .select_from(api_token)
        .join(api_client, api_client.c.id == api_token.c.api_client_id)
        .join(structure, structure.c.id == api_client.c.structure_id)
        .where(api_token.c.token_hash == key)
    )
    row = (await conn.execute(q)).first()
    if row is None or row.t_revoked is not None or row.revoked_at is not None:
        return None
    if row.contained_at is not None:  # reads frozen even if a token escaped revocation
        return None
    if row.expires_at <= now:
        return None
    principal = _client_principal(row)
    cache.put(key, principal)
    return principal
