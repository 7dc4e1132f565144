"""What every ``signoff`` command shares: the ``--store`` option (also read from
``SIGNOFF_STORE``, so that a password need not sit in a command line), a check of the
store before a command opens it, and one way to fail: one line on stderr, exit code 2.

Exit codes: 0 done, 1 the command ran and found a problem (``audit verify``: tampered;
``serve``: its drain was cut short), 2 it could not run (bad option, store, module,
broker).
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer

from signoff.adapters.persistence import STORE_ENV, parse_store_url, prepare_store
from signoff.adapters.persistence.checks import check_exists

EXIT_CANNOT_RUN = 2
"""The command could not do its work (also typer's code for a usage error)."""

StoreOption = Annotated[str, typer.Option("--store", envvar=STORE_ENV, help="event store URL")]


def say_failure(message: str) -> None:
    """Prints why a command cannot run, as one line on stderr."""
    print(f"signoff: {' '.join(message.split())}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    """Prints one line on stderr and exits with code 2."""
    say_failure(message)
    raise typer.Exit(EXIT_CANNOT_RUN)


def existing_store(url: str) -> str:
    """``url``, after checking that the store exists and answers (commands that only
    read must not create an empty store for a mistyped URL); raises a StoreError."""
    check_exists(parse_store_url(url))
    return url


def usable_store(url: str) -> str:
    """``url``, after checking that the store answers (it is created when missing);
    raises a StoreError."""
    prepare_store(parse_store_url(url))
    return url
