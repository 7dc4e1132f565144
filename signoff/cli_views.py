"""CLI commands over the views: rebuild a projection, show positions, export the audit trail."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from signoff.cli_common import StoreOption, existing_store
from signoff.engine import DEFAULT_STORE, Engine
from signoff.projections import audit, queries
from signoff.read_models import ReadModels

T = TypeVar("T")

projections_app = typer.Typer(help="Read models built from the event log.", no_args_is_help=True)
console = Console(stderr=True)


def with_read_models(store: str, work: Callable[[ReadModels], T]) -> T:
    """Opens the views of an existing store (without starting the engine), runs ``work``,
    closes."""
    existing_store(store)

    async def main() -> T:
        engine = Engine(store)
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, lambda: work(engine.read_models))
        finally:
            await engine.close()

    return asyncio.run(main())


@projections_app.command()
def rebuild(name: str, store: StoreOption = DEFAULT_STORE) -> None:
    """Rebuilds one view (approvals, runs, audit) from the start of the event log."""

    def work(models: ReadModels) -> int:
        if name not in models.runner.projections:
            known = ", ".join(sorted(models.runner.projections))
            console.print(f"[red]no projection {name!r}[/red] (known: {known})")
            raise typer.Exit(2)
        columns = (
            TextColumn(f"rebuilding {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(name, total=max(1, models.runner.head()))
            count = models.runner.rebuild(
                name,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        return count

    count = with_read_models(store, work)
    console.print(f"rebuilt {name} from {count} event(s)")


@projections_app.command()
def worker(
    store: StoreOption = DEFAULT_STORE,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="seconds between looks at the log")
    ] = 0.1,
    until_stdin_closes: Annotated[
        bool, typer.Option("--until-stdin-closes", help="stop when stdin closes (engines)")
    ] = False,
) -> None:
    """Keeps the views current in this process until Ctrl-C or SIGTERM (an engine started
    with ``views="process"`` runs one of its own)."""
    from signoff.view_worker import run_worker

    run_worker(store, poll_interval=poll_interval, until_stdin_closes=until_stdin_closes)


@projections_app.command()
def status(store: StoreOption = DEFAULT_STORE) -> None:
    """Shows how far each view has applied the event log."""

    def work(models: ReadModels) -> tuple[int, dict[str, int]]:
        return models.runner.head(), models.runner.positions()

    head, positions = with_read_models(store, work)
    table = Table(title=f"projections (log head {head})", title_justify="left")
    for column in ("view", "position", "behind"):
        table.add_column(column)
    for name, position in sorted(positions.items()):
        table.add_row(name, str(position), str(head - position))
    Console().print(table)


def export_audit(
    store: StoreOption = DEFAULT_STORE,
    format: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="file (default: stdout)")] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", help="one run's rows")] = None,
) -> None:
    """Exports the audit trail (one row per decision and lifecycle event) in log order."""
    if format not in ("csv", "jsonl"):
        console.print("[red]--format must be csv or jsonl[/red]")
        raise typer.Exit(2)

    def work(models: ReadModels) -> int:
        models.runner.catch_up()
        rows = queries.iter_audit(
            lambda: models.db.transaction(commit=False), models.db, workflow_id=workflow
        )
        target = open(out, "w", newline="", encoding="utf-8") if out else nullcontext(sys.stdout)  # noqa: SIM115
        with target as stream:
            return _write(stream, rows, format)

    count = with_read_models(store, work)
    console.print(f"exported {count} audit row(s)")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _write(stream: IO[str], rows: Any, format: str) -> int:
    count = 0
    rows = ({**row, "decided_at": _iso(row["decided_at"])} for row in rows)
    if format == "csv":
        writer = csv.DictWriter(stream, fieldnames=list(audit.COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "details": json.dumps(row["details"], sort_keys=True)})
            count += 1
    else:
        for row in rows:
            stream.write(json.dumps(row, sort_keys=True) + "\n")
            count += 1
    return count
