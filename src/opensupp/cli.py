"""The server's commands: serve, migrate, keys; and ``main``, the whole ``opensupp`` command
with the client's provision and export, for ``python -m opensupp``.

The ``opensupp`` console script belongs to the client distribution (``opensupp_client.cli``):
this distribution registers its commands there under the entry-point group
``opensupp.commands``, and ``--database-url`` under ``opensupp.options`` (pyproject.toml).
Server modules are imported inside the server commands, so the client commands start
without loading the database drivers and the rest of the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from opensupp import __version__

if TYPE_CHECKING:
    from opensupp.config import Settings
    from opensupp.db import Session


def _settings() -> Settings:
    from opensupp.config import BadSettings, settings_from_environment

    try:
        return settings_from_environment()
    except BadSettings as exc:  # one line per bad variable, by its name
        raise click.ClickException(str(exc)) from None


def _run_in_transaction(fn: Callable[[Session], Awaitable[Any]], *, migrate: bool = True) -> Any:
    from opensupp.db import open_database
    from opensupp.errors import DomainError

    settings = _settings()
    url = settings.resolved_database_url()

    async def run() -> Any:
        db = open_database(url, pool_size=1, connect_timeout=settings.db_connect_timeout,
                           statement_timeout=settings.db_statement_timeout)
        await db.open()
        try:
            async with db.transaction() as session:
                return await fn(session)
        finally:
            await db.close()

    if migrate:
        _migrate(url)
    try:
        return asyncio.run(run())
    except DomainError as exc:
        raise click.ClickException(exc.message) from None


def _say_when_no_key() -> None:
    """On a database without an active key the server refuses every request (401): a log line
    at startup says how to create one, rather than leaving the operator to find out."""
    import logging

    from opensupp.partners import service

    try:
        count = _run_in_transaction(service.count_active_keys, migrate=False)
    except Exception:  # noqa: BLE001  (only a hint: the server starts all the same)
        return
    if not count:
        logging.getLogger("opensupp.cli").warning(
            "no API key exists yet: every request is refused (401) until one is created with "
            "`opensupp keys create --name NAME` (it prints the key once)")


def _check_url_option(url: str) -> None:
    from opensupp.db import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        raise click.ClickException(f"--database-url: {exc}") from None


def _migrate(url: str) -> None:
    from opensupp.db import redact_url
    from opensupp.migrate import migrate

    try:
        migrate(url)
    except Exception as exc:
        raise click.ClickException(f"cannot migrate {redact_url(url)}: {exc}") from None


def _database_url(ctx: click.Context, param: click.Parameter, database_url: str | None) -> str | None:
    if database_url and ctx.get_parameter_source("database_url") is ParameterSource.COMMANDLINE:
        _check_url_option(database_url)  # (from the environment: checked with the other settings)
    if database_url:
        os.environ["OPENSUPP_DATABASE_URL"] = database_url  # worker processes inherit it
    return database_url


#: ``opensupp --database-url URL ...``: an option of the whole command, which acts through its
#: callback, so that the client's ``opensupp`` (entry point ``opensupp.options``) takes it too
database_url_option = click.Option(
    ["--database-url"],
    envvar="OPENSUPP_DATABASE_URL",
    expose_value=False,
    callback=_database_url,
    help="sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://user:password@host:5432/db "
    "[env OPENSUPP_DATABASE_URL; default: an SQLite file in OPENSUPP_DATA_DIR]",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, params=[database_url_option])
@click.version_option(__version__, prog_name="opensupp")
def main() -> None:
    """opensupp: a self-hostable live-chat provisioning server (Smartsupp partner API).

    Every setting is an OPENSUPP_* environment variable; see the README.
    """


@main.command()
def migrate() -> None:
    """Create the database or bring its schema up to date, then exit."""
    from opensupp.db import redact_url

    url = _settings().resolved_database_url()
    _migrate(url)
    click.echo(f"database {redact_url(url)} is up to date", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256), help="processes")
@click.option("--no-access-log", is_flag=True, help="no line per request [env OPENSUPP_ACCESS_LOG=0]")
def serve(host: str, port: int, workers: int, no_access_log: bool) -> None:
    """Migrate the database, then serve the API and the web pages (Ctrl-C stops)."""
    import logging

    import uvicorn

    from opensupp.db import redact_url
    from opensupp.logs import setup_logging
    from opensupp.site.secret import secret_key
    from opensupp.web.server import uvicorn_options

    if no_access_log:
        os.environ["OPENSUPP_ACCESS_LOG"] = "0"
    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    url = settings.resolved_database_url()
    _migrate(url)
    _say_when_no_key()
    try:
        secret_key(settings)  # made here, once, when it is to be generated: the workers read it
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    logging.getLogger("opensupp.server").info("opensupp %s: database %s, http://%s:%s/ (API docs: /docs)",
                                              __version__, redact_url(url), host, port)
    uvicorn.run("opensupp.app:app_factory", factory=True, host=host, port=port, workers=workers,
                **uvicorn_options(settings))


@main.command()
def worker() -> None:
    """Migrate the database, then deliver the hooks' events and, with OPENSUPP_SMTP_URL, the
    mails, and make the hourly stats reports (Ctrl-C stops); to run beside `opensupp serve` with
    OPENSUPP_OUTBOX_WORKER=0, or as more delivering processes."""
    import logging

    from opensupp.db import open_database, redact_url
    from opensupp.logs import setup_logging
    from opensupp.mail.smtp import mailer_for
    from opensupp.outbox.sending import parse_networks
    from opensupp.outbox.stats import StatsReport
    from opensupp.outbox.worker import Worker

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    url = settings.resolved_database_url()
    _migrate(url)

    async def run() -> None:
        db = open_database(url, pool_size=2, connect_timeout=settings.db_connect_timeout,
                           statement_timeout=settings.db_statement_timeout)
        await db.open()
        try:
            await asyncio.gather(
                Worker(db, networks=parse_networks(settings.hook_allow_networks),
                       lease=settings.outbox_lease_seconds, keep_days=settings.delivery_log_days,
                       mailer=mailer_for(settings)).loop(),
                StatsReport(db).loop(),  # once per hook and hour, however many processes make it
            )
        finally:
            await db.close()

    mails = "and mails" if settings.smtp_url else "(mails wait: no OPENSUPP_SMTP_URL)"
    logging.getLogger("opensupp.outbox").info("opensupp %s: delivering hooks %s from %s", __version__, mails,
                                              redact_url(url))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@main.group()
def mail() -> None:
    """Mails in the outbox (offline messages, transcripts): sent by a worker when OPENSUPP_SMTP_URL is set."""


MAIL_STATUSES = {"pending": "pending", "sent": "delivered", "failed": "failed"}


@mail.command("list")
@click.option("--status", type=click.Choice(list(MAIL_STATUSES)), help="only the mails with this status")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per mail, with its text")
def mail_list(status: str | None, as_json: bool) -> None:
    """List mails, oldest first: id, to, subject, status, attempts, created."""
    from opensupp.mail import service
    from opensupp.mail.compose import render
    from opensupp.timeutil import iso

    found = _run_in_transaction(lambda session: service.list_mails(session, status=MAIL_STATUSES.get(status or "")))
    shown = {value: name for name, value in MAIL_STATUSES.items()}
    public_url = _settings().public_url
    rows = []
    for d in found:
        payload = json.loads(d.payload)
        rendered = render(payload, public_url=public_url)
        rows.append({"id": d.id, "to": payload["to"], "subject": rendered.subject,
                     "status": shown.get(d.status, d.status), "attempts": d.attempts, "created": iso(d.created_at),
                     "last_error": d.last_error, "text": rendered.text})
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    _table(("ID", "TO", "SUBJECT", "STATUS", "ATTEMPTS", "CREATED"),
           [(str(r["id"]), r["to"], r["subject"], r["status"], str(r["attempts"]), r["created"]) for r in rows])


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@main.group()
def keys() -> None:
    """Partners' API keys (stored hashed; a key is shown once, when created)."""


