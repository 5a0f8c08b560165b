"""Alembic environment: SQLite through the stdlib driver, PostgreSQL through asyncpg.

The URL arrives in ``config.attributes["url"]`` (see opensupp.migrate), never through the
ini interpolation, so passwords with ``%`` survive. On PostgreSQL an advisory lock makes
concurrent starts (several servers at once) migrate one after another.
"""

import asyncio

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from opensupp.models import metadata

MIGRATION_LOCK = 7_310_917_2026


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()


async def run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()


def main() -> None:
    url = context.config.attributes["url"]
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    elif url.startswith("sqlite"):
        engine = create_engine(url)
        with engine.connect() as connection:
            run(connection)
            connection.commit()
        engine.dispose()
    else:
        asyncio.run(run_async(url))


main()
