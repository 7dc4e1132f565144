"""Validated inputs of the engine's commands: bad input is refused before anything is stored."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
)

from signoff.domain.base import SYSTEM_ACTOR
from signoff.domain.durations import parse_duration
from signoff.domain.errors import InvalidInputError
from signoff.json_values import inspect_json

MAX_JSON_BYTES = 256 * 1024
"""Largest context or metadata document accepted, serialised."""


def _no_nul(text: str) -> str:
    """No name, title or reason needs a NUL character, and PostgreSQL's text cannot hold one."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters (\\x00)")
    return text


def _person(name: str) -> str:
    _no_nul(name)
    if name == SYSTEM_ACTOR:
        raise ValueError(f"{SYSTEM_ACTOR!r} is reserved for signoff's own actions")
    return name


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    problem, _ = inspect_json(value)
    if problem:
        raise ValueError(problem)
    if len(orjson.dumps(value)) > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES} bytes as JSON")
    return value


def _unique(names: list[str] | None) -> list[str] | None:
    if names is not None and len(set(names)) != len(names):
        raise ValueError("names must not repeat")
    return names


def _duration(value: Any) -> Any:
    if value is None:
        return None
    return parse_duration(value)


Person = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_person)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
JsonObject = Annotated[dict[str, JsonValue], AfterValidator(_bounded_json)]
Duration = Annotated[timedelta | None, BeforeValidator(_duration)]
Reason = Annotated[str, Field(max_length=5000), AfterValidator(_no_nul)]
People = Annotated[list[Person], Field(max_length=1000), AfterValidator(_unique)]
Names = Annotated[list[Name], Field(max_length=1000), AfterValidator(_unique)]


class Command(BaseModel):
    """Base of command inputs: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Escalation(Command):
    """One level of an escalation chain."""

    approvers: People = Field(default_factory=list)
    groups: Names = Field(default_factory=list)
    timeout: Duration = None


class RequestApproval(Command):
    """Asks for a decision."""

    title: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_no_nul)]
    requested_by: Person
    description: Annotated[str, Field(max_length=20_000), AfterValidator(_no_nul)] = ""
    context: JsonObject = Field(default_factory=dict)
    required_approvals: Annotated[int, Field(ge=1, le=1000)] = 1
    approvers: People = Field(default_factory=list)
    groups: Names = Field(default_factory=list)
    rejection_threshold: Annotated[int, Field(ge=1, le=1000)] = 1
    timeout: Duration = None
    on_timeout: Literal["expire", "reject", "approve", "escalate"] = "expire"
    remind_every: Duration = None
    escalate_after: Duration = None
    escalation: list[Escalation] = Field(default_factory=list, max_length=20)


class Decide(Command):
    """Approves or rejects, as one person."""

    by: Person
    groups: list[Name] = Field(default_factory=list, max_length=1000)
    reason: Reason | None = None
    metadata: JsonObject = Field(default_factory=dict)


class Cancel(Command):
    """Withdraws a request."""

    by: Person
    reason: Reason | None = None


class Reassign(Command):
    """Hands a pending approval to other approvers or groups."""

    by: Person
    approvers: People | None = None
    groups: Names | None = None
    by_groups: list[Name] = Field(default_factory=list, max_length=1000)
    reason: Reason | None = None


RunId = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\s]+$"), AfterValidator(_no_nul)
]


class StartWorkflow(Command):
    """Starts a run of a registered workflow."""

    name: Name
    params: JsonObject = Field(default_factory=dict)
    id: RunId | None = None
    metadata: JsonObject = Field(default_factory=dict)
    by: Name


class SendEvent(Command):
    """Delivers an event to a run's ``wait_for_event``."""

    type: Name
    payload: Annotated[
        JsonValue, AfterValidator(lambda v: _bounded_json({"payload": v})["payload"])
    ] = None
    by: Name


class Control(Command):
    """Pauses, resumes, terminates or restarts a run."""

    by: Name
    reason: Reason | None = None


CommandT = TypeVar("CommandT", bound=BaseModel)


def validate(model: type[CommandT], data: dict[str, Any]) -> CommandT:
    """Builds ``model`` from ``data``, turning validation errors into InvalidInputError."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = error.errors(include_url=False, include_context=False, include_input=False)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in d['loc']) or 'input'}: {d['msg']}" for d in details
        )
        raise InvalidInputError(
            f"invalid {model.__name__}: {summary}", errors=[dict(d) for d in details]
        ) from None


def as_list(values: Any) -> Any:
    """Turns tuples and other iterables into lists, leaving strings and odd types for
    validation to refuse (``list("bob")`` would silently become three approvers)."""
    if isinstance(values, str | bytes | dict) or not isinstance(values, Iterable):
        return values
    return list(values)
