"""The ``opensupp`` command: ``provision`` and ``export``, the partner side of the API from a
shell, and whatever other installed distributions add to it.

They use only the SDK, never the server's modules. This distribution owns the ``opensupp``
console script (``main``); a distribution that has commands of its own (the server: serve,
migrate, keys...) registers them under the entry-point group ``opensupp.commands`` (each a
click command, named by its entry point) and options of the whole command (the server's
``--database-url``) under ``opensupp.options`` (each a click option that acts through its
callback), so that two distributions never install one script file.
``python -m opensupp_client`` runs the same command.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from opensupp_client import provision as engine
from opensupp_client import values
from opensupp_client._client import MAX_BATCH
from opensupp_client._version import __version__

KINDS = ("account", "user", "trigger", "officehours", "offlineemail", "hook")
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
    from opensupp_client import AsyncClient
    from opensupp_client._client import async_http

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


def _cancel_on_sigterm() -> None:
    """SIGTERM cancels the calling task (a command's main coroutine)."""
    task = asyncio.current_task()
    if task is None:  # (not called from a task)
        return
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _wants_json(args: list[str]) -> bool:
    following = [*args[1:], ""]
    return any(a == "--output=json" or (a == "--output" and b == "json") for a, b in zip(args, following, strict=True))


class _JsonErrors(click.Command):
    """With ``--output json`` an error is one JSON object on stdout too, ``{"error", "message"}``
    (error: UsageError, with exit status 2, or Error, 1), not a line of text on stderr: a script
    reading the output reads its failures the same way."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        as_json = _wants_json(args)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            if not as_json:
                raise
            _json_error(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if ctx.params.get("output") != "json":
                raise
            _json_error(exc)


def _json_error(exc: click.ClickException) -> NoReturn:
    kind = "UsageError" if isinstance(exc, click.UsageError) else "Error"
    click.echo(json.dumps({"error": kind, "message": exc.format_message()}))
    raise click.exceptions.Exit(exc.exit_code)


PROVISION_HELP = """Create every account in FILE, with everything under it, through the API.

\b
FILE is CSV or NDJSON, told by its extension (.csv; .ndjson or .jsonl) or --format.
CSV: a header line, then one account per row. Columns: title, lang (both required),
and email, fullname, password for the account's first admin (role admin); leave email
empty for an account without a user. Comma-separated, or semicolons as a European
Excel writes them (told by the header line, or given by --delimiter). Example:
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
First the whole file is checked, before any request, by the server's own rules and in
its words: JSON on every line, required fields, known keys, types, lengths, language
codes (in any case: EN is en), e-mail syntax, e-mails repeated in the file. Every bad
row is reported as FILE:LINE: field: problem, and nothing is sent; with --skip-invalid
the good rows are sent and the bad ones reported (a bad header still stops the file).
--check stops after the check.

\b
Users without a password (an export has none) need --default-password (all get that
one) or --generate-passwords (each gets a random 20-character one, written to the
journal before the user is created and to the results file, both readable by you
only); without either, they are an error of the check.

\b
Each row runs its steps in order: account, users, triggers, office hours, offline
emails, hooks, and lands whole or leaves nothing: a step the server refuses (4xx: a
taken e-mail is 409) fails its row, whose account is then deleted through the API with
everything under it (rolled back), reported with the line and the API's message; the
other rows go on. Connection errors,
timeouts, 429 and 5xx are retried (--max-retries); if the server stays unreachable or
the key is refused, no new rows are started.

\b
Resuming: FILE.journal (beside FILE; append-only NDJSON, written line by line) records
every step done and what it created. Run the same command again after Ctrl-C, a kill, a
crash or a failed row: steps already done are skipped, a rolled-back row starts anew
(fix the line in place first: do not insert or remove lines between runs; editing a
done line adds what is new in it, and a changed title or lang is refused).
Every create carries an Idempotency-Key hashed from FILE's absolute path (the one the
journal started with), the line, the step and its content: a step the server did but
the journal missed is answered again by the server (it remembers keys for 24 hours)
instead of done twice. To provision the same file as new accounts, move the journal
away and the file to another path. A journal is bound to the API URL it started with,
and is locked while a run uses it.

