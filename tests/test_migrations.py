"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from opensupp.db import sqlalchemy_url
from opensupp.models import metadata


def _differences(connection) -> list:
    return compare_metadata(MigrationContext.configure(connection), metadata)


async def _async_differences(url: str) -> list:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_differences)
    finally:
        await engine.dispose()


def test_migrated_schema_matches_the_models(database_url):
    url = sqlalchemy_url(database_url)
    if url.startswith("sqlite"):
        engine = create_engine(url)
        with engine.connect() as connection:
            assert _differences(connection) == []
        engine.dispose()
    else:
        assert asyncio.run(_async_differences(url)) == []
