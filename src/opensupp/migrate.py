"""Create or upgrade the database schema (Alembic), from the CLI or a test."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from opensupp.db import parse_url, sqlalchemy_url


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "opensupp:migrations")
    cfg.attributes["url"] = sqlalchemy_url(url)
    return cfg


def migrate(url: str) -> None:
    kind, target = parse_url(url)
    if kind == "sqlite":
        from opensupp.db import connect_sqlite

        connect_sqlite(target).close()  # creates the directory and switches the file to WAL
    command.upgrade(alembic_config(url), "head")
