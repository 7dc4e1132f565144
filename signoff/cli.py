"""The ``signoff`` command line: thin wrappers that parse input, call the Engine, print."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.table import Table

from signoff.cli_audit import audit
from signoff.cli_common import EXIT_CANNOT_RUN, StoreOption, existing_store, say_failure
from signoff.cli_serve import serve
from signoff.engine import DEFAULT_STORE, Engine
from signoff.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    SignoffError,
)
from signoff.views import HistoryEntry

T = TypeVar("T")

app = typer.Typer(help="signoff: durable human approvals with an audit log.", no_args_is_help=True)
console = Console(width=140 if not Console().is_terminal else None)
app.add_typer(audit, name="audit")
app.command()(serve)


def _run(work: Callable[[Engine], Awaitable[T]], store: str) -> T:
    async def main() -> T:
        async with Engine(store) as engine:
            return await work(engine)

    try:
        return asyncio.run(main())
    except (NotFoundError, ConflictError, ForbiddenError, InvalidInputError) as error:
        console.print(f"[red]{type(error).__name__}[/red]: {error}")
        raise typer.Exit(2) from None


_SUMMARY_FIELDS = {
    "Requested": ("context",),
    "VoteCast": ("decision", "groups"),
    "Approved": ("approvers",),
    "Rejected": ("rejecters",),
    "Reassigned": ("approvers", "groups"),
}


def _summary(entry: HistoryEntry) -> str:
    fields = _SUMMARY_FIELDS.get(entry.event)
    data = {k: entry.data[k] for k in fields if entry.data.get(k)} if fields else entry.data
    text = json.dumps(data, default=str, separators=(", ", ": "))
    return text if len(text) <= 60 else text[:57] + "..."


def print_history(title: str, entries: list[HistoryEntry]) -> None:
    """Prints an audit trail as a table."""
    table = Table(title=title, title_justify="left")
    for column in ("#", "at (UTC)", "event", "actor", "reason", "details"):
        table.add_column(column, overflow="fold")
    for e in entries:
        at = e.at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(e.version), at, e.event, e.actor, e.reason or "", _summary(e))
    console.print(table)


@app.command()
def demo(store: StoreOption = DEFAULT_STORE) -> None:
    """Requests, approves and rejects approvals in the store, then prints their audit trails."""

    async def work(engine: Engine) -> None:
        expense = await engine.request_approval(
            title="Expense: team dinner",
            requested_by="carol",
            context={"amount": 420, "currency": "EUR"},
            timeout="7 days",
        )
        await engine.approve(
            expense, by="alice", reason="within budget", metadata={"ticket": "EXP-7"}
        )

        deletion = await engine.request_approval(
            title="Delete customer data (GDPR request)",
            requested_by="agent:cleanup",
            context={"customer": "c-1042", "rows": 1873},
            required_approvals=2,
            approvers=["alice", "bob", "dave"],
        )
        await engine.approve(deletion, by="alice")
        try:
            await engine.approve(deletion, by="alice")
        except SignoffError as error:
            console.print(f"refused as expected: [yellow]{error}[/yellow]")
        await engine.approve(deletion, by="bob", reason="verified the request")

        mail = await engine.request_approval(
            title="Send the outreach mail to 5,000 leads",
            requested_by="agent:outreach",
            context={"recipients": 5000},
            groups=["marketing"],
        )
        await engine.reject(mail, by="erin", groups=["marketing"], reason="wrong segment")

        for approval_id in (expense, deletion, mail):
            info = await engine.get_approval(approval_id)
            print_history(f"{info.title} -> {info.status}", await engine.history(approval_id))
        pending = await engine.pending_approvals()
        console.print(f"{len(pending)} approval(s) pending in {engine.store.shown_url}")

    _run(work, store)


@app.command()
def history(approval_id: str, store: StoreOption = DEFAULT_STORE) -> None:
    """Prints the audit trail of one approval or workflow run."""
    entries = _run(lambda engine: engine.history(approval_id), existing_store(store))
    print_history(approval_id, entries)


@app.command()
def pending(
    store: StoreOption = DEFAULT_STORE,
    approver: Annotated[str | None, typer.Option(help="only what this person may decide")] = None,
) -> None:
    """Lists pending approvals, oldest first."""
    found = _run(lambda engine: engine.pending_approvals(approver), existing_store(store))
    table = Table(title="pending approvals", title_justify="left")
    for column in ("id", "title", "requested by", "needed", "deadline"):
        table.add_column(column)
    for a in found:
        deadline = a.deadline.isoformat(timespec="minutes") if a.deadline else ""
        table.add_row(a.id, a.title, a.requested_by, str(a.approvals_needed), deadline)
    console.print(table)


@app.command("rebuild-index")
def rebuild_index(store: StoreOption = DEFAULT_STORE) -> None:
    """Rewrites the run, approval and timer index tables from the event log."""
    from signoff.adapters.persistence import parse_store_url, prepare_store
    from signoff.application import SignoffApplication

    config = parse_store_url(existing_store(store))
    prepare_store(config)
    application = SignoffApplication(config.env)
    try:
        count = application.rebuild_index()
    finally:
        application.close()
    console.print(f"indexed {count} aggregate(s) of {config.shown_url}")


from signoff.cli_views import export_audit, projections_app  # noqa: E402

app.add_typer(projections_app, name="projections")
audit.command("export")(export_audit)


def main() -> None:
    """Entry point of the ``signoff`` script: a store that cannot be used (or another
    error signoff raises on purpose) ends a command with one line and exit code 2, not a
    traceback."""
    try:
        app()
    except (SignoffError, PersistenceError) as error:
        say_failure(str(error))
        sys.exit(EXIT_CANNOT_RUN)
