"""One pass over a JSON-like value: can the event store hold it, and unchanged?"""

from __future__ import annotations

import math
from typing import Any

_SCALARS = (bool, type(None))


def inspect_json(value: Any) -> tuple[str | None, bool]:
    """Returns (why the store cannot hold ``value``, or None; whether it is plain JSON).

    Plain JSON (dicts with string keys, lists, strings, 64-bit integers, finite
    floats, booleans, None) is stored and read back unchanged. Anything else
    (a tuple, a datetime) may be storable but comes back changed.
    """
    plain = True
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "strings must not contain NUL characters (\\x00)", False
            continue
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                return "integers must fit in 64 bits", False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "NaN and Infinity are not JSON", False
        elif isinstance(item, dict):
            if len(item) == 2 and "_type_" in item and "_data_" in item:
                return 'objects with exactly the keys "_type_" and "_data_" are reserved', False
            if not all(isinstance(k, str) for k in item):
                plain = False
            elif any("\x00" in k for k in item):
                return "keys must not contain NUL characters (\\x00)", False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, tuple):
            plain = False
            stack.extend(item)
        else:
            plain = False
    return None, plain
