"""Durations as people write them: "7 days", "1 hour", "30 minutes", "90 seconds"."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*,?", re.IGNORECASE)


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Turns "7 days", "1 hour 30 minutes", seconds or a timedelta into a timedelta.

    Raises:
        ValueError: the text is not a duration, or the duration is not positive.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    elif isinstance(value, int | float):
        result = timedelta(seconds=value)
    else:
        text = value.strip()
        position, seconds = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != position:
                break
            unit = _UNITS.get(match.group(2).lower())
            if unit is None:
                raise ValueError(f"unknown unit {match.group(2)!r} in duration {value!r}")
            seconds += float(match.group(1)) * unit
            position = match.end()
        if not text or position != len(text):
            raise ValueError(f"not a duration: {value!r} (try '7 days' or '30 minutes')")
        result = timedelta(seconds=seconds)
    if result <= timedelta(0):
        raise ValueError(f"a duration must be positive, got {value!r}")
    return result
