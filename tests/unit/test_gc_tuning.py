"""The collector settings an engine applies while it runs, and gives back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from signoff import gc_tuning


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*gc_tuning.PYTHON_DEFAULTS)
    yield
    gc.set_threshold(*before)


def test_engines_raise_the_thresholds_while_any_runs(default_thresholds: None):
    gc_tuning.tune()
    gc_tuning.tune()  # a second engine in the same process
    assert gc.get_threshold() == gc_tuning.ENGINE_THRESHOLDS
    assert gc.get_freeze_count() > 0
    gc_tuning.untune()
    assert gc.get_threshold() == gc_tuning.ENGINE_THRESHOLDS  # one still runs
    gc_tuning.untune()
    assert gc.get_threshold() == gc_tuning.PYTHON_DEFAULTS
    gc_tuning.untune()  # more closes than starts change nothing
    assert gc.get_threshold() == gc_tuning.PYTHON_DEFAULTS


def test_a_process_with_its_own_thresholds_keeps_them(default_thresholds: None):
    gc.set_threshold(5000, 5, 5)
    gc_tuning.tune()
    assert gc.get_threshold() == (5000, 5, 5)
    gc_tuning.untune()
    assert gc.get_threshold() == (5000, 5, 5)


async def test_an_engine_tunes_on_start_and_restores_on_close(
    default_thresholds: None, tmp_path: object
):
    from signoff import Engine

    async with Engine(f"sqlite:///{tmp_path}/e.db"):
        assert gc.get_threshold() == gc_tuning.ENGINE_THRESHOLDS
    assert gc.get_threshold() == gc_tuning.PYTHON_DEFAULTS
    async with Engine(f"sqlite:///{tmp_path}/e.db", tune_gc=False):
        assert gc.get_threshold() == gc_tuning.PYTHON_DEFAULTS
