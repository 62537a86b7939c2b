"""Alembic environment: sync drivers (sqlite3, psycopg), the URL set by ``db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from rempart.db.tables import metadata

config = context.config


def run() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
