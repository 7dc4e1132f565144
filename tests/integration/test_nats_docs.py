"""docs/nats.md carries the schemas the code has (regenerate with
``python -m signoff.adapters.nats.protocol_doc docs/nats.md``)."""

from __future__ import annotations

from pathlib import Path

from signoff.adapters.nats.protocol_doc import render
from signoff.adapters.nats.routes import ROUTES

DOC = Path(__file__).parents[2] / "docs" / "nats.md"


def test_the_protocol_doc_is_in_sync_with_the_models():
    assert render() in DOC.read_text()


def test_every_subject_is_documented():
    text = DOC.read_text()
    for name in ROUTES:
        assert f"`signoff.{name}`" in text
