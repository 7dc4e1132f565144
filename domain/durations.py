"""Durations as people write them: "7 days", "1 hour", "30 minutes", "90 seconds"."""

from __future__ import annotations

import functools
import math
import re
from datetime import timedelta

MAX_DURATION = timedelta(days=3650)
"""Longest accepted duration (ten years): anything longer is a mistake, not a plan."""

_UNITS = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*,?", re.IGNORECASE)


def parse_duration(value: object) -> timedelta:
    """Turns "7 days", "1 hour 30 minutes", seconds or a timedelta into a timedelta.

    Raises:
        ValueError: the text is not a duration, or the duration is not positive.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    elif isinstance(value, int | float):
        result = _seconds(float(value), value)
    elif isinstance(value, str):
        result = _parse_text(value)
    else:
        raise ValueError(f"not a duration: {value!r}")
    if result <= timedelta(0):
        raise ValueError(f"a duration must be positive, got {value!r}")
    if result > MAX_DURATION:
        raise ValueError(f"a duration may not exceed {MAX_DURATION.days} days, got {value!r}")
    return result


@functools.lru_cache(maxsize=256)
def _parse_text(value: str) -> timedelta:
    """A written duration (cached: workflows name the same few on every activation)."""
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
    return _seconds(seconds, value)


def _seconds(seconds: float, original: object) -> timedelta:
    if not math.isfinite(seconds) or abs(seconds) > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration may not exceed {MAX_DURATION.days} days, got {original!r}")
    return timedelta(seconds=seconds)
