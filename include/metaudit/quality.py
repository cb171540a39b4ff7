"""Typing the raw text of a source, and the data-contract rules DQ-001..DQ-003.

Real sources are not healthy. Nothing here raises on bad values: a value that
cannot be read becomes NA for the rules (rulebook reading 1) and a DQ-003
finding names it; a duplicated key keeps the first row (DQ-001); a link to a
row that does not exist is DQ-002. The cost of building findings scales with
the number of bad rows, not with the size of the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from metaudit.contract import (
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
from metaudit.findings import Finding

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


def parse_column(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    """Return (typed values, mask of stored values that could not be read)."""
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
    number = pd.to_numeric(text, errors="coerce")
    integral = number.notna() & (number % 1 == 0)
    return number.where(integral).astype("Int64"), integral


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
    readable = parsed.notna() & tail_ok
    return parsed.where(readable).astype("datetime64[ns]"), readable


def _parse_timestamp(text: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    # ISO 8601; a timestamp without an offset is UTC (data contract).
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return parsed.astype("datetime64[ns, UTC]"), parsed.notna()


_PARSERS: dict[str, Callable[[pd.Series, Column], tuple[pd.Series, pd.Series]]] = {
    TEXT: _parse_text,
    INT: _parse_int,
    NUM: _parse_num,
    BOOL: _parse_bool,
    DATE: _parse_date,
    TIMESTAMP: _parse_timestamp,
}


def row_ids(table: Table, frame: pd.DataFrame) -> pd.Series:
    """``TABLE:KEY`` for every row (the owner's key for a table without one)."""
    key = frame[table.id_column].astype("string").fillna("")
    return table.name + ":" + key


def type_source(raw: dict[str, pd.DataFrame], as_of: str) -> TypedSource:
    """Type every table, attribute rows to clients and practices, and run DQ-001..DQ-003."""
    from metaudit import rulebook

    typed: dict[str, pd.DataFrame] = {}
    bad_cells: dict[str, pd.DataFrame] = {}
    missing_required: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        frame = raw[name]
        columns = {}
        bad = {}
        missing = {}
        for column in table.columns:
            values, unreadable = parse_column(frame[column.name], column)
            columns[column.name] = values
            bad[column.name] = unreadable
            if not column.nullable and not column.references:
                missing[column.name] = values.isna() & ~unreadable
        typed[name] = pd.DataFrame(columns, index=frame.index)
        bad_cells[name] = pd.DataFrame(bad, index=frame.index)
        missing_required[name] = pd.DataFrame(missing, index=frame.index)

    _attribute(typed)
    findings: list[Finding] = []

    def add(rule_id: str, table: Table, rows: pd.DataFrame, parts: list[list[str]] | None) -> None:
        rule = rulebook.RULES[rule_id]
        ids = row_ids(table, rows).tolist()
        nothing = [None] * len(rows)
        practice = rows["practice_id"].tolist() if "practice_id" in rows else nothing
        client = rows["client_id"].tolist() if "client_id" in rows else nothing
        for i, entity_id in enumerate(ids):
            findings.append(
                Finding(
                    as_of=as_of,
                    practice_id=_none(practice[i]),
                    rule_id=rule_id,
                    severity=rule.severity,
                    entity_type="row",
                    entity_id=entity_id,
                    client_id=_none(client[i]),
                    message=rulebook.message(
                        rule_id, "row", entity_id, parts[i] if parts else None
                    ),
                )
            )

    clean_tables: dict[str, pd.DataFrame] = {}
    clean_unreadable: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        frame = typed[name]
        # DQ-003: unreadable, unlisted, or missing in a required column; one finding a row.
        flagged = bad_cells[name] | missing_required[name].reindex(
            columns=bad_cells[name].columns, fill_value=False
        )
        if table.key:
            flagged[table.key] = flagged[table.key] | frame[table.key].isna()
        hit = flagged.any(axis=1)
        if hit.any():
            rows = flagged[hit]
            parts = [[c for c in table.column_names if row[c]] for row in rows.to_dict("records")]
            add("DQ-003", table, frame[hit], parts)

        # DQ-002: a link naming a row that does not exist (a NULL required link names none).
        dangling = pd.DataFrame(index=frame.index)
        for column in table.foreign_keys:
            parent = TABLES[column.references or ""]
            parent_keys = raw_keys(typed[parent.name], parent)
            value = frame[column.name]
            broken = value.notna() & ~value.isin(parent_keys)
            if not column.nullable:
                broken = broken | value.isna()
            dangling[column.name] = broken
        if len(dangling.columns):
            hit = dangling.any(axis=1)
            if hit.any():
                rows = dangling[hit]
                parts = [[c for c in dangling.columns if row[c]] for row in rows.to_dict("records")]
                add("DQ-002", table, frame[hit], parts)

        keep = pd.Series(True, index=frame.index)
        if table.key:
            key = frame[table.key]
            keep &= key.notna()
            duplicated = key.notna() & key.duplicated(keep=False)
            if duplicated.any():
                firsts = frame[duplicated & ~key.duplicated(keep="first")]
                add("DQ-001", table, firsts, None)
            keep &= ~key.duplicated(keep="first") | key.isna()
            keep &= key.notna()
        clean_tables[name] = frame[keep].reset_index(drop=True)
        clean_unreadable[name] = bad_cells[name][keep].reset_index(drop=True)

    return TypedSource(tables=clean_tables, unreadable=clean_unreadable, findings=findings)


def raw_keys(frame: pd.DataFrame, table: Table) -> pd.Index:
    """Every non-null key value of a table (before duplicates are collapsed)."""
    assert table.key is not None, table.name
    return pd.Index(frame[table.key].dropna().unique())


def _attribute(typed: dict[str, pd.DataFrame]) -> None:
    """Add client_id and practice_id to every table that reaches a client (reading 8).

    A row whose client row is missing gets NA for both.
    """
    clients = typed["clients"]
    first_client = clients[clients["client_id"].notna()].drop_duplicates("client_id")
    practice_of = pd.Series(
        first_client["practice_id"].to_numpy(), index=first_client["client_id"].to_numpy()
    )
    known_clients = practice_of.index

    for name in _CLIENT_TABLES:
        frame = typed[name]
        client = frame["client_id"]
        frame["client_id"] = client.where(client.isin(known_clients))
    for name, (link, parent_name) in PARENT_OF.items():
        parent = typed[parent_name]
        key = TABLES[parent_name].key
        assert key is not None
        firsts = parent[parent[key].notna()].drop_duplicates(key)
        client_of = pd.Series(firsts["client_id"].to_numpy(), index=firsts[key].to_numpy())
        typed[name]["client_id"] = typed[name][link].map(client_of).astype("string")
    for name in (*_CLIENT_TABLES, *PARENT_OF):
        frame = typed[name]
        frame["practice_id"] = frame["client_id"].map(practice_of).astype("string")


def _none(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)