@keys.command("create")
@click.option("--name", required=True, help="name of the key, and of the new partner")
@click.option("--partner", help="add the key to this existing partner (id or name) instead")
@click.option("--if-none", is_flag=True, help="do nothing when any active key exists (first start)")
def keys_create(name: str, partner: str | None, if_none: bool) -> None:
    """Create a key (and a partner); print the key alone on the last line of stdout."""
    from opensupp.partners import service

    async def create(session: Session) -> tuple[int, str] | None:
        if if_none and await service.count_active_keys(session):
            return None
        if partner:
            partner_id = await service.find_partner(session, ref=partner)
        else:
            partner_id = await service.create_partner(session, name=name)
        return partner_id, await service.create_key(session, partner_id=partner_id, name=name)

    created = _run_in_transaction(create)
    if created is None:
        click.echo("an active key exists already; nothing created", err=True)
        return
    partner_id, key = created
    click.echo(f"Created key {key[:12]}... for partner {partner_id}. It is stored hashed and cannot be shown again:",
               err=True)
    click.echo(key)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per key")
def keys_list(as_json: bool) -> None:
    """List keys: id, partner, name, prefix, created, last used, revoked."""
    from opensupp.partners import service
    from opensupp.timeutil import iso

    rows = _run_in_transaction(service.list_keys)
    if as_json:
        for k in rows:
            click.echo(json.dumps({
                "id": k.id, "partner_id": k.partner_id, "partner": k.partner_name, "name": k.name,
                "prefix": k.prefix, "created": iso(k.created_at),
                "last_used": iso(k.last_used_at) if k.last_used_at else None,
                "revoked": iso(k.revoked_at) if k.revoked_at else None,
            }))
        return
    header = ("ID", "PARTNER", "NAME", "PREFIX", "CREATED", "LAST USED", "REVOKED")
    table = [header] + [
        (str(k.id), f"{k.partner_name} ({k.partner_id})", k.name, k.prefix, iso(k.created_at),
         iso(k.last_used_at) if k.last_used_at else "never", iso(k.revoked_at) if k.revoked_at else "-")
        for k in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke KEY, given by its id or its prefix as `keys list` shows them, or as the whole key."""
    from opensupp.errors import NotFound
    from opensupp.partners import service

    async def revoke(session: Session) -> Any:
        ref = key
        if key.startswith(service.KEY_PREFIX) and len(key) > service.PREFIX_LENGTH:  # the whole key
            found = await service.authenticate(session, key_hash=service.hash_key(key))
            if found is None:  # (the key itself is never repeated: it is a secret)
                raise NotFound(f"No active key {key[:service.PREFIX_LENGTH]}... matches the key given.")
            ref = str(found.key_id)
        return await service.revoke_key(session, ref=ref)

    info = _run_in_transaction(revoke)
    ttl = _settings().key_cache_seconds
    click.echo(f"revoked key {info.id} ({info.prefix}...) of partner {info.partner_name}; "
               f"running servers refuse it within {ttl:g} s")


@main.group()
def xmpp() -> None:
    """Agents chat from XMPP clients (uid<ID>@<domain>) through Debian's Prosody (README: "XMPP")."""


@xmpp.command("setup")
@click.option("--domain", required=True, help="the XMPP domain agents log in at: uid<ID>@<domain>")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/prosody/opensupp"),
              show_default=True, help="where Prosody's config and opensupp's module are written")
