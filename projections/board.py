"""The workflow board: one row per run with its status, latest progress and error."""

from __future__ import annotations

from signoff.domain.workflow_run import (
    COMPLETE,
    ERRORED,
    PAUSED,
    QUEUED,
    RUNNING,
    TERMINATED,
    WAITING,
)
from signoff.projections.base import AggregateRowProjection
from signoff.projections.records import EventRecord, plain
from signoff.projections.sql import (
    Row,
    ViewDatabase,
    decode_json,
)

RUNS = "view_runs"
COLUMNS = (
    "id",
    "name",
    "status",
    "metadata",
    "progress",
    "error",
    "waiting_for",
    "generation",
    "created_at",
    "updated_at",
    "completed_at",
    "position",
)
JSON_COLUMNS = ("metadata", "progress", "error", "waiting_for")


class BoardProjection(AggregateRowProjection):
    """Runs as a dashboard lists them (``get_workflows`` reads this table)."""

    name = "runs"
    version = 1
    tables = (RUNS,)
    aggregate = "WorkflowRun"
    creating_event = "Started"
    table = RUNS
    columns = COLUMNS
    json_columns = JSON_COLUMNS
    folded_reads = ("waiting_for",)

    def create_statements(self, db: ViewDatabase) -> list[str]:
        """The runs table and the indexes listings use."""
        t = db.table(RUNS)
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "status TEXT NOT NULL, metadata TEXT NOT NULL, progress TEXT, error TEXT, "
            "waiting_for TEXT, generation INTEGER NOT NULL, "
            "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
            "completed_at DOUBLE PRECISION, position BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {RUNS}_status ON {t} (status, name, created_at)",
            f"CREATE INDEX IF NOT EXISTS {RUNS}_created ON {t} (created_at, id)",
        ]

    def created(self, record: EventRecord) -> Row:
        """A run's row when it is started."""
        return _started(record)

    def folded(self, row: Row, record: EventRecord) -> Row:
        """The row after a later event of the run."""
        return _folded(row, record)


def _started(record: EventRecord) -> Row:
    data = record.data
    return {
        "id": record.aggregate_id,
        "name": data["name"],
        "status": QUEUED,
        "metadata": plain(data.get("metadata", {})),
        "progress": None,
        "error": None,
        "waiting_for": None,
        "generation": 1,
        "created_at": record.at,
        "updated_at": record.at,
        "completed_at": None,
        "position": record.position,
    }


def _folded(row: Row, record: EventRecord) -> Row:
    """The run's row after one event: the same status rules as WorkflowRun's ``@event``s."""
    data, event = record.data, record.event
    row["position"] = record.position
    row["updated_at"] = record.at
    if event == "StepRecorded":
        retrying = data.get("error") is not None and data.get("retry_at") is not None
        row["status"] = WAITING if retrying else RUNNING
    elif event == "Woken":
        row["status"] = QUEUED
    elif event == "ProgressReported":
        row["status"] = RUNNING
        row["progress"] = {"kind": data["kind"], "value": plain(data.get("value")), "at": record.at}
    elif event == "WaitStarted":
        row["status"] = WAITING
        row["waiting_for"] = {"name": data["name"], "kind": data["kind"]}
    elif event == "WaitResolved":
        current = row["waiting_for"]
        if current is not None and current.get("name") == data["name"]:
            row["waiting_for"] = None
        if data.get("wakes"):
            row["status"] = QUEUED
    elif event == "Completed":
        row["status"], row["completed_at"], row["waiting_for"] = COMPLETE, record.at, None
    elif event == "Errored":
        row["status"], row["completed_at"], row["waiting_for"] = ERRORED, record.at, None
        row["error"] = {"type": data["error_type"], "message": data["message"]}
    elif event == "Paused":
        row["status"] = PAUSED
    elif event == "Resumed":
        row["status"] = data["status"]
    elif event == "Terminated":
        row["status"], row["completed_at"], row["waiting_for"] = TERMINATED, record.at, None
    elif event == "Restarted":
        row.update(status=QUEUED, generation=int(data["generation"]), progress=None)
        row.update(error=None, waiting_for=None, completed_at=None)
    return row


def public_row(row: Row) -> Row:
    """A stored row with its JSON columns decoded."""
    return decode_json(row, JSON_COLUMNS)
