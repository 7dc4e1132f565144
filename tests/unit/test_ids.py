"""Ids from the pooled OS randomness: well-formed, unique, and never shared with a fork."""

from __future__ import annotations

import os
import threading
import uuid

from signoff.ids import new_command_id, new_id, random_bytes


def test_ids_are_version_4_uuids_and_unique_across_threads():
    found: list[str] = []

    def draw() -> None:
        found.extend(new_id() for _ in range(20_000))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == len(found) == 80_000
    parsed = uuid.UUID(found[0])
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == found[0]
    assert len(new_command_id()) == 24


def test_a_forked_child_does_not_reuse_the_parents_pooled_bytes():
    random_bytes(16)  # the pool holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next bytes and leave at once
        os.write(write, random_bytes(64))
        os._exit(0)
    os.close(write)
    child = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 64
    assert child != random_bytes(64)
