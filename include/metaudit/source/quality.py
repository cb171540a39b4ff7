"""Typing the raw text of a source, and the data-contract rules DQ-001..DQ-003.

Real sources are not healthy. Nothing here raises on bad values: a value that
cannot be read becomes NA for the rules (rulebook reading 1) and a DQ-003
finding names it; a duplicated key keeps the first row (DQ-001); a link to a
row that does not exist is DQ-002. The cost of building findings scales with
the number of bad rows, not with the size of the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from metaudit.spec.contract import (
    BOOL,
    DATE,
    INT,
    NUM,
    PARENT_OF,
    TABLES,
    TEXT,
    TIMESTAMP,
    Column,
    Table,
)
from metaudit.spec.findings import Finding

_BOOLEANS = {"0": False, "1": True, "true": True, "false": False, "t": True, "f": False}

# Tables whose rows name their client directly, in an order where parents come first.
_CLIENT_TABLES = (
    "insurance_policies",
    "rehab_discharges",
    "conditions",
    "referrals",
    "intake_forms",
    "assessments",
    "plans_of_exercise",
    "sessions",
    "progress_reports",
    "claims",
)


@dataclass
class TypedSource:
    """Typed contract tables and what the data-quality rules found in them.

    ``tables`` holds one row per key (first row of a duplicated key; rows
    without a key dropped), with ``client_id`` and ``practice_id`` columns
    attributing every row that reaches a client. ``unreadable`` names, per
    table, the rows (by position in ``tables``) and columns whose stored value
    could not be read, as opposed to NULL, which the as-of view needs to tell
    apart (rulebook readings 3 and 18).
    """

    tables: dict[str, pd.DataFrame]
    unreadable: dict[str, pd.DataFrame]
    findings: list[Finding] = field(default_factory=list)
    # Read from a partition: the SHA-256 of its files, the same for the same records
    # (:func:`metaudit.source.snapshot.read_partition`); None when typed in memory.
    digest: str | None = None


def parse_column(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    """Return (typed values, mask of stored values that could not be read).

    Free text is only trimmed (blank is NA). Every other column is judged once
    per distinct stored value and the verdicts spread back to the rows: a
    million session dates hold a few thousand distinct strings, and every
    parser judges each value on its own, so the result is the same as parsing
    every row.
    """
    raw, not_utf8 = without_invalid_utf8(_as_string(raw))
    if column.type == TEXT and column.values is None:
        return clean_text(raw), pd.Series(not_utf8, index=raw.index)
    codes, distinct = pd.factorize(raw)
    values, bad = _parse_values(pd.Series(distinct, dtype="string"), column)
    typed = values.array.take(codes, allow_fill=True)
    # Code -1 (NULL) picks the appended False: a NULL is missing, not unreadable.
    unreadable = np.append(bad.to_numpy(dtype=bool), False)[codes] | not_utf8
    return pd.Series(typed, index=raw.index), pd.Series(unreadable, index=raw.index)


def without_invalid_utf8(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(the text with every value that is not valid UTF-8 as NA, mask of those values).

    Arrow strings must be UTF-8, but a reader hands SQLite's BLOBs over unchecked and
    the first compute kernel that meets one raises (rulebook reading 21: unreadable).
    Arrow validates a whole column in native code; only a column that fails is
    searched, by halves, so the cost follows the bad values. Valid values stay exact.
    """
    strings = pa.array(raw.array)
    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    bad: list[int] = []
    start = 0
    for chunk in chunks:
        bad.extend(start + at for at in _invalid_utf8_positions(chunk))
        start += len(chunk)
    mask = np.zeros(len(raw), dtype=bool)
    if not bad:
        return raw, mask
    mask[bad] = True
    as_bytes = strings.cast(pa.large_binary() if _is_large(strings) else pa.binary())
    kept = pc.if_else(pa.array(mask), pa.scalar(None, as_bytes.type), as_bytes)
    cleaned = kept.cast(strings.type)
    return pd.Series(pd.arrays.ArrowStringArray(cleaned), index=raw.index), mask


def _is_large(strings: pa.Array | pa.ChunkedArray) -> bool:
    return bool(pa.types.is_large_string(strings.type))


