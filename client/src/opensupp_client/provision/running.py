"""Running a provisioning file: each row's steps in order through the SDK, many rows at once.

A row lands whole or leaves nothing: when a step the server refuses fails a row whose
account exists (a user's e-mail taken: 409), the account is deleted through the API, with
everything under it, and the row is reported failed. Every create carries an
Idempotency-Key ``opensupp-provision-<sha256(key base, line, step, account id, request
body[, attempt])>``, where the key base is the input's absolute path when the journal was
started and the attempt counts the row's rollbacks: a step that the server did but the
journal missed (the process killed between the answer and the write) is replayed by the
server's idempotency (24 hours) instead of being done twice.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opensupp_client._client import AsyncClient
from opensupp_client.errors import (
    APIConnectionError,
    APIStatusError,
    AuthError,
    NotFoundError,
    OpensuppError,
)
from opensupp_client.provision.journal import Journal
from opensupp_client.provision.planning import Step, canonical, plan
from opensupp_client.provision.reading import Row


@dataclass
class Failure:
    line: int
    step: str
    message: str
    status: int | None = None
    error: str = ""
    rolled_back: str = ""  # the account id deleted so that the row left nothing behind

    def render(self, name: str) -> str:
        code = f"{self.status} {self.error}: " if self.status else (f"{self.error}: " if self.error else "")
        undone = f" (rolled back: account {self.rolled_back} deleted)" if self.rolled_back else ""
        return f"{name}:{self.line}: {self.step}: {code}{self.message}{undone}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "step": self.step, "status": self.status, "error": self.error,
                "message": self.message, "rolledBack": self.rolled_back or None}


@dataclass
class Outcome:
    rows: int = 0
    already_done: int = 0
    succeeded: int = 0  # in this run
    failed: list[Failure] = field(default_factory=list)
    pending: int = 0  # not started (fail-fast, a stop, an interrupt) or cancelled in flight
    created: collections.Counter[str] = field(default_factory=collections.Counter)
    stopped: str = ""  # why no more rows were started (fail-fast, auth, connection)
    rolled_back: int = 0  # failed rows whose account was deleted, leaving nothing
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.pending and not self.interrupted


RowDone = Callable[[Row, "Failure | None"], None]


class Provisioner:
    def __init__(self, client: AsyncClient, rows: list[Row], journal: Journal, *, key_base: str,
                 concurrency: int = 8, fail_fast: bool = False, default_password: str | None = None,
                 generate_passwords: bool = False, on_row_done: RowDone | None = None) -> None:
        self.client = client
        self.rows = rows
        self.journal = journal
        self.key_base = key_base
        self.concurrency = concurrency
        self.fail_fast = fail_fast
        self.default_password = default_password
        self.generate_passwords = generate_passwords
        self.on_row_done = on_row_done or (lambda row, failure: None)
        self.outcome = Outcome(rows=len(rows))
        self.plans = {row.line: plan(row) for row in rows}
        self.fatal: list[BaseException] = []  # e.g. the journal could not be written: stop, and raise it

    def is_done(self, row: Row) -> bool:
        created = self.journal.created.get(row.line, {})
        return all(step.id in created for step in self.plans[row.line])

    def todo(self) -> list[Row]:
        return [row for row in self.rows if not self.is_done(row)]

    def idempotency_key(self, line: int, step: Step, account_id: str | None, body: dict[str, Any]) -> str:
        parts = [self.key_base, str(line), step.id, account_id or "", canonical(body)]
        attempt = self.journal.attempts[line]
        if attempt:  # after a rollback: new keys, or the server would answer the deleted account again
            parts.append(f"attempt {attempt}")
        return "opensupp-provision-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()

    async def run(self) -> Outcome:
        started = time.monotonic()
        todo = self.todo()
        self.outcome.already_done = len(self.rows) - len(todo)
        semaphore = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        started_rows = 0
        try:
            for row in todo:
                await semaphore.acquire()
                if self.outcome.stopped:
                    semaphore.release()
                    break
                task = asyncio.create_task(self._row(row, semaphore))
                tasks.add(task)
                task.add_done_callback(self._finished(tasks))
                started_rows += 1
            while tasks:
                await asyncio.wait(set(tasks))
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM: stop, the journal is consistent
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.outcome.interrupted = True
        self.outcome.pending = len(todo) - started_rows
        if self.outcome.interrupted:
            self.outcome.pending = len(todo) - self.outcome.succeeded - len(self.outcome.failed)
        self.outcome.seconds = time.monotonic() - started
        if self.fatal:
            raise self.fatal[0]
        return self.outcome

    def _finished(self, tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            error = None if task.cancelled() else task.exception()
            if error is not None:
                self.fatal.append(error)
                self.outcome.stopped = f"unexpected error: {error!r}"

        return done

    async def _row(self, row: Row, semaphore: asyncio.Semaphore) -> None:
        try:
            failure = await self._steps(row)
            if failure is None:
                self.journal.write({"event": "done", "line": row.line})
                self.outcome.succeeded += 1
            else:
                self.journal.write({"event": "failed", **failure.to_json()})
                self.outcome.failed.append(failure)
                if self.fail_fast and not self.outcome.stopped:
                    self.outcome.stopped = f"--fail-fast: line {row.line} failed"
            self.on_row_done(row, failure)
        finally:
            semaphore.release()

    async def _steps(self, row: Row) -> Failure | None:
        line = row.line
        created = self.journal.created.get(line, {})
        steps = self.plans[line]
        account_step = steps[0]
        earlier = next((e for sid, e in created.items() if sid.startswith("account:")), None)
        if earlier is not None and earlier["step"] != account_step.id:
            return Failure(line, "account", f"this line's title or lang changed since account {earlier['id']} was "
                           "created from it (see the journal); restore the line, or move the journal away to "
                           "provision the line as a new account")
        account_id = earlier["id"] if earlier else None
        made_now: collections.Counter[str] = collections.Counter()
        for step in steps:
            if step.id in created:
                continue
            try:
                made = await self._do(line, step, account_id)
            except AuthError as exc:
                self.outcome.stopped = f"the API key was refused ({exc.message})"
                return Failure(line, step.label, exc.message, exc.status, exc.error)
            except APIConnectionError as exc:  # nothing can be undone now: a re-run resumes the row
                self.outcome.stopped = "the server could not be reached after every retry; re-run to resume"
                return Failure(line, step.label, exc.message, None, "ConnectionError")
            except APIStatusError as exc:
                failure = Failure(line, step.label, exc.message, exc.status, exc.error)
            except OpensuppError as exc:
                failure = Failure(line, step.label, str(exc), None, type(exc).__name__)
            except Exception as exc:  # noqa: BLE001  (a bug or an answer the SDK could not read: this row fails, the rest go on)
                failure = Failure(line, step.label, f"unexpected error: {exc!r}", None, type(exc).__name__)
            else:
                self.journal.write({"event": "created", "line": line, "step": step.id, **made})
                self.outcome.created[step.kind] += 1
                made_now[step.kind] += 1
                if step.kind == "account":
                    account_id = made["id"]
                continue
            if account_id is not None:
                await self._roll_back(line, account_id, failure, made_now)
            return failure
        return None

    async def _roll_back(self, line: int, account_id: str, failure: Failure,
                         made_now: collections.Counter[str]) -> None:
        """A row lands whole or leaves nothing: its account is deleted (with everything under
        it) and the journal forgets what the line made, so that its next run, once the line
        is fixed, starts anew. When the delete fails too, the journal keeps it all and the
        next run resumes at the failed step."""
        try:
            await self.client.accounts.delete(account_id)
        except NotFoundError:
            pass  # already gone (deleted by someone else: that is why the step failed)
        except OpensuppError as exc:
            failure.message += f"; the account {account_id} it created could not be deleted: {exc}"
            return
        self.journal.write({"event": "rolledback", "line": line, "account": account_id})
        failure.rolled_back = str(account_id)
        self.outcome.rolled_back += 1
        self.outcome.created.subtract(made_now)

    async def _do(self, line: int, step: Step, account_id: str | None) -> dict[str, Any]:
        client = self.client
        body = step.content
        if step.kind == "account":
            key = self.idempotency_key(line, step, None, body)
            account = await client.accounts.create(**body, idempotency_key=key)
            return {"id": account.id, "accountKey": account.account_key}
        assert account_id is not None
        if step.kind == "officehours":
            await client.office_hours.update(account_id, **body)
            return {}
        if step.kind == "user":
            body = {**body, "password": self._password(line, step)}
        key = self.idempotency_key(line, step, account_id, body)
        if step.kind == "user":
            user = await client.users.create(account_id, **body, idempotency_key=key)
            return {"id": user.id, "email": user.email}
        if step.kind == "trigger":
            return {"id": (await client.triggers.create(account_id, **body, idempotency_key=key)).id}
        if step.kind == "offlineemail":
            made = await client.offline_emails.create(account_id, **body, idempotency_key=key)
            return {"id": made.id, "email": made.email}
        if step.kind == "hook":
            return {"id": (await client.hooks.create(account_id, **body, idempotency_key=key)).id}
        raise AssertionError(step.kind)

    def _password(self, line: int, step: Step) -> str:
        """The file's; else one generated by an earlier run (it may have been sent); else the default;
        else a new random one."""
        if step.password is not None:
            return step.password
        if (line, step.id) in self.journal.passwords:
            return self.journal.passwords[(line, step.id)]
        if self.default_password is not None:
            return self.default_password
        if (line, step.id) not in self.journal.passwords:
            if not self.generate_passwords:
                raise AssertionError("validation lets no user without a password through")
            # journaled before the request, so that a resume sends the same body and key
            self.journal.write({"event": "password", "line": line, "step": step.id,
                                "password": secrets.token_urlsafe(15)})
        return self.journal.passwords[(line, step.id)]
