"""Fuzzing command bodies over the wire: whatever arrives, the reply is a well-formed ok or
a typed error (never internal), a refused command stores nothing, and the service goes on."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import nats
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.adapters.nats.routes import ROUTES
from tests.integration.nats_support import Served, served, shared_nats, unique_settings

FIELDS = sorted(
    {name for route in ROUTES.values() for name in route.request.model_fields} | {"x", ""}
)


def dump(value: Any) -> bytes:
    """JSON as any sender might write it (orjson refuses integers past 64 bits)."""
    return json.dumps(value).encode()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["system", "alice", "7 days", "expire", "", " ", "nope"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.one_of(
    st.binary(max_size=120),
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=6).map(dump),
    st.builds(
        lambda title, by, extra: dump({"title": title, "requested_by": by, **extra}),
        st.text(max_size=20),
        st.sampled_from(["carol", "system", "", 5]),
        st.dictionaries(st.sampled_from(FIELDS), values, max_size=2),
    ),
)


@pytest.fixture(scope="module")
def engine_in_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """An engine served over the shared broker from a thread of its own."""
    url, store = shared_nats(), f"sqlite:///{tmp_path_factory.mktemp('wire')}/e.db"
    ready, holder = threading.Event(), dict[str, Any]()

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        async with served(store, url, unique_settings()) as s:
            holder["served"] = s
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield holder["served"]
    holder["loop"].call_soon_threadsafe(holder["stop"].set)
    thread.join(30)


async def ask(url: str, subject: str, body: bytes) -> Any:
    nc = await nats.connect(url)
    try:
        return orjson.loads((await nc.request(subject, body, timeout=10)).data)
    finally:
        await nc.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(sorted(ROUTES)), body=bodies)
def test_any_body_gets_a_typed_reply_and_a_refusal_stores_nothing(
    engine_in_thread: Served, name: str, body: bytes
) -> None:
    s = engine_in_thread
    before = s.stored()

    reply = asyncio.run(ask(s.url, f"{s.settings.prefix}.{name}", body))

    assert set(reply) in ({"ok", "result"}, {"ok", "error"})
    if not reply["ok"]:
        assert reply["error"]["code"] in {"invalid_request", "not_found", "conflict", "forbidden"}
        assert isinstance(reply["error"]["message"], str)
        assert s.stored() == before


def test_the_service_still_serves_after_the_fuzzing(engine_in_thread: Served) -> None:
    s = engine_in_thread
    body = orjson.dumps({"title": "after", "requested_by": "carol"})

    reply = asyncio.run(ask(s.url, f"{s.settings.prefix}.approval.request", body))

    assert reply["ok"] is True
