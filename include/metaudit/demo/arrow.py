"""Column builders for the demo tables: ids, dates, timestamps and choices as Arrow arrays.

The demo stores every table in the shape a SQLite source holds (data contract):
text as text, dates as ISO ``YYYY-MM-DD`` text, timestamps as ISO 8601 text in
UTC, booleans as 0/1, ints as integers and nums as floats. PostgreSQL parses
the same values into its typed columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from metaudit.spec.contract import BOOL, DATE, INT, NUM, TABLES, TIMESTAMP

# Arrow types of the stored values, per contract column type.
STORAGE_TYPES: dict[str, pa.DataType] = {
    INT: pa.int64(),
    NUM: pa.float64(),
    BOOL: pa.int64(),
    DATE: pa.string(),
    TIMESTAMP: pa.string(),
}

# "HH:MM:00" for every minute of a day, so timestamps are built by lookup, not formatting.
_MINUTES = pa.array([f"T{m // 60:02d}:{m % 60:02d}:00Z" for m in range(24 * 60)])


def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For parents with ``counts`` children each: each child's parent and rank (0, 1, ...)."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(owner), dtype=np.int64) - np.repeat(starts, counts)
    return owner, rank


def ids(prefix: str, start: int, n: int, width: int) -> pa.Array:
    """``n`` ids ``PREFIX000123`` numbered from ``start``, zero-padded so text order = number order."""
    numbers = pa.array(np.arange(start, start + n, dtype=np.int64)).cast(pa.string())
    padded = pc.utf8_lpad(numbers, width=width, padding="0")
    result: pa.Array = pc.binary_join_element_wise(prefix, padded, "")
    return result


def digits(prefix: str, values: np.ndarray, width: int) -> pa.Array:
    """``prefix`` followed by ``values`` zero-padded to ``width`` digits (member ids, phones)."""
    text = pc.utf8_lpad(pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string()), width, "0")
    result: pa.Array = pc.binary_join_element_wise(prefix, text, "")
    return result


def join(*parts: pa.Array | str) -> pa.Array:
    """Concatenate string arrays (and literal strings) element-wise."""
    result: pa.Array = pc.binary_join_element_wise(*parts, "")
    return result


def take(values: Sequence[Any] | pa.Array, index: np.ndarray) -> pa.Array:
    """``values[index]`` as an Arrow array (a choice from a vocabulary, a parent's id)."""
    source = values if isinstance(values, pa.Array) else pa.array(list(values))
    result: pa.Array = source.take(pa.array(np.asarray(index, dtype=np.int64)))
    return result


def dates(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """ISO dates from day numbers (days since 1970-01-01); NULL where not ``valid``."""
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    day32 = pa.array(np.asarray(days, dtype=np.int32), type=pa.int32(), mask=mask)
    result: pa.Array = day32.cast(pa.date32()).cast(pa.string())
    return result


def stamps(utc_seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """ISO 8601 UTC timestamps (``2025-03-04T22:15:00Z``, minute precision); NULL where not valid."""
    seconds = np.asarray(utc_seconds, dtype=np.int64)
    day = dates(seconds // 86400, valid)
    minute = take(_MINUTES, (seconds % 86400) // 60)
    return join(day, minute)


def ints(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An int64 column; NULL where not ``valid``."""
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    return pa.array(np.asarray(values, dtype=np.int64), type=pa.int64(), mask=mask)


def nums(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A float64 column rounded to cents; NULL where not ``valid``."""
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    rounded = np.round(np.asarray(values, dtype=np.float64), 2)
    return pa.array(rounded, type=pa.float64(), mask=mask)


def nulls(n: int, type_: pa.DataType | None = None) -> pa.Array:
    """A column of ``n`` NULLs."""
    return pa.nulls(n, type=type_ or pa.string())


def where(condition: np.ndarray, yes: pa.Array, no: pa.Array) -> pa.Array:
    """Element-wise choice between two arrays of the same type."""
    result: pa.Array = pc.if_else(pa.array(np.asarray(condition, dtype=bool)), yes, no)
    return result


def storage_type(table: str, column: str) -> pa.DataType:
    """The Arrow type a clean value of ``table.column`` is stored as."""
    return STORAGE_TYPES.get(TABLES[table].column(column).type, pa.string())


def table(name: str, columns: Mapping[str, pa.Array]) -> pa.Table:
    """An Arrow table with exactly the contract columns of ``name``, in contract order."""
    expected = TABLES[name].column_names
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    if missing or extra:
        raise ValueError(f"demo table {name}: missing {missing}, unexpected {extra}")
    arrays = []
    for column in expected:
        array = columns[column]
        wanted = storage_type(name, column)
        if array.type != wanted:
            array = array.cast(wanted)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=list(expected))
