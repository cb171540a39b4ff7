"""Property test: generated hostile values in any column of one practice's rows.

A small source holds two clean practices (PR-1 and a copy of it, PR-1B). Hypothesis
stores values built from the contract's column types (NULL, blanks, garbage, near
misses, extreme and impossible dates, huge and fractional numbers, long and odd
unicode text, NUL and bytes that are not UTF-8) in one cell of a PR-1 row. The
invariants (rulebook readings 1 and 21): the check completes, a value built to be
unreadable is named by a DQ-003 on its row, and PR-1B's findings stay exactly none.

Bounded and deterministic for CI: a fixed number of examples, derandomized, no deadline.
"""

from __future__ import annotations

import copy
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from builders import AS_OF, Records, clean_records, write_sqlite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaudit.check.engine import run_check
from metaudit.spec.contract import BOOL, DATE, INT, NUM, TABLES, TEXT, TIMESTAMP

OTHER_PRACTICE = "PR-1B"  # the copy of PR-1 (every id suffixed with B)
SHARED_TABLES = frozenset({"providers"})  # rows of no practice: both practices use them


def two_practices() -> Records:
    """PR-1's clean records and a copy of them as PR-1B (every id suffixed with B)."""
    records = clean_records()
    renamed: dict[str, dict[Any, Any]] = {}
    for name, table in TABLES.items():
        if table.key and name not in SHARED_TABLES:
            renamed[name] = {row[table.key]: f"{row[table.key]}B" for row in records[name]}
    copies: Records = {}
    for name, table in TABLES.items():
        if name in SHARED_TABLES:
            continue
        copies[name] = []
        for row in records[name]:
            twin = copy.deepcopy(row)
            if table.key:
                twin[table.key] = renamed[name][row[table.key]]
            for column in table.foreign_keys:
                target = renamed.get(column.references or "")
                if target is not None and twin.get(column.name) in target:
                    twin[column.name] = target[twin[column.name]]
            copies[name].append(twin)
    for name, rows in copies.items():
        records[name].extend(rows)
    return records


# Cells of PR-1's rows that a value can be stored in: (table, row key value, column).
def _cells() -> list[tuple[str, str, str]]:
    records = clean_records()
    cells = []
    for name, table in TABLES.items():
        if name in SHARED_TABLES or not table.key or not records[name]:
            continue
        key = records[name][0][table.key]
        for column in table.columns:
            if column.references or column.name == table.key:
                continue  # moving a row to another parent is not a stored value's reading
            cells.append((name, str(key), column.name))
    return cells


CELLS = _cells()
INT64 = 2**63

# Values every column type reads as unreadable (reading 1 and 21), by type.
NOT_UTF8 = st.binary(min_size=1, max_size=24).filter(lambda b: not _is_utf8(b) and b"\x00" not in b)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


UNREADABLE: dict[str, st.SearchStrategy[Any]] = {
    INT: st.one_of(
        st.integers(min_value=INT64, max_value=10**40).map(str),
        st.integers(min_value=-(10**40), max_value=-INT64 - 1).map(str),
        st.sampled_from(["2.5", "1e30", "-0.5", "forty", "1,000", "0x10", "NaN", "inf"]),
    ),
    NUM: st.sampled_from(["ten", "1..2", "--1", "1e", "12 units"]),
    BOOL: st.sampled_from(["yes", "no", "2", "-1", "tru", "null", "✓"]),
    DATE: st.one_of(
        st.sampled_from(["2026-02-30", "2026-13-01", "0000-01-01", "someday", "31/03/2026"]),
        st.sampled_from(["20260331", "2026-3-31", "10000-01-01", "2026-03-31x"]),
    ),
    TIMESTAMP: st.sampled_from(["yesterday", "2026-02-30T10:00:00", "12", "T10:00"]),
}

# Values that may or may not be readable: the check must complete whatever they are.
ANYTHING = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "\t\n", "NULL", "'; DROP TABLE sessions; --", "\x00", "ß\u0301"]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=2000, max_size=10_000),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01", "9999-12-31", "1677-09-21", "2262-04-12"]),
)


def _is_listed(table: str, column: str) -> bool:
    return TABLES[table].column(column).values is not None


@st.composite
def hostile_cell(draw: st.DrawFn) -> tuple[str, str, str, Any, bool]:
    """(table, key, column, value, built to be unreadable)."""
    table, key, column = draw(st.sampled_from(CELLS))
    kind = TABLES[table].column(column).type
    choice = draw(st.sampled_from(["bytes", "unreadable", "anything"]))
    if choice == "bytes":
        return table, key, column, draw(NOT_UTF8), True
    if choice == "unreadable" and kind in UNREADABLE:
        return table, key, column, draw(UNREADABLE[kind]), True
    if choice == "unreadable" and kind == TEXT and _is_listed(table, column):
        return table, key, column, "not-a-listed-value-" + draw(st.text(max_size=5)), True
    return table, key, column, draw(ANYTHING), False


def _store(path: Path, table: str, key: str, column: str, value: Any) -> None:
    key_column = TABLES[table].key
    with sqlite3.connect(path) as conn:
        done = conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key_column} = ?", (value, key))
        assert done.rowcount == 1


_SOURCE: dict[str, bytes] = {}


def _clean_source_bytes() -> bytes:
    """The two-practice source, written once (each example starts from a fresh copy)."""
    if "bytes" not in _SOURCE:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_sqlite(two_practices(), Path(tmp) / "source.sqlite")
            _SOURCE["bytes"] = path.read_bytes()
    return _SOURCE["bytes"]


def test_the_two_practice_source_is_clean() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "source.sqlite"
        path.write_bytes(_clean_source_bytes())
        result = run_check(path, as_of=AS_OF)
    assert [f.to_dict() for f in result.findings] == []
    assert result.practice_ids == ["PR-1", OTHER_PRACTICE]


@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_cell())
def test_any_value_in_one_practice_never_stops_the_check_or_touches_another(
    cell: tuple[str, str, str, Any, bool],
) -> None:
    table, key, column, value, unreadable = cell
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "source.sqlite"
        path.write_bytes(_clean_source_bytes())
        _store(path, table, key, column, value)
        findings = [f.to_dict() for f in run_check(path, as_of=AS_OF).findings]
    assert [f for f in findings if f["practice_id"] == OTHER_PRACTICE] == []
    if unreadable:
        named = [
            f for f in findings if f["rule_id"] == "DQ-003" and f["entity_id"] == f"{table}:{key}"
        ]
        assert named and column in named[0]["message"], (table, column, value, findings)


def test_metaudit_check_audits_the_other_practice_exactly_beside_broken_rows(
    tmp_path: Path,
) -> None:
    import json
    import subprocess
    import sys

    path = tmp_path / "source.sqlite"
    path.write_bytes(_clean_source_bytes())
    _store(path, "sessions", "S-2", "notes", b"\xff\xfe broken")
    _store(path, "insurance_policies", "POL-1", "timely_filing_days", "9223372036854775808")
    _store(path, "practices", "PR-1", "timezone", "America")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "metaudit.cli", "check", "--source", str(path)),
            *("--as-of", AS_OF.isoformat(), "--out", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out" / "findings.jsonl").read_text(encoding="utf-8").splitlines()
    findings = [json.loads(line) for line in lines]
    assert [(f["practice_id"], f["rule_id"], f["entity_id"]) for f in findings] == [
        ("PR-1", "DQ-003", "insurance_policies:POL-1"),
        ("PR-1", "DQ-003", "practices:PR-1"),
        ("PR-1", "DQ-003", "sessions:S-2"),
    ]
