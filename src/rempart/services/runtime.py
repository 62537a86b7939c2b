"""What every use case needs from the outside: settings, database, keys, clock, caches.

Built once by an entry point (``rempart.cli``, ``create_app``, the tests) and passed down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from rempart.config import Settings
from rempart.db.engine import Database, create_engine
from rempart.domain.channels import Channel, ChannelState
from rempart.security.keys import KeyRing, load_master_key
from rempart.security.tokens import PrincipalCache

PARIS = ZoneInfo("Europe/Paris")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keys: KeyRing
    clock: Callable[[], datetime] = utcnow
    principals: PrincipalCache = field(init=False)
    # (monotonic deadline, states): see services.channels
    channel_states: tuple[float, dict[Channel, ChannelState]] | None = field(
        default=None, init=False
    )

    def __post_init__(self) -> None:
        self.principals = PrincipalCache(self.settings.principal_cache_seconds)

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        """Days are Europe/Paris days (DESIGN §3)."""
        return self.clock().astimezone(PARIS).date()


def build_runtime(settings: Settings) -> Runtime:
    engine = create_engine(settings.database, pool_size=settings.db_pool_size)
    replica = (
        create_engine(settings.database_replica_url, pool_size=settings.db_pool_size)
        if settings.database_replica_url
        else None
    )
    return Runtime(settings, Database(engine, replica), KeyRing(load_master_key(settings)))
