"""Switch channels off and on (DESIGN §5), and refuse work on a closed channel.

Each process keeps the channel states for ``channel_cache_seconds`` (one second by default):
a switch made from the CLI holds on every server within about a second, and the hot path does
not pay a database round trip per request for it.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from sqlalchemy import select

from rempart.db.tables import channel_event, channel_state
from rempart.db.upsert import upsert
from rempart.domain.channels import Channel, ChannelState
from rempart.domain.errors import ChannelClosed, Forbidden
from rempart.domain.roles import Permission
from rempart.security import audit
from rempart.security.principal import Principal
from rempart.services.runtime import Runtime

DEFAULT_CLOSED_MESSAGE = "Ce service est momentanément fermé. Merci de réessayer plus tard."


async def states(rt: Runtime, *, fresh: bool = False) -> dict[Channel, ChannelState]:
    cached = rt.channel_states
    if not fresh and cached is not None and cached[0] > time.monotonic():
        return cached[1]
    async with rt.db.read() as conn:
        rows = (await conn.execute(select(channel_state))).all()
    found = {
        Channel(r.name): ChannelState(
            Channel(r.name), r.open, r.reason, r.changed_at, r.expected_back_at
        )
        for r in rows
        if r.name in Channel._value2member_map_
    }
    result = {c: found.get(c, ChannelState(c, True)) for c in Channel}
    rt.channel_states = (time.monotonic() + rt.settings.channel_cache_seconds, result)
    return result


async def ensure_open(rt: Runtime, channel: Channel) -> None:
    state = (await states(rt))[channel]
    if not state.open:
        raise ChannelClosed(
            channel.value,
            state.reason or DEFAULT_CLOSED_MESSAGE,
            state.retry_after_seconds(rt.now()),
        )


async def switch(
    rt: Runtime,
    channel: Channel,
    *,
    open_: bool,
    reason: str | None,
    expected_back_at: datetime | None = None,
    actor: Principal,
) -> ChannelState:
    now = rt.now()
    if not actor.may(Permission.SWITCH_CHANNELS):
        async with rt.db.transaction() as conn:
            await audit.record(
                conn,
                at=now,
                actor=actor,
                channel="backoffice",
                purpose="channel_switch",
                result="refused",
                detail={"channel": channel.value},
            )
        raise Forbidden("Vous n'avez pas le droit de changer l'état des services.")
    values = {
        "open": open_,
        "reason": reason,
        "expected_back_at": None if open_ else expected_back_at,
        "changed_at": now,
        "changed_by": actor.label,
    }
    async with rt.db.transaction() as conn:
        await conn.execute(
            upsert(
                rt.db.dialect,
                channel_state,
                {"name": channel.value, **values},
                keys=["name"],
                update=values,
            )
        )
        await conn.execute(
            channel_event.insert().values(
                id=uuid.uuid4(),
                name=channel.value,
                open=open_,
                reason=reason,
                expected_back_at=values["expected_back_at"],
                at=now,
                actor=actor.label,
            )
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            channel="cli" if actor.kind.value == "system" else "backoffice",
            purpose="channel_switch",
            result="on" if open_ else "off",
            subject_kind="channel",
            detail={"channel": channel.value, "reason": reason},
        )
    return (await states(rt, fresh=True))[channel]
