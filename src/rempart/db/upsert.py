"""``INSERT … ON CONFLICT`` for both dialects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def insert_for(dialect: str, table: Table) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def upsert(
    dialect: str,
    table: Table,
    values: Mapping[str, Any],
    *,
    keys: Sequence[str],
    update: Mapping[str, Any],
) -> Insert:
    stmt = insert_for(dialect, table).values(**values)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=dict(update))  # type: ignore[no-any-return]


def insert_ignore(dialect: str, table: Table, *, keys: Sequence[str]) -> Insert:
    return insert_for(dialect, table).on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[no-any-return]
