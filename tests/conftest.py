"""Test tooling: a throwaway PostgreSQL cluster for the session, per-test rollback, runtimes.

- ``pg_url``: the migrated test database on a cluster started from Debian's binaries;
- ``rt``: a ``Runtime`` whose every unit of work is a savepoint of one outer transaction that
  is rolled back after the test (STYLE: "each test in an outer transaction rolled back");
- ``sqlite_rt``: the same on a fresh SQLite file, for the zero-setup path;
- ``clock``: a controllable clock (UTC), so that dates in tests never depend on today.

A session-wide guard collects every log line written through structlog and fails the run if
any value registered as sensitive by the factories (NIRs, IBANs, names) appears in it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from rempart import logging as rlog
from rempart.config import Settings
from rempart.db.engine import BoundDatabase, Database, create_engine
from rempart.db.migrate import upgrade
from rempart.security.keys import KeyRing
from rempart.services.runtime import Runtime
from rempart.testing.postgres import Cluster
from tests import factories

MASTER_KEY = bytes(range(32))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# -- log guard -----------------------------------------------------------------------------

_LOG_LINES: list[str] = []


def _capture(_logger: object, _method: str, event: object) -> object:
    _LOG_LINES.append(str(event))
    return event


def pytest_configure(config: pytest.Config) -> None:
    rlog.EXTRA_PROCESSORS.append(_capture)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked = factories.sensitive_values_in("\n".join(_LOG_LINES))
    if leaked:
        session.exitstatus = 1
        print(f"\nSENSITIVE VALUES IN LOGS: {len(leaked)} (e.g. kind {leaked[0]})")


# -- settings and clocks ---------------------------------------------------------------------


def make_settings(tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "data_dir": tmp,
        "master_key": base64.urlsafe_b64encode(MASTER_KEY).decode(),
        "channel_cache_seconds": 0,
        "principal_cache_seconds": 0,
        "log_level": "debug",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 12, 2, 9, 30, tzinfo=UTC))


@pytest.fixture(scope="session")
def keys() -> KeyRing:
    return KeyRing(MASTER_KEY)


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    with Cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_url(pg_cluster: Cluster) -> str:
    url = pg_cluster.create_database("rempart_test")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
async def rt(
    pg_engine: AsyncEngine, tmp_path: Path, clock: Clock, keys: KeyRing
) -> AsyncIterator[Runtime]:
    async with pg_engine.connect() as conn:
        outer = await conn.begin()
        settings = make_settings(tmp_path, database_url="postgresql://unused/rollback")
        runtime = Runtime(settings, BoundDatabase(conn), keys, clock=clock)
        try:
            yield runtime
        finally:
            await outer.rollback()


# -- SQLite ----------------------------------------------------------------------------------


@pytest.fixture
async def sqlite_rt(tmp_path: Path, clock: Clock, keys: KeyRing) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path)
    upgrade(settings.database)
    db = Database(create_engine(settings.database))
    runtime = Runtime(settings, db, keys, clock=clock)
    yield runtime
    await db.dispose()


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REMPART_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True, scope="session")
def _logging(tmp_path_factory: pytest.TempPathFactory) -> None:
    rlog.configure_logging(make_settings(tmp_path_factory.mktemp("log")))
