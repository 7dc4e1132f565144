"""The fleet benchmarks of ``make bench`` run and give sane figures. Their speed is
measured there, never asserted: these only keep them from rotting, with small sizes."""

from __future__ import annotations

import functools
import os

import pytest

from signoff.bench_fleet import fleet_cycles, takeover
from signoff.bench_support import postgres_store
from tests.integration.process_support import children_of, command_line

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def engine_processes_left() -> list[int]:
    return [pid for pid in children_of(os.getpid()) if "signoff.bench_worker" in command_line(pid)]


async def test_expense_cycles_run_on_one_and_two_engine_processes(postgres_server: str):
    fresh = functools.partial(postgres_store, postgres_server)

    figures = await fleet_cycles(fresh, 40, [1, 2])

    assert set(figures) == {"1 proc/s", "2 procs/s", "CPU 1 proc", "CPU 2 procs"}
    assert all(value > 0 for value in figures.values()), figures
    assert not engine_processes_left()


async def test_takeover_measures_the_wait_of_a_killed_engines_runs(postgres_server: str):
    fresh = functools.partial(postgres_store, postgres_server)

    figures = await takeover(fresh, 5, lease=1.0)

    assert 0 < figures["left at kill s"] <= figures["lease s"] == 1.0, figures
    assert 0 < figures["p50 s"] <= figures["max s"], figures
    assert not engine_processes_left()
