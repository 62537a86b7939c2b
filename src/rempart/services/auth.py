"""Use cases: an API client obtains a token; a request presents it.

Every refused attempt is audited (DESIGN: "every refusal is logged"): a refused token request
with the client it named when that client exists (never what was typed, which may be a secret
in the wrong field), a refused bearer token as "(jeton invalide)".

In front of both, per client IP and shared by every worker (GCRA in the database): token
requests, and requests whose bearer token fails. Past the limit the answer is 429 with
``Retry-After``, logged, without a database write beyond the limiter's own row.
"""

from __future__ import annotations

import structlog

from rempart.domain.errors import NotAuthenticated, TooManyRequests
from rempart.security import audit, ratelimit, tokens
from rempart.security.principal import ActorKind, Principal
from rempart.services.runtime import Runtime

log = structlog.get_logger("rempart.auth")
_INVALID = "Identifiants du client invalides."


async def _limit(rt: Runtime, key: str, rate_per_s: float, burst: int) -> None:
    async with rt.db.transaction() as conn:
        d = await ratelimit.hit(
            conn, rt.db.dialect, key, now=rt.now(), rate_per_s=rate_per_s, burst=burst
        )
    if not d.allowed:
        log.warning("auth.rate_limited", key=key.split(":", 1)[0])
        raise TooManyRequests(d.retry_after_seconds)


async def issue_token(
    rt: Runtime, client_id: str, client_secret: str, *, ip: str = "unknown"
) -> tokens.IssuedToken:
    s = rt.settings
    await _limit(rt, f"token:{ip}", s.token_requests_per_ip_per_s, s.token_requests_per_ip_burst)
    now = rt.now()
    async with rt.db.transaction() as conn:
        client = await tokens.find_client(conn, client_id[:64])
        if tokens.secret_matches(rt.keys, client, client_secret):
            assert client is not None
            return await tokens.store_token(
                conn, rt.keys, client, now=now, ttl_seconds=rt.settings.token_ttl_seconds
            )
        claimed = Principal(
            ActorKind.CLIENT,
            client.id if client is not None else None,
            # the claimed id only if it is a known client's: a secret typed in the wrong field
            # must not land in the audit log
            client.client_id if client is not None else "(client inconnu)",
            None,
            structure_id=client.structure_id if client is not None else None,
        )
        await audit.record(
            conn, at=now, actor=claimed, channel="api", purpose="token", result="refused"
        )
    raise NotAuthenticated(_INVALID)


async def authenticate(rt: Runtime, token: str, *, ip: str = "unknown") -> Principal:
    key = tokens.access_token_hash(rt.keys, token)
    cached = rt.principals.get(key)
    if cached is not None:  # checked by this process within principal_cache_seconds
        return cached
    now = rt.now()
    async with rt.db.read() as conn:  # the primary: a revocation must hold at once
        principal = await tokens.principal_for_token(conn, key, now=now, cache=rt.principals)
    if principal is None:
        s = rt.settings
        await _limit(rt, f"bad-token:{ip}", s.bad_tokens_per_ip_per_s, s.bad_tokens_per_ip_burst)
        async with rt.db.transaction() as conn:
            await audit.record(
                conn,
                at=now,
                actor=Principal(ActorKind.CLIENT, None, "(jeton invalide)", None),
                channel="api",
                purpose="authenticate",
                result="refused",
            )
        raise NotAuthenticated("Jeton d'accès invalide ou expiré.")
    return principal
