"""``signoff serve``: the engine, its scheduler and projections, and the NATS adapter, in
one process that drains in-flight commands on SIGTERM before it exits."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from signoff.adapters.nats import NatsAdapter, NatsSettings
from signoff.adapters.nats.identity import Authenticator
from signoff.adapters.nats.server import NatsServer
from signoff.adapters.nats.stream_identity import StreamMismatchError
from signoff.domain.errors import InvalidInputError
from signoff.engine import DEFAULT_STORE, Engine
from signoff.workflow import Workflow

console = Console(stderr=True)


def load_workflows(engine: Engine, modules: str) -> list[str]:
    """Imports each module of the comma-separated list and registers the Workflow
    subclasses it defines; returns their names."""
    names = []
    for module_name in filter(None, (m.strip() for m in modules.split(","))):
        module = importlib.import_module(module_name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if not issubclass(value, Workflow) or value.__module__ != module.__name__:
                continue
            name = getattr(value, "name", None)
            if isinstance(name, str) and name:
                engine.register(value)
                names.append(name)
    return names


def authenticator(
    key_file: Path | None, jwks: Path | None, audience: str | None, issuer: str | None
) -> Authenticator | None:
    """The JWT check the options ask for (None: unauthenticated)."""
    if key_file is None and jwks is None:
        return None
    key = key_file.read_text().strip() if key_file else None
    return Authenticator(key=key, jwks_file=jwks, audience=audience, issuer=issuer)


async def serve_until_stopped(
    engine: Engine, url: str, settings: NatsSettings, auth: Authenticator | None
) -> None:
    """Serves until SIGTERM or SIGINT, then drains (commands answered, events published)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with engine, NatsAdapter(engine, url, settings=settings, auth=auth):
        if auth is None:
            console.print("[yellow]unauthenticated[/yellow]: commands act as the body's 'by'")
        console.print(f"signoff serving {engine.store.url} on {url} ({settings.prefix}.>)")
        await stop.wait()
        console.print("draining in-flight commands ...")
    console.print("stopped")


def serve(
    store: Annotated[str, typer.Option("--store", help="event store URL")] = DEFAULT_STORE,
    nats_url: Annotated[
        str | None, typer.Option("--nats", help="NATS URL (default: a bundled nats-server)")
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
        Path | None, typer.Option(help="file with a PEM public key or HMAC secret for JWTs")
    ] = None,
    jwks: Annotated[Path | None, typer.Option(help="JSON Web Key Set file for JWTs")] = None,
    audience: Annotated[str | None, typer.Option(help="required JWT audience")] = None,
    issuer: Annotated[str | None, typer.Option(help="required JWT issuer")] = None,
    views: Annotated[
        str | None,
        typer.Option(
            help="keep the views live on a 'thread' or in a worker 'process' "
            "(default: process, thread for memory://)"
        ),
    ] = None,
) -> None:
    """Runs the engine and serves it over NATS until SIGTERM."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if views is None:
        views = "thread" if store.startswith("memory:") else "process"
    try:
        engine = Engine(store, views=views)
    except InvalidInputError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    names = load_workflows(engine, workflows)
    if names:
        console.print(f"workflows: {', '.join(sorted(names))}")
    settings = NatsSettings(
        prefix=prefix,
        events_stream=f"{streams}_EVENTS",
        commands_stream=f"{streams}_COMMANDS",
        dead_stream=f"{streams}_DEAD",
        reset_events=reset_events,
    )
    auth = authenticator(auth_key, jwks, audience, issuer)
    with contextlib.ExitStack() as stack:
        url = nats_url
        if url is None:
            server = stack.enter_context(NatsServer(data_dir, port=nats_port or None))
            url = server.url
            console.print(f"bundled nats-server with JetStream at {url} (data in {data_dir})")
        try:
            asyncio.run(serve_until_stopped(engine, url, settings, auth))
        except StreamMismatchError as error:
            console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
            raise typer.Exit(2) from None
