"""Many rows in one statement, the way each database does it fastest.

SQLite's ``executemany`` is a loop in C over one prepared statement. psycopg's
``executemany`` sends one statement per row through its pipeline, about
10 µs of Python each; PostgreSQL takes the same rows as one statement over
column arrays (``unnest``), sent in binary (psycopg's text format escapes every
element with regular expressions: five times slower). The writer inserts a
few hundred index and chain rows per transaction, so on PostgreSQL this is
most of what the write path costs in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Cursor = Any


class BulkInsert:
    """``INSERT INTO table (columns) ... [suffix]`` for a list of rows."""

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        pg_types: Sequence[str],
        *,
        param: str,
        suffix: str = "",
    ) -> None:
        self.arrays = param == "%s"
        names = ", ".join(columns)
        if self.arrays:
            unnest = ", ".join(f"%b::{t}[]" for t in pg_types)
            self.sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({unnest}) {suffix}"
        else:
            values = ", ".join([param] * len(columns))
            self.sql = f"INSERT INTO {table} ({names}) VALUES ({values}) {suffix}"
        self._floats = [i for i, t in enumerate(pg_types) if t == "float8"]

    def __call__(self, cursor: Cursor, rows: Sequence[Sequence[Any]]) -> None:
        """Inserts ``rows`` (tuples in column order); nothing for no rows."""
        if not rows:
            return
        if self.arrays:
            columns = [list(column) for column in zip(*rows, strict=True)]
            for i in self._floats:  # psycopg refuses a list mixing ints and floats
                columns[i] = [None if v is None else float(v) for v in columns[i]]
            cursor.execute(self.sql, columns, prepare=True)
        else:
            cursor.executemany(self.sql, rows)


class BulkDelete:
    """``DELETE FROM table WHERE column = any of the keys``."""

    def __init__(self, table: str, column: str, *, param: str) -> None:
        self.arrays = param == "%s"
        condition = f"{column} = ANY(%b)" if self.arrays else f"{column} = {param}"
        self.sql = f"DELETE FROM {table} WHERE {condition}"

    def __call__(self, cursor: Cursor, keys: Sequence[Any]) -> None:
        """Deletes the rows whose column holds one of ``keys``."""
        if not keys:
            return
        if self.arrays:
            cursor.execute(self.sql, (list(keys),), prepare=True)
        else:
            cursor.executemany(self.sql, [(key,) for key in keys])
