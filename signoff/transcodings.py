"""How value objects stored in events are written as JSON."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Transcoding
from pydantic import BaseModel


class PydanticAsDict(Transcoding):
    """Stores a pydantic value object as its JSON dict, and validates it on the way back."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.type = model
        self.model = model
        self.name = f"pydantic_{model.__name__}"

    def encode(self, obj: Any) -> Any:
        """Dumps the model to JSON-ready data."""
        assert isinstance(obj, BaseModel)
        return obj.model_dump(mode="json")

    def decode(self, data: Any) -> Any:
        """Validates stored data back into the model."""
        return self.model.model_validate(data)