\b
At the end FILE.results.json maps each row (by line number) to its status (ok, failed,
pending, invalid), account id and accountKey, user ids by e-mail, trigger/offline e-mail/hook
ids and generated passwords.

\b
Exit status: 0 when every row is done; 1 when the file has problems, a row failed or
was left pending, or the first request was refused; 2 on a usage error; 130 when
interrupted (Ctrl-C or SIGTERM: rows in flight are cancelled, the results written)."""


@click.command("provision", cls=_JsonErrors, help=PROVISION_HELP,
               context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--skip-invalid", is_flag=True,
              help="Send the good rows of a file that has bad ones, and report the bad ones (status invalid in "
                   "FILE.results.json; exit status 1). A problem of the file as a whole (its header, its "
                   "encoding) still stops it.")
@click.option("--delimiter", metavar="CHAR",
              help="A CSV's delimiter: one character, or 'tab' [default: told by the header line: a comma, or the "
                   "semicolon of a European Excel].")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a progress bar on stderr (when it is a terminal: finished rows/total, ok and failed "
                   "counts, rows/s since the start, elapsed, ETA), failed rows on stderr as they happen, and a "
                   "summary on stdout. "
                   "json: no progress bar and no per-row lines, one JSON object on stdout: file, format, rows, "
                   "succeeded (this run), alreadyDone (by earlier runs), failed, rolledBack (failed rows whose "
                   "account was deleted), pending (not started, or in flight when interrupted), invalid (bad rows "
                   "left out by --skip-invalid), created (steps kept this run, per kind), seconds, interrupted, "
                   "stopped (why no more rows were started, or null), journal, results, failures [{line, step, "
                   "status, error, message, rolledBack}], problems [{line, field, message}], hints; when the check "
                   "fails (or with --check): file, format, rows, valid, badRows, problems, hints; on an error "
                   "(a usage error, the first request refused...): {error, message}.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The journal's path [default: FILE.journal].")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The results file's path [default: FILE.results.json].")
@click.option("--allow-other-url", is_flag=True,
              help="Resume a journal started against another --api-url (the same server under a new address). "
                   "Against another server the journal's rows would wrongly count as done.")
def provision(file: Path, api_url: str | None, api_key: str | None, concurrency: int, batch_size: int,
              max_retries: int, timeout: float, fmt: str | None, check: bool, fail_fast: bool,
              default_password: str | None, generate_passwords: bool, skip_invalid: bool, delimiter: str | None,
              output: str, journal_path: Path | None, results_path: Path | None, allow_other_url: bool) -> None:
    as_json = output == "json"
    file = file.absolute()
    name = str(file)
    try:
        fmt = engine.detect_format(file, fmt)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if default_password is not None:
        problem = values.string_problem(default_password, min_length=values.PASSWORD_MIN,
                                        max_length=values.PASSWORD_MAX)
        if problem:
            raise click.BadParameter(problem, param_hint="--default-password")
    if default_password is not None and generate_passwords:
        raise click.UsageError("--default-password and --generate-passwords exclude each other")
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter.lower(), delimiter)
        if len(delimiter) != 1 or delimiter in "\"\r\n":
            raise click.BadParameter("must be one character (or 'tab'), not a quote or a line break",
                                     param_hint="--delimiter")

    rows, problems = engine.load(file, fmt, passwords_supplied=default_password is not None or generate_passwords,
                                 delimiter=delimiter)
    blocking = [p for p in problems if p.fatal] if skip_invalid else problems
    if blocking or check:
        bad_lines = len({p.line for p in problems})
        if as_json:
            click.echo(json.dumps({"file": name, "format": fmt, "rows": len(rows), "valid": not problems,
                                   "badRows": bad_lines, "problems": [p.to_json() for p in problems],
                                   "hints": engine.hints(problems)}))
        else:
            _print_problems(problems, name)
            if problems:
                click.echo(f"{name}: {len(problems)} problem(s) on {bad_lines} line(s); nothing was sent", err=True)
            else:
                click.echo(f"{name}: {len(rows)} rows, all good", err=True)
        sys.exit(1 if problems else 0)
    invalid_lines = {p.line for p in problems}
    if invalid_lines:  # --skip-invalid: the good rows go, the bad ones are reported
        rows = [row for row in rows if row.line not in invalid_lines]
        if not as_json:
            _print_problems(problems, name)
            click.echo(f"{name}: {len(invalid_lines)} bad line(s) left out (--skip-invalid); sending the other "
                       f"{len(rows)} row(s)", err=True)

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
        _cancel_on_sigterm()
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
            engine.write_json_atomically(results_path, engine.results(rows, journal, source=file, plans=runner.plans,
                                                                      invalid=problems))

    summary = {
        "file": name, "format": fmt, "rows": outcome.rows + len(invalid_lines), "succeeded": outcome.succeeded,
        "alreadyDone": outcome.already_done, "failed": len(outcome.failed), "rolledBack": outcome.rolled_back,
        "pending": outcome.pending, "invalid": len(invalid_lines),
        "created": {k: outcome.created[k] for k in KINDS},
        "seconds": round(outcome.seconds, 3), "interrupted": outcome.interrupted, "stopped": outcome.stopped or None,
        "journal": str(journal_path), "results": str(results_path),
        "failures": [f.to_json() for f in sorted(outcome.failed, key=lambda f: f.line)],
        "problems": [p.to_json() for p in problems], "hints": engine.hints(problems),
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _print_summary(outcome, summary, name)
    sys.exit(130 if outcome.interrupted else 0 if outcome.ok and not invalid_lines else 1)


def _print_problems(problems: list[engine.Problem], name: str) -> None:
    """Each problem on a line of its own, then each hint once (not once per row it concerns)."""
    for p in problems:
        click.echo(p.render(name), err=True)
    for hint in engine.hints(problems):
        click.echo(f"hint: {hint}", err=True)


def _progress(total: int, console: Any = None, get_time: Callable[[], float] | None = None) -> dict[str, Any]:
    """A rich progress bar on stderr: bar, finished rows/total, ok and failed counts, rows/s,
    elapsed, ETA (fits 80 columns).

    The bar counts rows as they finish, and the rate and the ETA are the rows finished over
    the time since the start: rich's own speed is an estimate over the last moments, which
    shows tens of thousands of rows/s when a batch of rows finishes at once. Red is for
    failures only: no red while nothing failed.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TimeElapsedColumn
    from rich.table import Column
    from rich.text import Text

    def rate(task: Task) -> float | None:
        elapsed = task.elapsed
        return task.completed / elapsed if task.completed and elapsed else None

    class CountsColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__(table_column=Column(no_wrap=True))

        def render(self, task: Task) -> Text:
            failed = task.fields["failed"]
            return Text.assemble((f"{task.fields['ok']} ok", "green"), " ",
                                 (f"{failed} failed", "bold red" if failed else "dim"))

    class RateColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__(table_column=Column(no_wrap=True))

        def render(self, task: Task) -> Text:
            speed = rate(task)
            return Text(f"{speed:.1f} rows/s" if speed else "- rows/s", style="cyan")

    class EtaColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__(table_column=Column(no_wrap=True))

        def render(self, task: Task) -> Text:
            speed = rate(task)
            if task.finished or task.total is None or not speed:
                return Text("ETA -:--:--", style="progress.remaining")
            seconds = int((task.total - task.completed) / speed)
            clock = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            return Text(f"ETA {clock}", style="progress.remaining")

    console = console or Console(stderr=True)
    progress = Progress(
        BarColumn(bar_width=16), MofNCompleteColumn(), CountsColumn(), RateColumn(), TimeElapsedColumn(), EtaColumn(),
        console=console, refresh_per_second=8, get_time=get_time,
    )
    task = progress.add_task("provision", total=total, ok=0, failed=0)
    return {"progress": progress, "console": console, "task": task}


