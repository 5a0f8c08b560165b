"""One typed Settings object, read from OPENSUPP_* environment variables.

Build it once at the edge (``settings_from_environment()``) and pass it in; tests build
their own (``Settings(...)``).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from opensupp.db import parse_url


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("opensupp", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPENSUPP_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="sqlite:///relative.db, sqlite:////absolute/path.db or "
        "postgresql://user:password@host:5432/db; unset: an SQLite file in data_dir",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    redis_url: str | None = Field(
        default=None,
        description="redis://host:6379/0: the chat's events between server processes go through Redis "
        "pub/sub; unset: PostgreSQL's LISTEN/NOTIFY when the database is PostgreSQL, else in-process",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one line per record (time, level, logger: message); json: one JSON object per "
        "line (time, level, logger, message, request_id and the record's extra fields)",
    )
    access_log: bool = True
    metrics: bool = Field(
        default=True,
        description="serve Prometheus metrics at /metrics (no apiKey needed: keep it off the public "
        "internet at the proxy, or turn it off)",
    )
    secret_key: SecretStr | None = Field(
        default=None, min_length=32,
        description="signs the web pages' session cookies; unset: generated once and kept in "
        "<data_dir>/secret_key (mode 0600). Every worker and restart must share it",
    )
    test_routes: bool = Field(
        default=False,
        description="mount the routes only tests use (/_test/...: a websocket echo, a form); never in production",
    )
    header_timeout: float = Field(
        default=10, gt=0, le=3600,
        description="seconds a client has to send a whole request head (from the connection, or "
        "from the previous response); then 408 and the connection is closed",
    )
    body_timeout: float = Field(
        default=30, gt=0, le=3600,
        description="seconds a client has to send a whole request body once its head is in; then 408",
    )
    keepalive_timeout: float = Field(
        default=5, gt=0, le=3600, description="seconds an idle keep-alive connection stays open"
    )
    max_connections: int = Field(
        default=2048, ge=1,
        description="open connections per process; more are answered 503 and closed",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        description="proxies whose X-Forwarded-For gives the client's address (comma-separated "
        "addresses or networks, * for any)",
    )
    key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="how long a process trusts a looked-up API key; a revoked key "
        "stops working within this time (0: look it up on every request)",
    )
    key_miss_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="how long a process remembers that an API key was not found, so a bad key "
        "repeated costs no query; a key created meanwhile works once this has passed (0: off)",
    )
    auth_failures_per_minute: int = Field(
        default=30,
        ge=0,
        description="failed authentications (unknown or revoked keys) allowed per client address "
        "and process, refilled evenly over a minute; over it: 429 with Retry-After (0: no limit)",
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
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="the address visitors' browsers reach this server at (scheme, host, optional port and "
        "path; no query): the chat code's loader.js URL is made from it",
    )
    fast_login: bool = Field(
        default=True,
        description="the guide's fast login (/sign/in?apiKey=&uid=): it puts the partner's API key in a browser; "
        "0 turns it off (one-time links, POST /accounts/:aid/users/:uid/login-link, keep working)",
    )
    login_link_seconds: int = Field(
        default=60, ge=5, le=3600,
        description="seconds a one-time sign-in link (POST /accounts/:aid/users/:uid/login-link) stays valid",
    )
    chat_retention_days: int = Field(
        default=0, ge=0, le=36500,
        description="days a closed conversation (and its messages), a page view, and a visitor with nothing "
        "left are kept; 0: kept forever",
    )
    hook_allow_networks: str = Field(
        default="",
        description="CIDRs (comma-separated) hooks may be delivered to although they are internal (loopback, "
        "private, ...), like 10.0.0.0/8; empty: none",
    )
    outbox_lease_seconds: int = Field(
        default=120, ge=1, le=3600,
        description="how long a worker's claim on a delivery holds: a worker that dies mid-delivery leaves it "
        "to the others after this; keep it above the 60 s an attempt may take (30 s a hook's, 60 s a mail's)",
    )
    delivery_log_days: int = Field(
        default=30, ge=2, le=3650,
        description="days a delivered or failed delivery stays in a hook's log (GET .../deliveries/) before "
        "the worker deletes it; pending ones are kept until they end",
    )
    outbox_worker: bool = Field(
        default=True,
        description="deliver hooks from this server's processes; 0: only `opensupp worker` processes deliver",
    )
    xmpp: bool = Field(
        default=True,
        description="run the XMPP bridge in this server's processes when `opensupp xmpp setup` wrote "
        "<data_dir>/xmpp.json (or OPENSUPP_XMPP_CONFIG names one); 0: only `opensupp xmpp run` does",
    )
    xmpp_config: Path | None = Field(
        default=None,
        description="the XMPP bridge's settings file `opensupp xmpp setup` writes; unset: <data_dir>/xmpp.json",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="where mail is sent: smtp://host[:25] (STARTTLS when the server offers it; no user or "
        "password: such a URL is refused, as a stripped STARTTLS would show them), "
        "smtp+starttls://[user:password@]host[:587] (STARTTLS required) or smtps://...[:465] (TLS from the "
        "start); user and password percent-encoded. Unset: mails (offline messages, transcripts) wait in the outbox "
        "(`opensupp mail list` shows them)",
    )
    mail_from: str | None = Field(
        default=None,
        description="the From of every mail, like `Acme Chat <chat@acme.example>`; unset: opensupp@ the host of "
        "OPENSUPP_PUBLIC_URL (opensupp@localhost for an IP address or localhost). A visitor is never the From, "
        "only the Reply-To",
    )
    trigger_cache_mb: int = Field(
        default=64, ge=1, le=65536,
        description="memory for the compiled triggers of the accounts evaluated lately, per process "
        "(least recently used first out)",
    )

    @field_validator("database_url")
    @classmethod
    def _parsable(cls, url: str | None) -> str | None:
        """A malformed URL is refused here, so every entry point refuses it (the CLI, uvicorn's
        workers, a test) before anything is written anywhere."""
        if url is not None:
            parse_url(url)
        return url

    @field_validator("hook_allow_networks")
    @classmethod
    def _networks(cls, text: str) -> str:
        from opensupp.outbox.sending import parse_networks

        try:
            parse_networks(text)
        except ValueError as exc:
            raise ValueError(f"must be CIDRs separated by commas, like 10.0.0.0/8,127.0.0.1/32 ({exc})") from None
        return text

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, url: SecretStr | None) -> SecretStr | None:
        from opensupp.mail.smtp import parse_smtp_url

        if url is not None:
            parse_smtp_url(url.get_secret_value())  # ValueError says what is wrong, never the password
        return url

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, text: str | None) -> str | None:
        from opensupp.mail.compose import check_address

        return None if text is None else check_address(text)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str) -> str:
        """An http(s) URL with a host and nothing after its path, kept without a trailing slash."""
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, like https://chat.example.com")
        if parts.query or parts.fragment or parts.username is not None:
            raise ValueError("must have no query, fragment or user, like https://chat.example.com")
        try:
            parts.port  # noqa: B018  # raises for a port that is not a number from 0 to 65535
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc.lower(), parts.path.rstrip("/"), "", ""))

    def resolved_mail_from(self) -> str:
        """``mail_from``, or opensupp@ the public URL's host (localhost when that is an address)."""
        if self.mail_from:
            return self.mail_from
        host = urllib.parse.urlsplit(self.public_url).hostname or "localhost"
        try:
            ipaddress.ip_address(host)
            host = "localhost"
        except ValueError:
            pass
        return f"opensupp@{host}"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'opensupp.db'}"


class BadSettings(ValueError):
    """OPENSUPP_* variables that are not valid: one line each, by its environment name."""


_ACCEPTED = {
    "float_parsing": "must be a number",
    "int_parsing": "must be a whole number",
    "bool_parsing": "must be 1 or 0 (or true/false, yes/no, on/off)",
}


def settings_from_environment() -> Settings:
    """``Settings()`` from the environment; BadSettings says which variables are bad and
    what each accepts. The values are not repeated: a database URL holds a password."""
    try:
        return Settings()
    except ValidationError as exc:
        raise BadSettings("\n".join(_explain(error) for error in exc.errors())) from None


def _explain(error: Any) -> str:
    name = "OPENSUPP_" + "_".join(map(str, error["loc"])).upper()
    if error["type"] == "value_error":
        return f"{name}: {error['ctx']['error']}"
    return f"{name}: {_ACCEPTED.get(error['type']) or error['msg'].replace('Input should be', 'must be')}"