def _invalid_utf8_positions(chunk: pa.Array) -> list[int]:
    """Positions in ``chunk`` of values that are not valid UTF-8 (none: one native pass)."""
    try:
        chunk.validate(full=True)
    except pa.ArrowInvalid:
        if len(chunk) == 1:
            return [0]
        half = len(chunk) // 2
        return _invalid_utf8_positions(chunk.slice(0, half)) + [
            half + at for at in _invalid_utf8_positions(chunk.slice(half))
        ]
    return []


def clean_text(raw: pd.Series) -> pd.Series:
    """Text trimmed of surrounding whitespace, blank or whitespace-only as NA."""
    text = pa.array(_as_string(raw).array)
    trimmed = pc.utf8_trim_whitespace(text)
    cleaned = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)
    return pd.Series(pd.arrays.ArrowStringArray(cleaned), index=raw.index)


def _as_string(raw: pd.Series) -> pd.Series:
    """The column as Arrow-backed pandas strings (NA for NULL), copied only when needed."""
    if raw.dtype == _STRING:
        return raw
    return raw.astype(_STRING)


_STRING = pd.StringDtype("pyarrow")


def _parse_values(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    """(typed values, unreadable mask) of stored values, judged one by one."""
    text = raw.astype("string").str.strip()
    text = text.mask(text == "")
    present = text.notna()
    parser = _PARSERS[column.type]
    values, readable = parser(text, column)
    bad = present & ~readable.fillna(False).astype(bool)
    values = values.mask(bad)
    return values, bad


def _parse_text(text: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    if column.values is None:
        return text, pd.Series(True, index=text.index)
    canonical = {v.casefold(): v for v in column.values}
    mapped = text.str.casefold().map(canonical).astype("string")
    return mapped, mapped.notna()


def _parse_int(text: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    """Whole numbers of the signed 64-bit range (rulebook reading 21); 2.5, 1e30 and
    9223372036854775808 are unreadable, never wrapped around."""
    digits = _flag(text.str.fullmatch(r"[+-]?\d+"))
    # Written as digits: exact, judged by length and (at 19 digits) by comparing text.
    magnitude = text.where(digits).str.lstrip("+-").str.lstrip("0")
    width = magnitude.str.len().fillna(99).to_numpy(dtype=np.int64)
    negative = _flag(text.str.startswith("-"))
    limit = pd.Series(np.where(negative, _INT64_MIN_DIGITS, _INT64_MAX_DIGITS), index=text.index)
    within = _flag(magnitude <= limit.astype(_STRING))
    fits = pd.Series(digits & ((width < 19) | ((width == 19) & within)), index=text.index)
    # Arrow parses neither "+5" nor very long runs of zeros: the sign and the magnitude.
    written = magnitude.mask(magnitude == "", "0")
    written = written.mask(pd.Series(negative, index=text.index), "-" + written)
    exact = pa.array(written.where(fits).astype(_STRING).array).cast(pa.int64())
    number = pd.Series(pd.arrays.ArrowExtensionArray(exact), index=text.index).astype("Int64")
    # Otherwise (15.0, 1e3): a float, readable when whole and inside the range.
    other = pd.to_numeric(text.where(~digits), errors="coerce").astype("Float64")
    whole = (other % 1 == 0) & (other >= -(2.0**63)) & (other < 2.0**63)
    whole = whole.fillna(False).astype(bool)
    number = number.mask(whole, other.where(whole).astype("Int64"))
    return number, fits | whole


_INT64_MAX_DIGITS = str(2**63 - 1)


def _flag(mask: pd.Series) -> np.ndarray:
    """A nullable boolean mask as numpy booleans, NA as False."""
    return mask.fillna(False).to_numpy(dtype=bool)


_INT64_MIN_DIGITS = str(2**63)


def _parse_num(text: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    number = pd.to_numeric(text, errors="coerce").astype("Float64")
    return number, number.notna()


def _parse_bool(text: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    mapped = text.str.lower().map(_BOOLEANS).astype("boolean")
    return mapped, mapped.notna()


def _parse_date(text: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    # A timestamp in a date column counts as its date (rulebook reading 7).
    head = text.str.slice(0, 10)
    tail = text.str.slice(10)
    tail_ok = tail.isna() | (tail == "") | tail.str.match(r"^[T ]\d").fillna(False)
    shape_ok = head.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False)
    parsed = pd.to_datetime(head.where(shape_ok), format="%Y-%m-%d", errors="coerce")
    readable = parsed.notna() & tail_ok & _in_typed_range(parsed)
    return parsed.where(readable).astype("datetime64[us]"), readable


def _parse_timestamp(text: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    # ISO 8601; a timestamp without an offset is UTC (data contract). It starts with a
    # four-digit year: "12" is not read as the year 12.
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    year_first = _flag(text.str.match(r"\d{4}"))
    readable = parsed.notna() & year_first & _in_typed_range(parsed)
    return parsed.where(readable).astype("datetime64[us, UTC]"), readable


# Every calendar date from 0001-01-01 to 9999-12-31 is readable (rulebook reading 21):
# the typed frames hold microseconds (pandas' nanoseconds end in 2262).
_FIRST_MOMENT = pd.Timestamp("0001-01-01T00:00:00")
_LAST_MOMENT = pd.Timestamp("9999-12-31T23:59:59.999999")


def _in_typed_range(parsed: pd.Series) -> pd.Series:
    """Whether a parsed moment lies within 0001-01-01..9999-12-31 (UTC for timestamps)."""
    first, last = _FIRST_MOMENT, _LAST_MOMENT
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        first, last = first.tz_localize("UTC"), last.tz_localize("UTC")
    return parsed.between(first, last).fillna(False).astype(bool)


_PARSERS: dict[str, Callable[[pd.Series, Column], tuple[pd.Series, pd.Series]]] = {
    TEXT: _parse_text,
    INT: _parse_int,
    NUM: _parse_num,
    BOOL: _parse_bool,
    DATE: _parse_date,
    TIMESTAMP: _parse_timestamp,
}


def _arrow_strings(values: object) -> pa.Array | pa.ChunkedArray | None:
    """The Arrow array under a pandas string Series or Index, None for other dtypes."""
    array = values.array if isinstance(values, pd.Series | pd.Index) else None
    if array is None or not isinstance(array.dtype, pd.StringDtype):
        return None
    if not isinstance(array, pd.arrays.ArrowStringArray):
        array = pd.array(array, dtype=_STRING)
    return pa.array(array)


def _value_set(keys: pa.Array | pa.ChunkedArray, like: pa.DataType) -> pa.Array:
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    return keys if keys.type == like else keys.cast(like)


# ---------------------------------------------------------------------------
# Matching string ids
#
# Hashing Arrow strings costs about 0.3 microseconds a value (and pandas' own
# isin, map and Index lookups on them far more), which adds up to seconds over
# the millions of links of a network. Ids of one kind usually share one length
# ("SE00000001"): up to 16 bytes, such an id is two machine words, and integers
# hash several times faster. Other strings go through Arrow's hash kernels.

_MAX_WORD_BYTES = 16
# From about this many keys on, hashing words beats Arrow's string lookups.
_MANY_KEYS = 500_000


@dataclass
class _Words:
    """Fixed-width strings as two uint64 words each; ``ok`` marks the rows held
    (not NA, and of the common byte length)."""

    high: np.ndarray
    low: np.ndarray
    ok: np.ndarray


def _byte_width(strings: pa.Array | pa.ChunkedArray) -> int | None:
    """The byte length every non-NA string shares, when it is 1 to 16 bytes."""
    extremes = pc.min_max(pc.binary_length(strings))
    shortest, longest = extremes["min"].as_py(), extremes["max"].as_py()
    if shortest is None or shortest != longest or not 0 < shortest <= _MAX_WORD_BYTES:
        return None
    return int(shortest)


def _words(strings: pa.Array | pa.ChunkedArray, width: int) -> _Words:
    """The strings of byte length ``width`` as word pairs (see :class:`_Words`)."""
    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    highs, lows, oks = [], [], []
    for chunk in chunks:
        count = len(chunk)
        _, offsets_buffer, data_buffer = chunk.buffers()
        offset_type = np.dtype(np.int64 if pa.types.is_large_string(chunk.type) else np.int32)
        offsets = np.frombuffer(
            offsets_buffer,
            dtype=offset_type,
            count=count + 1,
            offset=chunk.offset * offset_type.itemsize,
        ).astype(np.int64)
        ok = np.diff(offsets) == width
        if chunk.null_count:
            ok &= np.asarray(chunk.is_valid(), dtype=bool)
        data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(0, np.uint8)
        padded = np.zeros((count, _MAX_WORD_BYTES), dtype=np.uint8)
        rows = np.flatnonzero(ok)
        if len(rows) == count and count:
            padded[:, :width] = data[offsets[0] : offsets[-1]].reshape(count, width)
        elif len(rows):
            padded[rows, :width] = data[offsets[rows][:, None] + np.arange(width)]
        pair = padded.view(np.uint64)
        highs.append(pair[:, 0])
        lows.append(pair[:, 1])
        oks.append(ok)
    if not chunks:
        nothing = np.zeros(0, dtype=np.uint64)
        return _Words(nothing, nothing, np.zeros(0, dtype=bool))
    return _Words(np.concatenate(highs), np.concatenate(lows), np.concatenate(oks))


def _word_codes(words: list[_Words]) -> tuple[list[np.ndarray], int]:
    """Dense integer codes shared by several word columns; -1 where a row is not held."""
    bounds = np.cumsum([len(w.ok) for w in words])[:-1]
    ok = np.concatenate([w.ok for w in words])
    high_codes, high_uniques = pd.factorize(np.concatenate([w.high for w in words])[ok])
    low = np.concatenate([w.low for w in words])[ok]
    if len(low) and not low.any():
        # Up to 8 bytes: the first word alone is the string.
        pair_codes, count = high_codes, len(high_uniques)
    else:
        low_codes, low_uniques = pd.factorize(low)
        pair = high_codes.astype(np.int64) * max(len(low_uniques), 1) + low_codes
        pair_codes, pair_uniques = pd.factorize(pair)
        count = len(pair_uniques)
    codes = np.full(len(ok), -1, dtype=np.int64)
    codes[ok] = pair_codes
    return np.split(codes, bounds), count


def string_codes(*columns: pd.Series | pd.Index) -> tuple[list[np.ndarray], int]:
    """Integer codes shared by string columns: equal strings get equal codes, NA -1;
    codes run from 0 to the number of distinct strings (returned second)."""
    strings = [_arrow_strings(c) for c in columns]
    held = [s for s in strings if s is not None and len(s) > s.null_count]
    if held and all(s is not None for s in strings):
        widths = {_byte_width(s) for s in held}
        if len(widths) == 1 and None not in widths:
            (width,) = widths
            assert width is not None  # excluded just above; tells the type checker
            return _word_codes([_words(s, width) for s in strings if s is not None])
    joined = pd.concat(
        [pd.Series(c.array if isinstance(c, pd.Index) else c).astype(_STRING) for c in columns],
        ignore_index=True,
    )
    codes, uniques = pd.factorize(joined)
    bounds = np.cumsum([len(c) for c in columns])[:-1]
    return np.split(codes.astype(np.int64), bounds), len(uniques)


def _first_positions(key_codes: np.ndarray, value_codes: np.ndarray, count: int) -> np.ndarray:
    """For each value code, the first key row with that code (-1: none, or code -1)."""
    where = np.full(count + 1, -1, dtype=np.intp)
    held = np.flatnonzero(key_codes >= 0)[::-1]
    # Written last to first, so the first row of a repeated key is the one kept.
    where[key_codes[held]] = held
    return where[value_codes]  # code -1 reads the last slot, which stays -1


def _word_positions(
    keys: pa.Array | pa.ChunkedArray, values: pa.Array | pa.ChunkedArray
) -> np.ndarray | None:
    """positions() through words, or None unless every key is of one short width and
    the keys are many (Arrow probes a small key set faster, its table staying in cache)."""
    if keys.null_count or len(keys) < _MANY_KEYS:
        return None
    width = _byte_width(keys)
    if width is None:
        return None
    # A value of another length, or NA, matches no key (held by no word).
    (key_codes, value_codes), count = _word_codes([_words(keys, width), _words(values, width)])
    return _first_positions(key_codes, value_codes, count)


def is_in(values: pd.Series, keys: object) -> pd.Series:
    """``values.isin(keys)`` (NA matches NA when ``keys`` holds NA), fast for string ids.

    pandas turns every key of an Arrow-backed string ``isin`` into a Python
    scalar first, seconds per million keys; see "Matching string ids" above.
    Other dtypes go to pandas.
    """
    needles, haystack = _arrow_strings(values), _arrow_strings(keys)
    if needles is None or haystack is None:
        return values.isin(keys)  # type: ignore[arg-type]
    found = _word_positions(haystack, needles)
    if found is not None:
        return pd.Series(found >= 0, index=values.index)
    hit = pc.is_in(needles, value_set=_value_set(haystack, needles.type))
    return pd.Series(np.asarray(hit, dtype=bool), index=values.index)


def positions(keys: pd.Series | pd.Index, values: pd.Series | pd.Index) -> np.ndarray:
    """``pd.Index(keys).get_indexer(values)`` for unique keys: each value's position
    in ``keys``, -1 where absent (NA finds an NA key); with repeated keys, the first.

    An index of Arrow-backed strings turns every key into a Python object to hash
    it, seconds per million keys; see "Matching string ids" above.
    """
    needles, haystack = _arrow_strings(values), _arrow_strings(keys)
    if needles is None or haystack is None:
        return pd.Index(keys).get_indexer(values)
    found = _word_positions(haystack, needles)
    if found is not None:
        return found
    located = pc.index_in(needles, value_set=_value_set(haystack, needles.type))
    return np.asarray(located.fill_null(-1), dtype=np.intp)


def lookup(values: pd.Series, keys: pd.Series, mapped: pd.Series) -> pd.Series:
    """``values.map(pd.Series(mapped, index=keys))`` for unique, non-null keys: NA where
    no key matches; Arrow finds the key of each value (see :func:`positions`)."""
    found = positions(keys, values)
    return pd.Series(mapped.array.take(found, allow_fill=True), index=values.index)


def strictly_increasing(values: pd.Series | pd.Index) -> bool:
    """Whether string values rise strictly from row to row (so: no NA, no repeat).

    Sources mostly return rows in key order: one comparison pass then proves a
    column unique, where hashing a million strings costs a third of a second.
    """
    strings = _arrow_strings(values)
    if strings is None or len(strings) < 2:
        return False
    if strings.null_count:
        return False
    rising = pc.less(strings[:-1], strings[1:])
    return bool(pc.all(rising).as_py())


def key_duplicates(key: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(every row of a duplicated key, every row after the first of its key); NA is no key."""
    if strictly_increasing(key):
        none = pd.Series(np.zeros(len(key), dtype=bool), index=key.index)
        return none, none.copy()
    codes, _ = pd.factorize(key)
    # Duplicates among integer codes are hashed far faster than among Arrow strings.
    position = pd.Series(codes, index=key.index)
    present = codes >= 0
    every = position.duplicated(keep=False) & present
    later = position.duplicated(keep="first") & present
    return every, later


# Columns naming an IANA time zone (rulebook reading 21: any other name is unreadable).
_ZONE_COLUMNS = frozenset({("practices", "timezone")})


def is_zone(name: object) -> bool:
    """Whether ``name`` is an IANA time zone name this machine knows."""
    if not isinstance(name, str) or not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Not only "not found": "America" is a folder (IsADirectoryError), a very long
        # name is too long for a file name, "../x" is refused (ValueError).
        return False
    return True


def _judge_zones(values: pd.Series, unreadable: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Zone names that are not IANA zones become NA and unreadable (few distinct values)."""
    known = {zone: is_zone(zone) for zone in values.dropna().unique().tolist()}
    foreign = values.map(lambda zone: known.get(zone, True) is False, na_action="ignore")
    foreign = _flag(foreign.astype("boolean"))
    return values.mask(foreign), unreadable | foreign


def row_ids(table: Table, frame: pd.DataFrame) -> pd.Series:
    """``TABLE:KEY`` for every row (the owner's key for a table without one)."""
    key = frame[table.id_column].astype("string").fillna("")
    return table.name + ":" + key


def type_table(table: Table, raw: pd.DataFrame) -> TypedTable:
    """Type one table's text columns and note, per cell, what could not be read."""
    columns = {}
    bad = {}
    missing = {}
    for column in table.columns:
        values, unreadable = parse_column(raw[column.name], column)
        if (table.name, column.name) in _ZONE_COLUMNS:
            values, unreadable = _judge_zones(values, unreadable)
        columns[column.name] = values
        bad[column.name] = unreadable
        if not column.nullable and not column.references:
            missing[column.name] = values.isna() & ~unreadable
    return TypedTable(
        values=pd.DataFrame(columns, index=raw.index),
        unreadable=pd.DataFrame(bad, index=raw.index),
        missing=pd.DataFrame(missing, index=raw.index),
    )


@dataclass
class TypedTable:
    """One typed table before the data-quality rules: values, unreadable cells, and
    empty cells of required columns (all on the raw table's rows)."""

    values: pd.DataFrame
    unreadable: pd.DataFrame
    missing: pd.DataFrame


def type_source(
    raw: Mapping[str, pd.DataFrame] | Iterable[tuple[str, pd.DataFrame]], as_of: str
) -> TypedSource:
    """Type every table, attribute rows to clients and practices, and run DQ-001..DQ-003.

    ``raw`` maps each contract table to its text frame, or yields (name, frame)
    pairs (:func:`metaudit.source.reader.iter_tables`): each text frame is let go as
    soon as it is typed.
    """
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    tables: dict[str, TypedTable] = {}
    for name, frame in pairs:
        tables[name] = type_table(TABLES[name], frame)
        del frame
    return judge_typed(tables, as_of)


def judge_typed(tables: dict[str, TypedTable], as_of: str) -> TypedSource:
    """Attribute typed tables to clients and practices and run DQ-001..DQ-003.

    Consumes ``tables``: each entry is let go once its clean table is built.
    """
    typed = {name: tables[name].values for name in TABLES}
    links = _link_positions(typed)
    _attribute(typed, links)
    findings: list[Finding] = []

    clean_tables: dict[str, pd.DataFrame] = {}
    clean_unreadable: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        frame = typed[name]
        bad_cells = tables[name].unreadable
        table_links = {c.name: links[name, c.name] for c in table.foreign_keys}
        findings.extend(
            dq_findings(table, frame, bad_cells, tables[name].missing, table_links, as_of)
        )

        keep = pd.Series(True, index=frame.index)
        if table.key:
            key = frame[table.key]
            keep &= key.notna()
            duplicated, later = key_duplicates(key)
            if duplicated.any():
                firsts = frame[duplicated & ~later]
                findings.extend(finding_rows("DQ-001", table, firsts, None, as_of))
            keep &= ~later | key.isna()
            keep &= key.notna()
        if keep.all():
            # Nothing to drop: no copy of a million-row table.
            clean_tables[name] = frame.reset_index(drop=True)
            clean_unreadable[name] = bad_cells.reset_index(drop=True)
        else:
            clean_tables[name] = frame[keep].reset_index(drop=True)
            clean_unreadable[name] = bad_cells[keep].reset_index(drop=True)
        del tables[name], typed[name], frame, bad_cells

    return TypedSource(tables=clean_tables, unreadable=clean_unreadable, findings=findings)


def finding_rows(
    rule_id: str, table: Table, rows: pd.DataFrame, parts: list[list[str]] | None, as_of: str
) -> list[Finding]:
    """One data-quality finding per row of ``rows`` (a typed, attributed table's rows)."""
    from metaudit.spec import rulebook

    rule = rulebook.RULES[rule_id]
    ids = row_ids(table, rows).tolist()
    nothing = [None] * len(rows)
    practice = rows["practice_id"].tolist() if "practice_id" in rows else nothing
    client = rows["client_id"].tolist() if "client_id" in rows else nothing
    return [
        Finding(
            as_of=as_of,
            practice_id=_none(practice[i]),
            rule_id=rule_id,
            severity=rule.severity,
            entity_type="row",
            entity_id=entity_id,
            client_id=_none(client[i]),
            message=rulebook.message(rule_id, "row", entity_id, parts[i] if parts else None),
        )
        for i, entity_id in enumerate(ids)
    ]


def dq_findings(
    table: Table,
    frame: pd.DataFrame,
    bad_cells: pd.DataFrame,
    missing: pd.DataFrame,
    links: Mapping[str, np.ndarray],
    as_of: str,
) -> list[Finding]:
    """DQ-003 and DQ-002 of a typed, attributed table (or a batch of one): a row per
    finding, judged on the row alone (``links``: each link column's parent row, -1:
    none). DQ-001 needs the whole table's keys and is judged apart."""
    findings: list[Finding] = []
    # DQ-003: unreadable, unlisted, or missing in a required column; one finding a row.
    flagged = bad_cells | missing.reindex(columns=bad_cells.columns, fill_value=False)
    if table.key:
        flagged[table.key] = flagged[table.key] | frame[table.key].isna()
    hit = flagged.any(axis=1)
    if hit.any():
        rows = flagged[hit]
        parts = [[c for c in table.column_names if row[c]] for row in rows.to_dict("records")]
        findings.extend(finding_rows("DQ-003", table, frame[hit], parts, as_of))

    # DQ-002: a link naming a row that does not exist (a NULL required link names none).
    dangling = pd.DataFrame(index=frame.index)
    for column in table.foreign_keys:
        value = frame[column.name]
        broken = value.notna() & (links[column.name] < 0)
        if not column.nullable:
            broken = broken | value.isna()
        dangling[column.name] = broken
    if len(dangling.columns):
        hit = dangling.any(axis=1)
        if hit.any():
            rows = dangling[hit]
            parts = [[c for c in dangling.columns if row[c]] for row in rows.to_dict("records")]
            findings.extend(finding_rows("DQ-002", table, frame[hit], parts, as_of))
    return findings


def raw_keys(frame: pd.DataFrame, table: Table) -> pd.Index:
    """Every non-null key value of a table (before duplicates are collapsed)."""
    assert table.key is not None, table.name
    return pd.Index(frame[table.key].dropna().unique())


def _link_positions(typed: dict[str, pd.DataFrame]) -> dict[tuple[str, str], np.ndarray]:
    """For every link column, the row of the first parent row with that key (-1: none).

    Computed once from the typed values, before attribution: DQ-002 and the
    attribution of rows to clients share it (a NULL link finds no row).
    """
    links: dict[tuple[str, str], np.ndarray] = {}
    for name, table in TABLES.items():
        for column in table.foreign_keys:
            parent = TABLES[column.references or ""]
            assert parent.key is not None, parent.name
            value = typed[name][column.name]
            found = positions(typed[parent.name][parent.key], value)
            found[value.isna().to_numpy()] = -1
            links[name, column.name] = found
    return links


def _attribute(typed: dict[str, pd.DataFrame], links: dict[tuple[str, str], np.ndarray]) -> None:
    """Add client_id and practice_id to every table that reaches a client (reading 8).

    A row whose client row is missing gets NA for both. The first row of a
    duplicated key is the one that counts (as DQ-001 keeps it).
    """
    clients = typed["clients"]
    client_row: dict[str, np.ndarray] = {}
    for name in _CLIENT_TABLES:
        frame = typed[name]
        row = links[name, "client_id"]
        client_row[name] = row
        frame["client_id"] = frame["client_id"].where(row >= 0)
    for name, (link, parent_name) in PARENT_OF.items():
        parent_row = links[name, link]
        row = np.full(len(parent_row), -1, dtype=np.intp)
        known = parent_row >= 0
        row[known] = client_row[parent_name][parent_row[known]]
        client_row[name] = row
        typed[name]["client_id"] = _at(clients["client_id"], row, typed[name].index)
    for name in (*_CLIENT_TABLES, *PARENT_OF):
        frame = typed[name]
        frame["practice_id"] = _at(clients["practice_id"], client_row[name], frame.index)


def _at(values: pd.Series, rows: np.ndarray, index: pd.Index) -> pd.Series:
    """``values`` at row positions (NA at -1), as strings on ``index``."""
    picked = values.astype("string").array.take(rows, allow_fill=True)
    return pd.Series(picked, index=index)


def _none(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)