@click.option("--opensupp-url", default="http://127.0.0.1:8000", show_default=True,
              help="this server as Prosody reaches it (on this machine: the check is refused from elsewhere)")
@click.option("--c2s-port", default=5222, show_default=True, type=click.IntRange(1, 65535),
              help="the port XMPP clients connect to")
@click.option("--c2s-interface", "c2s_interfaces", multiple=True, default=("*",), show_default=True,
              help="addresses Prosody listens on for clients (repeatable)")
@click.option("--component-port", default=5347, show_default=True, type=click.IntRange(1, 65535),
              help="the port opensupp's component connects to (on 127.0.0.1)")
@click.option("--data-path", type=click.Path(file_okay=False, path_type=Path), default=Path("/var/lib/prosody"),
              show_default=True, help="Prosody's data (rosters, messages kept for offline agents)")
@click.option("--certificate", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS certificate (PEM, full chain) [default: /etc/prosody/certs/<domain>.crt]")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="its private key [default: /etc/prosody/certs/<domain>.key]")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Prosody's log [default: the console]")
@click.option("--pidfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="[default: <data-path>/prosody.pid]")
@click.option("--data-dir", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="opensupp's data directory, where xmpp.json goes (sudo drops OPENSUPP_DATA_DIR) "
              "[default: OPENSUPP_DATA_DIR's]")
@click.option("--owner", default=None, help="the user who runs opensupp, to own xmpp.json (when run as root)")
def xmpp_setup(domain: str, out: Path, opensupp_url: str, c2s_port: int, c2s_interfaces: tuple[str, ...],
               component_port: int, data_path: Path, certificate: Path | None, key: Path | None,
               log_file: Path | None, pidfile: Path | None, data_dir: Path | None, owner: str | None) -> None:
    """Write Prosody's config, its authentication module and opensupp's side of the setup (new secrets)."""
    from opensupp.xmpp.config import SetupError, check_domain, write_setup

    settings = _settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir.absolute(), "xmpp_config": None})
    try:
        prosody, module, mine = write_setup(
            settings, domain=domain, out=out, opensupp_url=opensupp_url, c2s_port=c2s_port,
            c2s_interfaces=c2s_interfaces, component_port=component_port, data_path=data_path, pidfile=pidfile,
            log_file=log_file, certificate=certificate, key=key, owner=owner)
    except SetupError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {exc.filename}: {exc.strerror}") from None
    domain = check_domain(domain)
    click.echo(f"wrote {prosody} (Prosody's config; it holds the secrets: mode 0640, group prosody)")
    click.echo(f"wrote {module} (the authentication module opensupp ships)")
    click.echo(f"wrote {mine} (opensupp's side, mode 0600)")
    click.echo("next:")
    click.echo(f"  1. a TLS certificate for {domain} where the config says (README: \"XMPP\")")
    click.echo(f"  2. prosody --config {prosody}   (as the prosody user; it must not run as root)")
    click.echo("  3. restart `opensupp serve`: it connects its component to Prosody")
    click.echo(f"  agents then log in as uid<ID>@{domain} with their opensupp password")


