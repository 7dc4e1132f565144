"""Random approval command sequences against each store, checked after every step."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from hypothesis import settings

from signoff.testing import ApprovalMachine
from tests.conftest import POSTGRES_URL, postgres_available


class InMemory(ApprovalMachine):
    store_url = "memory://"


class OnSQLite(ApprovalMachine):
    store_url = "sqlite://"  # a fresh file per example


TestApprovalsInMemory = InMemory.TestCase
TestApprovalsInMemory.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)

TestApprovalsOnSQLite = OnSQLite.TestCase
TestApprovalsOnSQLite.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


@pytest.mark.postgres
def test_approvals_on_postgres_short_profile() -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL not reachable (outside CI only)")
    schema = f"p_{uuid.uuid4().hex[:12]}"

    class OnPostgres(ApprovalMachine):
        store_url = f"{POSTGRES_URL}?schema={schema}"

    try:
        run = OnPostgres.TestCase
        run.settings = settings(max_examples=15, stateful_step_count=20, deadline=None)
        run("runTest").runTest()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