async def _check_key(client: Any) -> None:
    """One cheap request first, so a wrong URL or key is one clear error at once (two retries, not
    --max-retries), not a failure per row."""
    from opensupp_client import APIConnectionError, APIStatusError

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
    invalid = f", {summary['invalid']} invalid (left out)" if summary["invalid"] else ""
    rolled = f" ({outcome.rolled_back} rolled back)" if outcome.rolled_back else ""
    lines = [(f"{name}: {summary['rows']} rows: {done} done ({outcome.succeeded} now, {outcome.already_done} "
              f"before), {len(outcome.failed)} failed{rolled}, {outcome.pending} pending (not started or "
              f"interrupted){invalid}; {outcome.seconds:.1f} s, {rate:.1f} rows/s")]
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
@click.option("--omit-secrets", is_flag=True,
              help="Leave hooks' config.secret out (the target then generates new ones).")
def export(api_url: str, api_key: str, concurrency: int, batch_size: int, max_retries: int, timeout: float,
           out: Path | None, omit_secrets: bool) -> None:
    from opensupp_client import OpensuppError

    client = _client(api_url, api_key, concurrency=concurrency, batch_size=batch_size, timeout=timeout,
                     max_retries=max_retries)
    target = out.with_name(out.name + f".tmp{os.getpid()}") if out else None
    stream = target.open("w", encoding="utf-8") if target else sys.stdout
    show_progress = _stderr_is_terminal()
    started = time.monotonic()

    async def main() -> int:
        _cancel_on_sigterm()
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


