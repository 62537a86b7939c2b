"""Engines and the ``Database`` handle that services open their transactions on.

SQLite is the zero-setup default (WAL, ``synchronous=FULL``, foreign keys on, ``BEGIN
IMMEDIATE`` so that concurrent writers queue instead of failing half-way); PostgreSQL through
asyncpg is production. Nothing is created at import time.

``Database.transaction()`` is the one way to open a unit of work. ``BoundDatabase`` runs every
unit of work as a savepoint of one outer transaction: the tests roll that back at the end, so
that each test starts from the same database (STYLE "per-test rollback").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


def async_url(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        return str(u.set(drivername="sqlite+aiosqlite"))
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    return url


def sync_url(url: str) -> str:
    u = make_url(url)
    if u.drivername.startswith("sqlite"):
        return str(u.set(drivername="sqlite"))
    if u.drivername.startswith("postgres"):
        return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
    cur = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        "busy_timeout=30000",
    ):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the lock up front (no deadlock on upgrade); readers use a plain BEGIN, so
    # that in WAL mode they go on while a long import holds the write lock.
    readonly = conn.get_execution_options().get("rempart_readonly", False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def create_engine(url: str, *, pool_size: int = 8) -> AsyncEngine:
    aurl = async_url(url)
    if aurl.startswith("sqlite"):
        engine = create_async_engine(aurl, poolclass=NullPool, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        aurl,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        hide_parameters=True,  # bound values never reach logs or exceptions
        connect_args={"server_settings": {"application_name": "rempart"}},
    )


class Database:
    def __init__(self, engine: AsyncEngine, replica: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.replica = replica or engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self, *, replica_ok: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read-only unit of work. ``replica_ok``: it may go to a replica (nothing it reads
        must be fresh — never a token or a revocation)."""
        engine = self.replica if replica_ok else self.engine
        async with engine.connect() as conn:
            await conn.execution_options(rempart_readonly=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """The pooled asyncpg connection itself, for the hot path (PostgreSQL only): the caller
        opens its own ``transaction()``; asyncpg prepares and caches each statement once per
        connection. The pool's reset-on-return is a no-op when SQLAlchemy started nothing."""
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            yield raw.driver_connection

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.replica is not self.engine:
            await self.replica.dispose()


class BoundDatabase(Database):
    """Every unit of work is a savepoint of ``conn``'s outer transaction (tests)."""

    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__(conn.engine)
        self.conn = conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.conn.begin_nested():
            yield self.conn

    @asynccontextmanager
    async def read(self, *, replica_ok: bool = False) -> AsyncIterator[AsyncConnection]:
        async with self.transaction() as conn:
            yield conn

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """The outer transaction's asyncpg connection: a ``transaction()`` opened on it is a
        savepoint (asyncpg knows the transaction SQLAlchemy started)."""
        await self.conn.execute(text("SELECT 1"))  # the outer transaction is under way
        raw = await self.conn.get_raw_connection()
        yield raw.driver_connection

    async def dispose(self) -> None:
        return None
