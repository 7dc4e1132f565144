"""Every example runs to the end (they are documentation: they must stay true)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_the_example_runs(example: Path, tmp_path: Path):
    store = f"sqlite:///{tmp_path}/events.db"
    done = subprocess.run(
        [sys.executable, str(example), store], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()
