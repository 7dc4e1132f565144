"""How value objects stored in events are written as JSON."""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding
from pydantic import BaseModel


class FastJSONTranscoder(JSONTranscoder):
    """eventsourcing's JSON transcoder, encoding with orjson (several times faster).

    The stored format is unchanged: registered types (datetimes, value objects)
    are still written as ``{"_type_": ..., "_data_": ...}`` and decoded by the
    standard decoder. Event data holds no UUID objects (ids are strings), which
    orjson would write as plain strings.
    """

    _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS

    def encode(self, obj: Any) -> bytes:
        """Serialises ``obj`` to UTF-8 JSON bytes."""
        return orjson.dumps(obj, default=self._encode_obj, option=self._OPTIONS)


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
