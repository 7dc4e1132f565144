"""The generated half of docs/nats.md: every subject with the JSON Schema of its body
(from the pydantic models), the reply envelopes, the results and the event subjects.

    python -m signoff.adapters.nats.protocol_doc docs/nats.md   # rewrites the section
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from signoff.adapters.nats.messages import ErrorReply, OkReply
from signoff.adapters.nats.relay import AGGREGATES, snake
from signoff.adapters.nats.routes import ROUTES
from signoff.domain.approval import Approval
from signoff.domain.base import SignoffEvent
from signoff.domain.schedule import Schedule
from signoff.domain.workflow_run import WorkflowRun

BEGIN = "<!-- BEGIN GENERATED: python -m signoff.adapters.nats.protocol_doc docs/nats.md -->"
END = "<!-- END GENERATED -->"


def _schema(kind: Any) -> dict[str, Any]:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return kind.model_json_schema()
    return TypeAdapter(kind).json_schema()


def _block(schema: Any) -> str:
    return "```json\n" + json.dumps(schema, indent=2, sort_keys=True) + "\n```\n"


def _result_name(kind: Any) -> str:
    if kind is None or kind is type(None):
        return "`null`"
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return f"[`{kind.__name__}`](#result-{kind.__name__.lower()})"
    args: tuple[Any, ...] = getattr(kind, "__args__", ())
    if getattr(kind, "__origin__", None) is list:
        return "array of " + _result_name(args[0])
    return " or ".join(_result_name(arg) for arg in args)


def _results() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for route in ROUTES.values():
        for candidate in getattr(route.result, "__args__", (route.result,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found[candidate.__name__] = candidate
    return [found[name] for name in sorted(found)]


def event_subjects() -> list[str]:
    """``signoff.events.<aggregate>.<event>.<id>`` for every event the domain emits."""
    subjects = []
    for aggregate in (Approval, WorkflowRun, Schedule):
        token = AGGREGATES.get(aggregate.__name__, aggregate.__name__.lower())
        for name, value in sorted(vars(aggregate).items()):
            emitted = isinstance(value, type) and issubclass(value, SignoffEvent)
            if emitted and name not in ("Event", "Created"):
                subjects.append(f"signoff.events.{token}.{snake(name)}.<id>")
    return subjects


def render() -> str:
    """The generated section, between its markers."""
    out = [BEGIN, "", "## Subjects and bodies", ""]
    out += ["| subject | body | result |", "|---|---|---|"]
    for name, route in ROUTES.items():
        body = f"[`{route.request.__name__}`](#body-{route.request.__name__.lower()})"
        out.append(f"| `signoff.{name}` | {body} | {_result_name(route.result)} |")
    out.append("")
    seen = set()
    for route in ROUTES.values():
        if route.request.__name__ in seen:
            continue
        seen.add(route.request.__name__)
        doc = (route.request.__doc__ or "").strip()
        out += [f"### Body {route.request.__name__}", "", doc, "", _block(_schema(route.request))]
    out += ["## Replies", ""]
    for envelope in (OkReply, ErrorReply):
        out += [f"### {envelope.__name__}", "", _block(_schema(envelope))]
    out += ["## Results", ""]
    for result in _results():
        out += [f"### Result {result.__name__}", "", _block(_schema(result))]
    out += ["## Event subjects", ""]
    out += [f"- `{subject}`" for subject in event_subjects()]
    out += ["", END]
    return "\n".join(out) + "\n"


def rewrite(path: Path) -> None:
    """Replaces the generated section of ``path`` (appends it when missing)."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END + "\n")
        text = head + render() + tail
    else:
        text = text + ("\n" if text else "") + render()
    path.write_text(text)


if __name__ == "__main__":
    rewrite(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/nats.md"))
