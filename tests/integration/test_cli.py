"""The command line, run as a real process on a SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def signoff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signoff", *args], capture_output=True, text=True, timeout=120
    )


def test_demo_records_decisions_and_prints_their_audit_trails(tmp_path: Path):
    store = f"sqlite:///{tmp_path}/demo.db"

    done = signoff("demo", "--store", store)

    assert done.returncode == 0, done.stderr
    assert "already approved by this user" in done.stdout
    for line in ("-> approved", "-> rejected", "Requested", "VoteCast", "wrong segment"):
        assert line in done.stdout
    assert (tmp_path / "demo.db").exists()


def test_history_of_an_unknown_id_fails_with_a_typed_error(tmp_path: Path):
    store = f"sqlite:///{tmp_path}/x.db"
    assert signoff("demo", "--store", store).returncode == 0

    done = signoff("history", "nope", "--store", store)

    assert done.returncode == 2
    assert "NotFoundError" in done.stdout


def test_pending_lists_what_an_approver_may_decide(tmp_path: Path):
    store = f"sqlite:///{tmp_path}/p.db"
    assert signoff("demo", "--store", store).returncode == 0

    done = signoff("pending", "--store", store, "--approver", "alice")

    assert done.returncode == 0, done.stderr
    assert "pending approvals" in done.stdout