@xmpp.command("run")
def xmpp_run() -> None:
    """Run the XMPP bridge in this process (beside `opensupp serve` with OPENSUPP_XMPP=0); its
    events reach the other processes through PostgreSQL or Redis."""
    import logging

    from opensupp.chat.core import DatabaseCore
    from opensupp.chat.hub import hub_for
    from opensupp.chat.transport import ChatTransport
    from opensupp.db import open_database, parse_url
    from opensupp.logs import setup_logging
    from opensupp.site.secret import secret_key
    from opensupp.xmpp.bridge import Bridge
    from opensupp.xmpp.config import SetupError, config_path, load_config

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format)
    try:
        config = load_config(settings)
    except SetupError as exc:
        raise click.ClickException(str(exc)) from None
    if config is None:
        raise click.ClickException(f"no XMPP setup at {config_path(settings)}: run `opensupp xmpp setup` first")
    url = settings.resolved_database_url()
    if parse_url(url)[0] != "postgresql" and not settings.redis_url:
        raise click.ClickException("a bridge in its own process needs the chat's events from the server's processes: "
                                   "PostgreSQL (OPENSUPP_DATABASE_URL) or Redis (OPENSUPP_REDIS_URL); with SQLite, "
                                   "`opensupp serve` runs the bridge itself")
    _migrate(url)

    async def run() -> None:
        db = open_database(url, pool_size=2, connect_timeout=settings.db_connect_timeout,
                           statement_timeout=settings.db_statement_timeout)
        await db.open()
        transport = ChatTransport(DatabaseCore(db), secret_key(settings),
                                  lambda: hub_for(url, settings.redis_url))
        try:
            await Bridge(config, db, transport).run_logged()
        finally:
            await transport.close()
            await db.close()

    logging.getLogger("opensupp.xmpp").info("opensupp %s: XMPP bridge for %s", __version__, config.domain)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


from opensupp_client.cli import add_plugins  # noqa: E402  (the client's commands, server-free)
from opensupp_client.cli import cli as _client_cli  # noqa: E402

for _command in _client_cli.commands.values():
    main.add_command(_command)
add_plugins(main)  # what other distributions add (this one's commands are there already)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

