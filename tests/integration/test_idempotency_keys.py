"""The idempotency key table shared by several engines on one store."""

from __future__ import annotations

import threading
from pathlib import Path

from signoff.adapters.persistence import parse_store_url, prepare_store
from signoff.application import SignoffApplication
from signoff.idempotency import Claim, KeyStore, Op


def test_engines_on_one_sqlite_file_claim_keys_at_once_without_locking_errors(tmp_path: Path):
    # Two applications on one SQLite file, as two engines are
    config = parse_store_url(f"sqlite:///{tmp_path}/keys.db")
    prepare_store(config)
    apps = [SignoffApplication(config.env) for _ in range(2)]
    answers: list[Claim] = []
    errors: list[Exception] = []

    # Each claims keys of its own as fast as it can, while the other writes too
    def claim(n: int) -> None:
        keys: KeyStore = apps[n].recorder  # type: ignore[assignment]
        for i in range(200):
            try:
                op = Op("claim", f"key-{n}-{i}", "fingerprint")
                answers.extend(keys.apply_key_ops([op], owner=f"engine-{n}", lease=60))
            except Exception as error:
                errors.append(error)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for app in apps:
        app.close()

    # Every claim is answered (a transaction that read first could not write after the
    # other's commit: "database is locked" at once, without waiting)
    assert errors == []
    assert [a.state for a in answers] == ["new"] * 400
