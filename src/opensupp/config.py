"""One typed Settings object, read from OPENSUPP_* environment variables.

Build it once (``Settings()``) at the edge and pass it in; tests build their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("opensupp", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPENSUPP_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="sqlite:///path/to/file.db or postgresql://user@host:port/db; "
        "unset: an SQLite file in data_dir",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="how long a process trusts a looked-up API key; a revoked key "
        "stops working within this time (0: look it up on every request)",
    )
    rate_limit: float = Field(
        default=0, ge=0, description="requests per second per API key and process; 0: off"
    )
    rate_burst: int = Field(default=0, ge=0, description="bucket size; 0: 2 x rate_limit")
    db_pool_size: int = Field(default=10, ge=1, le=200, description="PostgreSQL connections per process")
    db_connect_timeout: float = Field(
        default=5.0, gt=0, le=300,
        description="PostgreSQL: seconds a request waits for its turn at the pool's connections, and "
        "then to open a new one, before it answers 503",
    )
    db_statement_timeout: float = Field(
        default=5.0, gt=0, le=3600,
        description="PostgreSQL: seconds one SQL statement may take before the request answers 503 "
        "(a hung server: SIGSTOP, a dead network path)",
    )
    idempotency_hours: float = Field(default=24, gt=0)
    trigger_cache_mb: int = Field(
        default=64, ge=1, le=65536,
        description="memory for the compiled triggers of the accounts evaluated lately, per process "
        "(least recently used first out)",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'opensupp.db'}"
