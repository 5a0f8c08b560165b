"""``opensupp provision`` and ``opensupp export``: the partner side of the API, from a shell.

They use only the SDK (``opensupp.client``), never the server's modules. The server's
``opensupp`` command registers them; ``python -m opensupp.client.cli`` runs them where
only the client is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from opensupp.client import provision as engine
from opensupp.client._client import MAX_BATCH

API_OPTIONS_HELP = {
    "url": "The API's base URL, e.g. https://chat.example.com [env OPENSUPP_API_URL].",
    "key": "The partner's API key (osk_...) [env OPENSUPP_API_KEY]. Prefer the environment "
           "variable: a key on the command line shows in the process list.",
}


def _api_options(required: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
                          help="Seconds to wait for one answer before retrying it.")(fn)
        fn = click.option("--max-retries", default=10, show_default=True, type=click.IntRange(0, 100),
                          help="How often one request is retried after a connection error, a timeout, 408, 429 "
                               "(honouring Retry-After) or a 5xx, with exponential backoff and jitter (0.5 s "
                               "doubling up to 8 s, each wait 50 to 100% of that): the default waits at least "
                               "25 s in all, so it rides out a server restart. "
                               "Creates are retried with the same Idempotency-Key, so never done twice.")(fn)
        fn = click.option("--batch-size", default=MAX_BATCH, show_default=True, type=click.IntRange(1, MAX_BATCH),
                          help="Up to this many calls travel in one POST /batch request, each still answered, "
                               "retried and made idempotent on its own; 1 sends every call alone (a server "
                               "without /batch gets single calls anyway).")(fn)
        fn = click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 256),
                          help="How many HTTP requests are in flight at once, each over its own connection. "
                               "Rows (provision) or accounts (export) in flight: this times --batch-size.")(fn)
        extra = "" if required else " Required, except with --check."
        fn = click.option("--api-key", envvar="OPENSUPP_API_KEY", required=required,
                          help=API_OPTIONS_HELP["key"] + extra)(fn)
        fn = click.option("--api-url", envvar="OPENSUPP_API_URL", required=required,
                          help=API_OPTIONS_HELP["url"] + extra)(fn)
        return fn

    return decorate


def _client(api_url: str, api_key: str, *, concurrency: int, batch_size: int, timeout: float,
            max_retries: int) -> Any:
    from opensupp.client import AsyncClient
    from opensupp.client._client import async_http

    if batch_size > 1:
        # A request carries up to batch_size calls, so its transport's cost hardly counts:
        # httpx's own, without importing aiohttp (a fifth of a second of start-up). For an
        # http:// URL no TLS is ever used, so no CA bundle is loaded for it either.
        import httpx

        limits = httpx.Limits(max_connections=2 * concurrency, max_keepalive_connections=2 * concurrency)
        http = httpx.AsyncClient(timeout=timeout, limits=limits, verify=api_url.startswith("https://"))
    else:
        # a call per request: aiohttp's transport, a connection per request in flight and spares
        http = async_http(timeout, connections=2 * concurrency)
    try:
        return AsyncClient(api_url, api_key, max_retries=max_retries, http_client=http, batch_size=batch_size,
                           batch_concurrency=concurrency)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-url/--api-key") from None


def _run(main: Any) -> Any:
    """asyncio.run, on uvloop when it is installed (the server's dependencies bring it): the
    client's CPU per request is what limits the rate against a local server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _cancel_on_sigterm(task: asyncio.Task[Any]) -> None:
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Windows
        pass


PROVISION_HELP = """Create every account in FILE, with everything under it, through the API.

\b
FILE is CSV or NDJSON, told by its extension (.csv; .ndjson or .jsonl) or --format.
CSV: a header line, then one account per row. Columns: title, lang (both required),
and email, fullname, password for the account's first admin (role admin); leave email
empty for an account without a user. Example:
    title,lang,email,fullname,password
    Acme,en,jane@acme.example,Jane Doe,s3cret-pass
NDJSON: one account per line, everything in the API's shapes (docs/API.md):
    {"title": "Acme", "lang": "en",
     "users": [{"email", "fullname", "password", "role", "nickname", "avatar", "note", "lang"}],
     "triggers": [{"name", "actions", "conditions", "active", "description", "event",
                   "only_once", "constraints"}],
     "officehours": {"active", "days", "timezone", "config"},
     "offlineemails": ["a@acme.example" or {"email": "a@acme.example"}],
     "hooks": [{"name", "config": {"url", "secret", "events"}, "active"}]}
(one line each; `opensupp export` writes this format.)

\b
First the whole file is checked, before any request: JSON on every line, required
fields, known keys, the obvious types, lang codes, e-mail syntax, e-mails repeated in
the file. Every bad row is reported as FILE:LINE: field: problem, and nothing is sent.
--check stops after the check.

\b
Users without a password (an export has none) need --default-password (all get that
one) or --generate-passwords (each gets a random 20-character one, written to the
journal before the user is created and to the results file, both readable by you
only); without either, they are an error of the check.

\b
Each row runs its steps in order: account, users, triggers, office hours, offline
emails, hooks. A step the server refuses (4xx: a taken e-mail is 409) fails its row,
reported with the line and the API's message; the other rows go on. Connection errors,
timeouts, 429 and 5xx are retried (--max-retries); if the server stays unreachable or
the key is refused, no new rows are started.

\b
Resuming: FILE.journal (beside FILE; append-only NDJSON, written line by line) records
every step done and what it created. Run the same command again after Ctrl-C, a kill, a
crash or a failed row: steps already done are skipped, a failed row restarts at its
failed step (fix the line in place first: do not insert or remove lines between runs;
editing a done line adds what is new in it, and a changed title or lang is refused).
Every create carries an Idempotency-Key hashed from FILE's absolute path (the one the
journal started with), the line, the step and its content: a step the server did but
the journal missed is answered again by the server (it remembers keys for 24 hours)
instead of done twice. To provision the same file as new accounts, move the journal
away and the file to another path. A journal is bound to the API URL it started with,
and is locked while a run uses it.

\b
At the end FILE.results.json maps each row (by line number) to its status (ok, failed,
pending), account id and accountKey, user ids by e-mail, trigger/offline e-mail/hook
ids and generated passwords.

\b
Exit status: 0 when every row is done; 1 when the file has problems, a row failed or
was left pending, or the first request was refused; 2 on a usage error; 130 when
interrupted (Ctrl-C or SIGTERM: rows in flight are cancelled, the results written)."""


@click.command("provision", help=PROVISION_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_api_options(required=False)
@click.option("--format", "fmt", type=click.Choice(["csv", "ndjson", "jsonl"]),
              help="The input's format, when its extension does not tell (jsonl is ndjson).")
@click.option("--check", is_flag=True,
              help="Only check the file and report every bad row; send nothing. Exit 0 when it is good, 1 when not. "
                   "--api-url and --api-key are not needed.")
@click.option("--fail-fast", is_flag=True,
              help="After the first failed row start no new rows (those in flight finish); exit 1.")
@click.option("--default-password", envvar="OPENSUPP_DEFAULT_PASSWORD", metavar="PASSWORD",
              help="Password for every user that has none in FILE (8 to 1024 characters) "
                   "[env OPENSUPP_DEFAULT_PASSWORD].")
@click.option("--generate-passwords", is_flag=True,
              help="Give every user that has none in FILE a random password; they are listed in "
                   "FILE.results.json under generatedPasswords.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a progress bar on stderr (when it is a terminal: done/total, ok and failed counts, "
                   "rows/s, elapsed, ETA), failed rows on stderr as they happen, and a summary on stdout. "
                   "json: no progress bar and no per-row lines, one JSON object on stdout: file, format, rows, succeeded "
                   "(this run), alreadyDone (by earlier runs), failed, pending (not started, or in flight when "
                   "interrupted), created (steps done this run, per kind), seconds, interrupted, stopped (why no "
                   "more rows were started, or null), journal, results, failures [{line, step, status, error, "
                   "message}]; when the check fails (or with --check): file, format, rows, valid, badRows, "
                   "problems [{line, field, message}].")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The journal's path [default: FILE.journal].")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The results file's path [default: FILE.results.json].")
@click.option("--allow-other-url", is_flag=True,
              help="Resume a journal started against another --api-url (the same server under a new address). "
                   "Against another server the journal's rows would wrongly count as done.")
def provision(file: Path, api_url: str | None, api_key: str | None, concurrency: int, batch_size: int,
              max_retries: int,
              timeout: float, fmt: str | None, check: bool, fail_fast: bool, default_password: str | None,
              generate_passwords: bool, output: str, journal_path: Path | None, results_path: Path | None,
              allow_other_url: bool) -> None:
    as_json = output == "json"
    file = file.absolute()
    name = str(file)
    try:
        fmt = engine.detect_format(file, fmt)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if default_password is not None and not 8 <= len(default_password) <= 1024:
        raise click.BadParameter("must be 8 to 1024 characters", param_hint="--default-password")
    if default_password is not None and generate_passwords:
        raise click.UsageError("--default-password and --generate-passwords exclude each other")

    rows, problems = engine.load(file, fmt, passwords_supplied=default_password is not None or generate_passwords)
    if problems or check:
        bad_lines = len({p.line for p in problems})
        if as_json:
            click.echo(json.dumps({"file": name, "format": fmt, "rows": len(rows), "valid": not problems,
                                   "badRows": bad_lines, "problems": [p.to_json() for p in problems]}))
        else:
            for p in problems:
                click.echo(p.render(name), err=True)
            if problems:
                click.echo(f"{name}: {len(problems)} problem(s) on {bad_lines} line(s); nothing was sent", err=True)
            else:
                click.echo(f"{name}: {len(rows)} rows, all good", err=True)
        sys.exit(1 if problems else 0)

    if not api_url or not api_key:
        raise click.UsageError("--api-url and --api-key (or OPENSUPP_API_URL and OPENSUPP_API_KEY) are required")
    journal_path = journal_path or file.with_name(file.name + ".journal")
    results_path = results_path or file.with_name(file.name + ".results.json")
    journal = engine.Journal(journal_path)
    started_url = journal.runs[0].get("apiUrl") if journal.runs else None
    if journal.created and started_url and started_url.rstrip("/") != api_url.rstrip("/") and not allow_other_url:
        raise click.UsageError(f"the journal {journal_path} was started against {started_url}, not {api_url}: "
                               "its rows would count as done there. Pass --journal NEW_PATH to provision "
                               "into another server, or --allow-other-url if it is the same server")
    key_base = journal.key_base or name
    client = _client(api_url, api_key, concurrency=concurrency, batch_size=batch_size, timeout=timeout,
                     max_retries=max_retries)
    show_progress = not as_json and _stderr_is_terminal()
    live: dict[str, Any] = {}  # the rich progress and its console, while shown

    def row_done(row: engine.Row, failure: engine.Failure | None) -> None:
        if failure and not as_json:
            if "console" in live:
                live["console"].print(failure.render(name), markup=False, highlight=False)
            else:
                click.echo(failure.render(name), err=True)
        if "progress" in live:
            outcome = runner.outcome
            live["progress"].update(live["task"], advance=1, ok=outcome.succeeded, failed=len(outcome.failed))

    runner = engine.Provisioner(client, rows, journal, key_base=key_base, concurrency=concurrency * batch_size,
                                fail_fast=fail_fast, default_password=default_password,
                                generate_passwords=generate_passwords, on_row_done=row_done)

    async def main() -> engine.Outcome:
        _cancel_on_sigterm(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await _check_key(client)
            try:
                journal.open()
            except engine.JournalBusy as exc:
                raise click.ClickException(str(exc)) from None
            journal.write({"event": "run", "started": engine.now_iso(), "file": name, "keyBase": key_base,
                           "apiUrl": api_url, "format": fmt, "rows": len(rows), "pid": os.getpid()})
            if show_progress:
                live.update(_progress(len(runner.todo())))
                live["progress"].start()
            return await runner.run()
        finally:
            if "progress" in live:
                live["progress"].stop()
            await client.aclose()

    try:
        outcome = _run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):  # during the first request, or a second Ctrl-C
        outcome = runner.outcome
        outcome.interrupted = True
        remaining = runner.todo()
        outcome.pending = len(remaining) - len(outcome.failed)
        outcome.already_done = outcome.rows - len(remaining) - outcome.succeeded
    finally:
        if journal.opened:
            journal.close()
        if journal.closed:
            engine.write_json_atomically(results_path, engine.results(rows, journal, source=file, plans=runner.plans))

    summary = {
        "file": name, "format": fmt, "rows": outcome.rows, "succeeded": outcome.succeeded,
        "alreadyDone": outcome.already_done, "failed": len(outcome.failed), "pending": outcome.pending,
        "created": {k: outcome.created[k] for k in ("account", "user", "trigger", "officehours", "offlineemail", "hook")},
        "seconds": round(outcome.seconds, 3), "interrupted": outcome.interrupted, "stopped": outcome.stopped or None,
        "journal": str(journal_path), "results": str(results_path),
        "failures": [f.to_json() for f in sorted(outcome.failed, key=lambda f: f.line)],
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _print_summary(outcome, summary, name)
    sys.exit(130 if outcome.interrupted else 0 if outcome.ok else 1)


def _progress(total: int) -> dict[str, Any]:
    """A rich progress bar on stderr: bar, done/total, ok and failed counts, rows/s, elapsed, ETA
    (fits 80 columns)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__(table_column=Column(no_wrap=True))

        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:.1f} rows/s" if task.speed else "- rows/s", style="progress.data.speed")

    console = Console(stderr=True)
    progress = Progress(
        BarColumn(bar_width=16), MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]",
                   table_column=Column(no_wrap=True)),
        RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, refresh_per_second=8,
    )
    task = progress.add_task("provision", total=total, ok=0, failed=0)
    return {"progress": progress, "console": console, "task": task}


async def _check_key(client: Any) -> None:
    """One cheap request first, so a wrong URL or key is one clear error at once (two retries, not
    --max-retries), not a failure per row."""
    from opensupp.client import APIConnectionError, APIStatusError

    retries, client.max_retries = client.max_retries, min(client.max_retries, 2)
    try:
        async with contextlib.aclosing(client.accounts.list(limit=1)) as accounts:
            async for _ in accounts:
                break
    except APIStatusError as exc:
        raise click.ClickException(f"{client.base_url} refused the first request: {exc.status} {exc.error}: "
                                   f"{exc.message}") from None
    except APIConnectionError as exc:
        raise click.ClickException(f"cannot reach {client.base_url}: {exc.message}") from None
    finally:
        client.max_retries = retries


def _print_summary(outcome: engine.Outcome, summary: dict[str, Any], name: str) -> None:
    rate = (outcome.succeeded + len(outcome.failed)) / outcome.seconds if outcome.seconds else 0.0
    done = outcome.succeeded + outcome.already_done
    lines = [(f"{name}: {outcome.rows} rows: {done} done ({outcome.succeeded} now, {outcome.already_done} "
              f"before), {len(outcome.failed)} failed, {outcome.pending} pending (not started or interrupted); "
              f"{outcome.seconds:.1f} s, {rate:.1f} rows/s")]
    created = summary["created"]
    lines.append("created: " + ", ".join(f"{created[k]} {label}" for k, label in (
        ("account", "accounts"), ("user", "users"), ("trigger", "triggers"), ("officehours", "office hours"),
        ("offlineemail", "offline e-mails"), ("hook", "hooks"))))
    if outcome.failed:
        lines.append("failed rows (fix them in place and run the same command again):")
        lines += ["  " + f.render(name) for f in sorted(outcome.failed, key=lambda f: f.line)]
    if outcome.stopped:
        lines.append(f"stopped starting rows: {outcome.stopped}")
    if outcome.interrupted:
        lines.append("interrupted: run the same command again to resume")
    lines.append(f"results: {summary['results']}; journal: {summary['journal']}")
    click.echo("\n".join(lines))


EXPORT_HELP = """Write every account of the partner, with everything under it, as NDJSON.

\b
One account per line, oldest first, in the format `opensupp provision` reads:
title, lang, users (without passwords: the API never answers them), triggers,
officehours (left out when never set), offlineemails and hooks (with their signing
secrets, unless --omit-secrets); ids, accountKeys and createdAt are left out, the
target server makes its own. Empty lists are left out.

\b
    opensupp export --api-url https://old.example.com > partner.ndjson
    opensupp provision partner.ndjson --api-url https://new.example.com --generate-passwords

Provisioning an export needs --default-password or --generate-passwords for its users,
and, into the same server, new e-mails (they are unique per server). Exit status 0, or
1 with a message when the API fails (what was written before stays written)."""


@click.command("export", help=EXPORT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@_api_options()
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (replaced when done) instead of stdout.")
@click.option("--omit-secrets", is_flag=True, help="Leave hooks' config.secret out (the target then generates new ones).")
def export(api_url: str, api_key: str, concurrency: int, batch_size: int, max_retries: int, timeout: float,
           out: Path | None, omit_secrets: bool) -> None:
    from opensupp.client import OpensuppError

    client = _client(api_url, api_key, concurrency=concurrency, batch_size=batch_size, timeout=timeout,
                     max_retries=max_retries)
    target = out.with_name(out.name + f".tmp{os.getpid()}") if out else None
    stream = target.open("w", encoding="utf-8") if target else sys.stdout
    show_progress = _stderr_is_terminal()
    started = time.monotonic()

    async def main() -> int:
        _cancel_on_sigterm(asyncio.current_task())  # type: ignore[arg-type]
        progress = None
        try:
            if show_progress:
                from rich.console import Console
                from rich.progress import (
                    Progress,
                    SpinnerColumn,
                    TextColumn,
                    TimeElapsedColumn,
                )

                progress = Progress(SpinnerColumn(), TextColumn("exported {task.completed} accounts"),
                                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)
                progress.start()
                task_id = progress.add_task("export", total=None)

            def write(row: dict[str, Any]) -> None:
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
                if progress is not None:
                    progress.advance(task_id)

            return await engine.export(client, write, concurrency=concurrency * batch_size,
                                       omit_secrets=omit_secrets)
        finally:
            if progress is not None:
                progress.stop()
            await client.aclose()

    try:
        count = _run(main())
        stream.flush()
    except OpensuppError as exc:
        raise click.ClickException(f"export failed: {exc}") from None
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        if target:
            stream.close()
    if target and out:
        os.replace(target, out)
    click.echo(f"exported {count} accounts in {time.monotonic() - started:.1f} s", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """The opensupp client's commands (the same as `opensupp provision` and `opensupp export`)."""


cli.add_command(provision)
cli.add_command(export)

if __name__ == "__main__":  # pragma: no cover
    cli()
