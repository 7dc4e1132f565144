"""``signoff audit``: checks the event log's hash chain and anchors its head outside the database.

Exit codes: 0 the log verifies, 1 it was tampered with (the first bad
position is printed), 2 the store or anchor could not be read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from signoff.audit_chain import Anchor, VerifyReport, verify
from signoff.chain import ChainLog, chainer_from_env
from signoff.cli_common import StoreOption, fail
from signoff.engine import DEFAULT_STORE
from signoff.errors import InvalidInputError, SignoffError
from signoff.redact import masked_url

audit = typer.Typer(help="The audit trail: export it, verify its hash chain.", no_args_is_help=True)
console = Console(width=140 if not Console().is_terminal else None)
SHOWN = 20
"""Problems printed by ``verify`` (the rest are counted)."""


@contextmanager
def open_chain(store: str) -> Iterator[ChainLog]:
    """The store's recorder as it is: no table is created and nothing is backfilled, so
    that a deleted chain is reported, not rebuilt."""
    from signoff.adapters.persistence import parse_store_url
    from signoff.adapters.persistence.checks import check_exists
    from signoff.application import SignoffApplication

    config = parse_store_url(store)
    if not config.is_durable:
        raise InvalidInputError("a memory:// store keeps no chain: nothing outlives its process")
    check_exists(config)
    application = SignoffApplication({**config.env, "CREATE_TABLE": "false"})
    try:
        log: ChainLog = application.recorder  # type: ignore[assignment]
        yield log
    finally:
        application.close()


def check(store: str, anchor: Path | None) -> VerifyReport:
    """Verifies ``store`` (against the anchor file, if given)."""
    saved = Anchor.load(anchor) if anchor is not None else None
    with open_chain(store) as log:
        return verify(log, chainer=chainer_from_env(), anchor=saved)


def _checked(store: str, anchor: Path | None) -> VerifyReport:
    """:func:`check`, exiting with code 2 when the store or anchor cannot be read."""
    try:
        return check(store, anchor)
    except SignoffError as error:
        fail(str(error))


def _report(report: VerifyReport) -> None:
    head = report.head
    if report.ok and head is not None:
        console.print(
            f"[green]OK[/green]: {report.events} event(s) chained; "
            f"head at position {head.position}, hash {head.hash.hex()}"
        )
        if head.backfilled_to:
            console.print(
                f"events up to position {head.backfilled_to} were chained when the chain "
                "was introduced, not as they were written"
            )
        return
    first = report.first
    if first is None:
        return
    console.print(
        f"[red]TAMPERED[/red]: first bad position {first.position}: {first.kind} ({first.detail})"
    )
    for problem in report.problems[1:SHOWN]:
        console.print(f"  position {problem.position}: {problem.kind} ({problem.detail})")
    hidden = len(report.problems) - min(len(report.problems), SHOWN) + report.more
    if hidden > 0:
        console.print(f"  ... and {hidden} more")


@audit.command("verify")
def verify_command(
    store: StoreOption = DEFAULT_STORE,
    anchor: Annotated[
        Path | None, typer.Option(help="an anchor file written by `signoff audit anchor`")
    ] = None,
) -> None:
    """Checks every stored event against the hash chain, its head and an anchor."""
    report = _checked(store, anchor)
    _report(report)
    if not report.ok:
        raise typer.Exit(1)


@audit.command("anchor")
def anchor_command(
    out: Annotated[Path, typer.Option("--out", help="file to write the anchor to")],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Verifies the store, then saves its chain head to a file kept outside the database."""
    report = _checked(store, None)
    if not report.ok or report.head is None:
        _report(report)
        raise typer.Exit(1)
    Anchor.of(report.head).save(out)
    shown = masked_url(store)
    console.print(f"anchored position {report.head.position} of {shown} in {out}")
