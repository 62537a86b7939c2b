"""Use cases: an API client obtains a token; a request presents it.

Every refused attempt is audited (DESIGN: "every refusal is logged"): a refused token request
with the client it named when that client exists (never what was typed, which may be a secret
in the wrong field), a refused bearer token as "(jeton invalide)". Rate limits in front of
both come with the exfiltration issue.
"""

from __future__ import annotations

from rempart.domain.errors import NotAuthenticated
from rempart.security import audit, tokens
from rempart.security.principal import ActorKind, Principal
from rempart.services.runtime import Runtime

_INVALID = "Identifiants du client invalides."


async def issue_token(rt: Runtime, client_id: str, client_secret: str) -> tokens.IssuedToken:
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


async def authenticate(rt: Runtime, token: str) -> Principal:
    now = rt.now()
    async with rt.db.read() as conn:  # the primary: a revocation must hold at once
        principal = await tokens.principal_for_token(
            conn, rt.keys, token, now=now, cache=rt.principals
        )
    if principal is None:
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
