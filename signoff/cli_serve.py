"""``signoff serve``: the engine, its scheduler and projections, and the NATS adapter, in
one process that drains in-flight commands on SIGTERM before it exits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from pathlib import Path
from typing import Annotated

import jwt
import nats.errors
import typer
from rich.console import Console

from signoff.adapters.nats import NatsAdapter, NatsSettings
from signoff.adapters.nats.connection import NatsRefusedError
from signoff.adapters.nats.identity import Authenticator
from signoff.adapters.nats.server import NatsServer
from signoff.cli_common import StoreOption, usable_store
from signoff.domain.durations import parse_duration
from signoff.domain.errors import InvalidInputError
from signoff.engine import DEFAULT_STORE, Engine
from signoff.redact import masked_url
from signoff.shutdown import EXIT_CUT_SHORT, Shutdown, interrupt_on_sigterm
from signoff.workflow_modules import load_workflows

console = Console(stderr=True, soft_wrap=True)  # one line per message, however long
log = logging.getLogger("signoff.serve")


def authenticator(
    key_file: Path | None, jwks: Path | None, audience: str | None, issuer: str | None
) -> Authenticator | None:
    """The JWT check the options ask for (None: unauthenticated)."""
    if key_file is None and jwks is None:
        return None
    try:
        key = key_file.read_text().strip() if key_file else None
        return Authenticator(key=key, jwks_file=jwks, audience=audience, issuer=issuer)
    except (OSError, ValueError, jwt.PyJWTError) as error:
        raise InvalidInputError(f"cannot use --auth-key/--jwks: {error}") from None


async def serve_until_stopped(
    engine: Engine,
    url: str,
    settings: NatsSettings,
    auth: Authenticator | None,
    *,
    drain_timeout: float = 30.0,
    broker: NatsServer | None = None,
) -> int:
    """Serves until SIGTERM or SIGINT, then drains (commands answered, events published).

    Returns the exit code: 0 stopped cleanly (also when stopped while starting), 1 the
    broker went away during the drain. A second signal, or a stop that outlasts
    ``drain_timeout``, ends the process with code 1 (stopping ``broker`` first): see
    :mod:`signoff.shutdown`.
    """
    before_exit = functools.partial(broker.stop, timeout=2) if broker is not None else None
    with Shutdown(timeout=drain_timeout, before_exit=before_exit) as shutdown:
        try:
            async with engine:
                adapter = NatsAdapter(engine, url, settings=settings, auth=auth)
                try:
                    await _start(adapter)
                    if auth is None:
                        console.print(
                            "[yellow]unauthenticated[/yellow]: commands act as the body's 'by'"
                        )
                    console.print(
                        f"signoff serving {engine.store.shown_url} on {masked_url(url)} "
                        f"({settings.prefix}.>)"
                    )
                    shutdown.serving()
                    await shutdown.requested.wait()
                    console.print("draining in-flight commands ...")
                finally:
                    drained = await _drain(adapter)
        except asyncio.CancelledError:
            console.print("stopped before serving")
            return 0
    console.print("stopped" if drained else "[red]stopped; the drain could not finish[/red]")
    return 0 if drained else EXIT_CUT_SHORT


async def _start(adapter: NatsAdapter) -> None:
    """Starts the adapter; a broker that answers but refuses what signoff needs (no
    JetStream) raises NatsRefusedError."""
    try:
        await adapter.start()
    except nats.errors.Error as error:
        raise NatsRefusedError(adapter.url, error) from None


async def _drain(adapter: NatsAdapter) -> bool:
    """Stops the adapter; tells whether it could (a broker gone away fails the last
    flush and close: replies and acks may be lost, and are retried by their senders)."""
    try:
        await adapter.stop()
    except (OSError, nats.errors.Error) as error:
        log.warning("draining the NATS adapter failed: %s", error)
        return False
    return True


def serve(
    store: StoreOption = DEFAULT_STORE,
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats", envvar="SIGNOFF_NATS", help="NATS URL (default: a bundled nats-server)"
        ),
    ] = None,
    workflows: Annotated[
        str,
        typer.Option("--workflows", help="modules whose Workflow classes to run, comma-separated"),
    ] = "",
    data_dir: Annotated[
        Path, typer.Option(help="where the bundled nats-server keeps JetStream data")
    ] = Path("signoff-nats"),
    nats_port: Annotated[
        int, typer.Option(help="port of the bundled nats-server (0: any free)")
    ] = 0,
    prefix: Annotated[str, typer.Option(help="first token of every subject")] = "signoff",
    streams: Annotated[str, typer.Option(help="stream names are <streams>_EVENTS ...")] = "SIGNOFF",
    reset_events: Annotated[
        bool,
        typer.Option(
            "--reset-events",
            help="delete and recreate the events stream: republishes the store's whole "
            "history from notification 1 (when the stream mirrors another or a reset store)",
        ),
    ] = False,
    auth_key: Annotated[
        Path | None,
        typer.Option(
            envvar="SIGNOFF_AUTH_KEY", help="file with a PEM public key or HMAC secret for JWTs"
        ),
    ] = None,
    jwks: Annotated[
        Path | None, typer.Option(envvar="SIGNOFF_JWKS", help="JSON Web Key Set file for JWTs")
    ] = None,
    audience: Annotated[str | None, typer.Option(help="required JWT audience")] = None,
    issuer: Annotated[str | None, typer.Option(help="required JWT issuer")] = None,
    views: Annotated[
        str | None,
        typer.Option(
            help="keep the views live on a 'thread' or in a worker 'process' "
            "(default: process, thread for memory://)"
        ),
    ] = None,
    nats_connect_timeout: Annotated[
        float,
        typer.Option(help="seconds to keep trying the first connection to NATS"),
    ] = 30.0,
    drain_timeout: Annotated[
        float,
        typer.Option(help="seconds the stop on SIGTERM may take before the process just exits"),
    ] = 30.0,
    lease: Annotated[
        str,
        typer.Option(
            help="how long a run (or a schedule's firing) stays with this engine unrenewed: "
            "the runs of an engine that died are taken over by the others after it"
        ),
    ] = "30 seconds",
    idempotency_lease: Annotated[
        str,
        typer.Option(
            help="how long a keyed command stays claimed by an engine that went silent: "
            "a retry with the same key runs it elsewhere after it"
        ),
    ] = "60 seconds",
    max_clock_skew: Annotated[
        str,
        typer.Option(help="refuse to start when this host's clock is further from the store's"),
    ] = "5 seconds",
) -> None:
    """Runs the engine and serves it over NATS until SIGTERM.

    Exit codes: 0 stopped (SIGTERM, Ctrl-C), 1 drain cut short, 2 could not start (one line why).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        key_lease = parse_duration(idempotency_lease).total_seconds()
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--idempotency-lease") from None
    try:
        with interrupt_on_sigterm():
            code = _serve(
                store,
                nats_url,
                workflows,
                data_dir,
                nats_port,
                NatsSettings(
                    prefix=prefix,
                    events_stream=f"{streams}_EVENTS",
                    commands_stream=f"{streams}_COMMANDS",
                    dead_stream=f"{streams}_DEAD",
                    connect_timeout=nats_connect_timeout,
                    reset_events=reset_events,
                    idempotency_lease=key_lease,
                ),
                authenticator(auth_key, jwks, audience, issuer),
                views,
                drain_timeout,
                lease,
                max_clock_skew,
            )
    except KeyboardInterrupt:  # a signal outside the event loop (starting the broker ...)
        console.print("stopped")
        code = 0
    raise typer.Exit(code)


def _serve(
    store: str,
    nats_url: str | None,
    workflows: str,
    data_dir: Path,
    nats_port: int,
    settings: NatsSettings,
    auth: Authenticator | None,
    views: str | None,
    drain_timeout: float,
    lease: str,
    max_clock_skew: str,
) -> int:
    """Checks the store and the workflows before starting a broker, then serves; a
    SignoffError says why it cannot start (the broker it started is stopped)."""
    if views is None:
        views = "thread" if store.startswith("memory:") else "process"
    engine = Engine(store, views=views, lease=lease, max_clock_skew=max_clock_skew)
    if engine.store.is_durable:
        usable_store(store)
    names = load_workflows(engine, workflows)
    if names:
        console.print(f"workflows: {', '.join(sorted(names))}")
    with contextlib.ExitStack() as stack:
        server, url = None, nats_url
        if url is None:
            server = stack.enter_context(NatsServer(data_dir, port=nats_port or None))
            url = server.url
            console.print(f"bundled nats-server with JetStream at {url} (data in {data_dir})")
        return asyncio.run(
            serve_until_stopped(
                engine, url, settings, auth, drain_timeout=drain_timeout, broker=server
            )
        )