COMMANDS = "opensupp.commands"  # entry points: click commands, each added under its entry point's name
OPTIONS = "opensupp.options"  # entry points: click options of the whole command, acting through callbacks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, package_name="opensupp-client", prog_name="opensupp")
def cli() -> None:
    """opensupp: the partner API from a shell (provision, export), and the commands of
    the other opensupp distributions installed (the server's serve, keys, migrate...).

    The API's URL and key are read from OPENSUPP_API_URL and OPENSUPP_API_KEY.
    """


cli.add_command(provision)
cli.add_command(export)


def add_plugins(group: click.Group) -> click.Group:
    """``group`` with the commands and options that installed distributions register under the
    entry-point groups ``opensupp.commands`` and ``opensupp.options``. One that cannot be loaded
    (a broken install) is named on stderr and left out: provision and export still work."""
    for entry in importlib.metadata.entry_points(group=COMMANDS):
        if entry.name in group.commands:
            continue
        command = _load(entry)
        if isinstance(command, click.Command):
            group.add_command(command, entry.name)
    names = {param.name for param in group.params}
    for entry in importlib.metadata.entry_points(group=OPTIONS):
        option = _load(entry)
        if isinstance(option, click.Parameter) and option.name not in names:
            group.params.append(option)
            names.add(option.name)
    return group


def _load(entry: importlib.metadata.EntryPoint) -> Any:
    try:
        return entry.load()
    except Exception as exc:  # noqa: BLE001  (any import error of another distribution)
        dist = entry.dist.name if entry.dist else "?"
        click.echo(f"opensupp: leaving out {entry.name!r} of {dist} ({entry.value}): {exc!r}", err=True)
        return None


def main(args: list[str] | None = None) -> Any:
    """The ``opensupp`` console script."""
    return add_plugins(cli).main(args, prog_name="opensupp")


if __name__ == "__main__":  # pragma: no cover
    main()
