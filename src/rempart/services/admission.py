"""What every professional's request checks before anything is read, each refusal audited:
the channel is open, and the caller is a structure's principal allowed to do this."""

from __future__ import annotations

from rempart.access import record_refusal
from rempart.domain.channels import Channel
from rempart.domain.errors import ChannelClosed, Forbidden
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.services import channels
from rempart.services.runtime import Runtime


async def refuse(rt: Runtime, actor: Principal, purpose: str, reason: str) -> None:
    async with rt.db.transaction() as conn:
        await record_refusal(
            conn, principal=actor, channel="api", purpose=purpose, reason=reason, now=rt.now()
        )


async def admit(
    rt: Runtime,
    actor: Principal,
    *,
    channel: Channel,
    permission: Permission,
    purpose: str,
    refusal: str,
) -> None:
    """Raise ``ChannelClosed`` or ``Forbidden`` (with the French ``refusal``), audited."""
    try:
        await channels.ensure_open(rt, channel)
    except ChannelClosed:
        await refuse(rt, actor, purpose, "channel_closed")
        raise
    if actor.structure_id is None or not actor.may(permission):
        await refuse(rt, actor, purpose, "not_allowed")
        raise Forbidden(refusal)


async def refuse_page(rt: Runtime, actor: Principal, page: str) -> None:
    """A signed-in account asked for a page its role does not open (portal or back office)."""
    async with rt.db.transaction() as conn:
        await audit.record(
            conn,
            at=rt.now(),
            actor=actor,
            channel="portal",
            purpose="page_view",
            result="refused",
            detail={"reason": "not_allowed", "page": page[:200]},
        )
