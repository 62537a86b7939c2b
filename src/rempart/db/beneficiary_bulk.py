"""Bulk writes of a beneficiary import, one implementation per database, in the import's
transaction (the caller's connection; nothing here commits).

An import run gets a *stage*: a temporary table of the cards the file contains (line number and
card index, nothing else), from which the duplicates inside the file and the people who
disappeared from it are found in one set-based statement each, then dropped.

- **PostgreSQL**: rows travel by ``COPY`` on the asyncpg connection under SQLAlchemy's — the
  cards into the stage, new people straight into ``beneficiary``, changed people into a second
  temporary table merged by one ``UPDATE … FROM`` at the end — and existing people are read by
  ``card_bi = ANY($1)``. The stage is analysed before the set-based queries (the planner has no
  statistics on a table filled in this transaction).
- **SQLite**: prepared ``executemany`` of plain tuples (no per-row statement building), the
  stage indexed once it is full.

Rows come in as tuples in ``NEW_COLUMNS`` / ``CHANGED_COLUMNS`` order, with Python values (UUID,
date, aware datetime, bytes); encryption happened before (``services.beneficiaries``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    and_,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from rempart.db.tables import beneficiary

NEW_COLUMNS = (
    "id",
    "ocam_id",
    "card_bi",
    "adherent_bi",
    "nir_bi",
    "adherent_enc",
    "nir_enc",
    "birth_date_enc",
    "last_name_enc",
    "first_name_enc",
    "rank",
    "contract_id",
    "valid_from",
    "valid_to",
    "closed_on",
    "fingerprint",
    "key_version",
    "is_canary",
    "created_at",
    "updated_at",
)
# What a changed row rewrites (its id, card, adherent index, creation and canary mark stay).
CHANGED_COLUMNS = (
    "id",
    "nir_bi",
    "adherent_enc",
    "nir_enc",
    "birth_date_enc",
    "last_name_enc",
    "first_name_enc",
    "rank",
    "contract_id",
    "valid_from",
    "valid_to",
    "closed_on",
    "fingerprint",
    "key_version",
    "updated_at",
)

CACHE_KIB = 128 * 1024  # SQLite page cache of an import's connection
Existing = tuple[Any, bytes, bool]  # (id as the driver gives it, fingerprint, open)


class Stage:
    """The temporary tables of one import run, and the set-based statements over them."""

    def __init__(self, conn: AsyncConnection, run_hex: str) -> None:
        self.conn = conn
        self.name = f"import_seen_{run_hex}"
        self.seen = Table(
            self.name,
            MetaData(),
            Column("line_no", Integer, nullable=False),
            Column("card_bi", LargeBinary, nullable=False),
            prefixes=["TEMPORARY"],
        )

    @staticmethod
    async def open(conn: AsyncConnection, run_hex: str) -> Stage:
        stage: Stage = (
            _PostgresStage(conn, run_hex)
            if conn.dialect.name == "postgresql"
            else _SqliteStage(conn, run_hex)
        )
        await conn.run_sync(lambda c: stage.seen.create(c))
        await stage._created()
        return stage

    async def _created(self) -> None:
        return None

    async def existing(self, cards: Sequence[bytes]) -> dict[bytes, Existing]:
        raise NotImplementedError

    async def write(
        self,
        seen: Sequence[tuple[int, bytes]],
        new: Sequence[tuple[Any, ...]],
        changed: Sequence[tuple[Any, ...]],
    ) -> None:
        raise NotImplementedError

    def row_id(self, driver_id: Any) -> UUID:
        """The UUID of an ``existing`` row's id (for the associated data of its fields)."""
        return driver_id if isinstance(driver_id, UUID) else UUID(driver_id)

    async def scanned(self) -> None:
        """Every row is in: prepare the stage for the set-based statements."""

    async def duplicates(self) -> list[tuple[int, int]]:
        """(line, first line with the same card) for every repeated card, in file order: one
        sort, no join."""
        seen = self.seen.c
        ranked = select(
            seen.line_no,
            func.min(seen.line_no).over(partition_by=seen.card_bi).label("first_line"),
        ).subquery()
        rows = await self.conn.execute(
            select(ranked.c.line_no, ranked.c.first_line)
            .where(ranked.c.line_no > ranked.c.first_line)
            .order_by(ranked.c.line_no)
        )
        return [(r.line_no, r.first_line) for r in rows]

    def _open_rights(self, ocam_id: UUID) -> tuple[Any, ...]:
        return (
            beneficiary.c.ocam_id == ocam_id,
            beneficiary.c.is_canary.is_(False),
            beneficiary.c.closed_on.is_(None),
        )

    def _absent(self) -> Any:
        return ~exists().where(self.seen.c.card_bi == beneficiary.c.card_bi)

    async def closing_counts(self, ocam_id: UUID) -> tuple[int, int]:
        """(open rights of the OCAM, how many of them the file leaves out); canaries apart.
        Two counts, each its own statement: a NOT EXISTS inside an aggregate's FILTER would
        run once per person instead of as one anti-join."""
        open_rights = self._open_rights(ocam_id)
        count = select(func.count()).select_from(beneficiary)
        row = (
            await self.conn.execute(
                select(
                    count.where(*open_rights).scalar_subquery(),
                    count.where(*open_rights, self._absent()).scalar_subquery(),
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def close_absent(self, ocam_id: UUID, *, on: date, now: datetime) -> int:
        result = await self.conn.execute(
            update(beneficiary)
            .where(and_(*self._open_rights(ocam_id), self._absent()))
            .values(closed_on=on, updated_at=now)
        )
        return result.rowcount or 0

    async def merge(self) -> None:
        """Apply the changed rows kept aside during the scan (PostgreSQL)."""

    async def drop(self) -> None:
        await self.conn.execute(text(f"DROP TABLE {self.name}"))


class _PostgresStage(Stage):
    def __init__(self, conn: AsyncConnection, run_hex: str) -> None:
        super().__init__(conn, run_hex)
        self.changes = f"import_changed_{run_hex}"
        self.changed_rows = 0
        self.apg: Any = None

    async def _created(self) -> None:
        # The stage's CREATE went through SQLAlchemy, so the transaction is under way on the
        # asyncpg connection: everything below is part of it.
        await self.conn.execute(
            text(
                f"CREATE TEMPORARY TABLE {self.changes} ON COMMIT DROP AS "
                f"SELECT {', '.join(CHANGED_COLUMNS)} FROM beneficiary WITH NO DATA"
            )
        )
        self.apg = (await self.conn.get_raw_connection()).driver_connection

    async def existing(self, cards: Sequence[bytes]) -> dict[bytes, Existing]:
        rows = await self.apg.fetch(
            "SELECT card_bi, id, fingerprint, closed_on IS NULL FROM beneficiary "
            "WHERE card_bi = ANY($1::bytea[])",
            cards,
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    async def write(
        self,
        seen: Sequence[tuple[int, bytes]],
        new: Sequence[tuple[Any, ...]],
        changed: Sequence[tuple[Any, ...]],
    ) -> None:
        if seen:
            await self.apg.copy_records_to_table(
                self.name, records=seen, columns=("line_no", "card_bi")
            )
        if new:
            await self.apg.copy_records_to_table("beneficiary", records=new, columns=NEW_COLUMNS)
        if changed:
            self.changed_rows += len(changed)
            await self.apg.copy_records_to_table(
                self.changes, records=changed, columns=CHANGED_COLUMNS
            )

    async def scanned(self) -> None:
        # Neither the stage nor, often, the rows just written have statistics yet: a planner
        # that guesses "one row" runs the anti-joins as nested loops over a million rows each
        # way. Hash joins are right for every statement below at any size.
        await self.conn.execute(text(f"ANALYZE {self.name}"))
        await self.conn.execute(text("SET LOCAL enable_nestloop = off"))

    async def merge(self) -> None:
        if not self.changed_rows:
            return
        assignments = ", ".join(f"{c} = c.{c}" for c in CHANGED_COLUMNS if c != "id")
        await self.conn.execute(
            text(f"UPDATE beneficiary b SET {assignments} FROM {self.changes} c WHERE b.id = c.id")
        )

    async def drop(self) -> None:
        await super().drop()
        await self.conn.execute(text(f"DROP TABLE {self.changes}"))
        await self.conn.execute(text("SET LOCAL enable_nestloop TO DEFAULT"))


class _SqliteStage(Stage):
    def __init__(self, conn: AsyncConnection, run_hex: str) -> None:
        super().__init__(conn, run_hex)
        dialect = conn.dialect
        self._convert_new = _converters(NEW_COLUMNS, dialect)
        self._convert_changed = _converters(CHANGED_COLUMNS, dialect)
        self._insert_seen = f"INSERT INTO {self.name} (line_no, card_bi) VALUES (?, ?)"
        self._insert_new = (
            f"INSERT INTO beneficiary ({', '.join(NEW_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in NEW_COLUMNS)})"
        )
        sets = ", ".join(f"{c} = ?" for c in CHANGED_COLUMNS[1:])
        self._update = f"UPDATE beneficiary SET {sets} WHERE id = ?"

    async def _created(self) -> None:
        # SQLite's default page cache is 2 MiB: a million random card-index reads and inserts
        # into four indexes would go to the OS for most pages. A bounded cache for this
        # connection only (NullPool: it closes with the import).
        for schema in ("main", "temp"):
            await self.conn.exec_driver_sql(f"PRAGMA {schema}.cache_size = -{CACHE_KIB}")

    async def existing(self, cards: Sequence[bytes]) -> dict[bytes, Existing]:
        if not cards:
            return {}
        rows = await self.conn.exec_driver_sql(
            "SELECT card_bi, id, fingerprint, closed_on IS NULL FROM beneficiary "
            f"WHERE card_bi IN ({', '.join('?' for _ in cards)})",
            tuple(cards),
        )
        found: Any = rows.all()  # (card_bi, id, fingerprint, open) each
        return {r[0]: (r[1], r[2], bool(r[3])) for r in found}

    async def write(
        self,
        seen: Sequence[tuple[int, bytes]],
        new: Sequence[tuple[Any, ...]],
        changed: Sequence[tuple[Any, ...]],
    ) -> None:
        if seen:
            await self.conn.exec_driver_sql(self._insert_seen, list(seen))
        if new:
            await self.conn.exec_driver_sql(self._insert_new, [self._convert_new(r) for r in new])
        if changed:
            await self.conn.exec_driver_sql(
                self._update, [(*r[1:], r[0]) for r in map(self._convert_changed, changed)]
            )

    async def scanned(self) -> None:
        await self.conn.execute(
            text(f"CREATE INDEX ix_{self.name} ON {self.name} (card_bi, line_no)")
        )


def _converters(
    columns: Sequence[str], dialect: Any
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A tuple of Python values → the tuple SQLAlchemy would bind for these columns (UUIDs as
    hex, dates as ISO text …), with the columns' own bind processors. Bytes, integers and
    booleans go to sqlite3 as they are, and a value equal to the previous one in its column
    (the import's timestamp, its OCAM) reuses its converted form."""
    active = []
    for i, c in enumerate(columns):
        column_type = beneficiary.c[c].type
        if isinstance(column_type, LargeBinary | Integer | SmallInteger | Boolean):
            continue
        processor = column_type._cached_bind_processor(dialect)
        if processor is not None:
            active.append((i, processor))

    last: dict[int, tuple[Any, Any]] = {}

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(row)
        for i, p in active:
            value = out[i]
            if value is None:
                continue
            seen = last.get(i)
            if seen is not None and seen[0] is value:
                out[i] = seen[1]
            else:
                out[i] = p(value)
                last[i] = (value, out[i])
        return tuple(out)

    return convert


__all__ = ["CHANGED_COLUMNS", "NEW_COLUMNS", "Existing", "Stage"]
