"""Values a hostile source can hold, judged as the rulebook reads them (reading 21).

Bytes that are not UTF-8, foreign time zones and integers outside the signed 64-bit
range are unreadable: DQ-003 for the row, and the run goes on; far-future and
long-past dates are simply dates.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest
from builders import AS_OF, clean_records, find, write_sqlite

from metaudit.check.engine import run_check


def _audit_sqlite(path: Path, as_of: date = AS_OF) -> list[dict]:
    return [f.to_dict() for f in run_check(path, as_of=as_of).findings]


def _store_blob(path: Path, table: str, column: str, key: str, value: str, blob: bytes) -> None:
    """Overwrite one cell with a BLOB (SQLite keeps whatever storage class it is given)."""
    with sqlite3.connect(path) as conn:
        done = conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (blob, value))
        assert done.rowcount == 1


def _dq3(findings: list[dict]) -> dict[str, str]:
    return {f["entity_id"]: f["message"] for f in findings if f["rule_id"] == "DQ-003"}


NOT_UTF8 = b"\xff\xfe\xc3(\x00 broken"

# (table, key column, key, column): free text, an id, a listed value, a date, a
# timestamp, an int and a bool, each holding bytes that are not UTF-8.
BLOB_CELLS = [
    ("sessions", "session_id", "S-2", "notes"),
    ("sessions", "session_id", "S-2", "staff_id"),
    ("claims", "claim_id", "CLM-2", "status"),
    ("assessments", "assessment_id", "AS-2", "assessed_on"),
    ("sessions", "session_id", "S-3", "signed_at"),
    ("sessions", "session_id", "S-3", "timed_minutes"),
    ("staff", "staff_id", "ST-1", "active"),
]


@pytest.mark.parametrize(("table", "key", "value", "column"), BLOB_CELLS)
def test_bytes_that_are_not_utf8_are_unreadable_not_a_crash(
    tmp_path: Path, table: str, key: str, value: str, column: str
) -> None:
    path = write_sqlite(clean_records(), tmp_path / "source.sqlite")
    _store_blob(path, table, column, key, value, NOT_UTF8)
    dq3 = _dq3(_audit_sqlite(path))
    assert f"{table}:{value}" in dq3
    assert column in dq3[f"{table}:{value}"]


def test_a_key_that_is_not_utf8_is_an_unreadable_key(tmp_path: Path) -> None:
    path = write_sqlite(clean_records(), tmp_path / "source.sqlite")
    _store_blob(path, "goals", "goal_id", "goal_id", "G-1", NOT_UTF8)
    dq3 = _dq3(_audit_sqlite(path))
    assert "goals:" in dq3 and "goal_id" in dq3["goals:"]


def test_valid_utf8_text_stays_exact_beside_a_broken_value(tmp_path: Path) -> None:
    from metaudit.source.quality import type_source
    from metaudit.source.reader import read_tables

    records = clean_records()
    find(records, "sessions", session_id="S-1")["notes"] = "Übungen: 12 Wdh. \u2713 \x00 end"
    path = write_sqlite(records, tmp_path / "source.sqlite")
    _store_blob(path, "sessions", "notes", "session_id", "S-2", NOT_UTF8)
    typed = type_source(read_tables(path).tables, AS_OF.isoformat())
    notes = typed.tables["sessions"].set_index("session_id")["notes"]
    assert notes["S-1"] == "Übungen: 12 Wdh. \u2713 \x00 end"
    assert notes["S-2"] is pd_na()
    assert notes["S-3"] == "Completed the full program."


def pd_na() -> object:
    import pandas as pd

    return pd.NA


@pytest.mark.parametrize("zone", ["America", "A" * 300, "../etc/passwd", "Mars/Olympus"])
def test_a_timezone_that_is_not_an_iana_zone_is_unreadable_and_the_default_is_used(
    zone: str,
) -> None:
    from builders import audit

    records = clean_records()
    find(records, "practices", practice_id="PR-1")["timezone"] = zone
    findings = audit(records)
    assert [(f["rule_id"], f["entity_id"]) for f in findings] == [("DQ-003", "practices:PR-1")]
    assert "timezone" in findings[0]["message"]


@pytest.mark.parametrize(
    "stored", ["1e30", "9223372036854775808", "-9223372036854775809", "2.5", "1" * 40]
)
def test_an_int_outside_the_signed_64_bit_range_or_fractional_is_unreadable(stored: str) -> None:
    from builders import audit

    records = clean_records()
    find(records, "insurance_policies", policy_id="POL-1")["timely_filing_days"] = stored
    findings = audit(records)
    # Unreadable: DQ-003 and the default filing limit; never a wrapped-around -2**63
    # that would make every claim of the policy late (COD-009).
    assert [(f["rule_id"], f["entity_id"]) for f in findings] == [
        ("DQ-003", "insurance_policies:POL-1")
    ]


def test_the_edges_of_the_signed_64_bit_range_are_readable() -> None:
    import pandas as pd

    from metaudit.source.quality import parse_column
    from metaudit.spec.contract import TABLES

    column = TABLES["session_services"].column("minutes")
    raw = pd.Series(
        ["9223372036854775807", "-9223372036854775808", "+5", "007", "15.0", None, "x"],
        dtype="string",
    )
    values, unreadable = parse_column(raw, column)
    assert values.tolist()[:5] == [2**63 - 1, -(2**63), 5, 7, 15]
    assert unreadable.tolist() == [False, False, False, False, False, False, True]


def test_huge_minutes_are_unreadable_not_negative(tmp_path: Path) -> None:
    from builders import audit

    records = clean_records()
    service = records["session_services"][0]
    service["minutes"] = "9223372036854775808"
    findings = audit(records)
    dq3 = {f["entity_id"] for f in findings if f["rule_id"] == "DQ-003"}
    assert dq3 == {f"session_services:{service['session_id']}"}


# -- extreme dates (reading 21) ---------------------------------------------------------


def test_a_never_expiring_certification_is_current_not_unreadable() -> None:
    from builders import audit

    records = clean_records()
    find(records, "staff", staff_id="ST-1")["certification_expires_on"] = "9999-12-31"
    assert audit(records) == []


@pytest.mark.parametrize("stored", ["0001-01-01", "1066-10-14", "1677-09-21"])
def test_a_certification_that_expired_long_ago_is_simply_expired(stored: str) -> None:
    from builders import audit

    records = clean_records()
    find(records, "staff", staff_id="ST-1")["certification_expires_on"] = stored
    found = {f["rule_id"] for f in audit(records)}
    assert "DQ-003" not in found and "DOC-010" in found


def test_far_future_dates_are_later_than_the_as_of_date_in_every_dated_column() -> None:
    from builders import audit

    records = clean_records()
    # A far-future session does not exist yet (as a session dated tomorrow would not).
    future = clean_records()
    find(future, "sessions", session_id="S-5")["session_date"] = "2026-05-01"
    find(records, "sessions", session_id="S-5")["session_date"] = "9999-12-31"
    find(records, "referrals", referral_id="RF-1")["valid_until"] = "9999-12-31"
    expected = audit(future)
    found = audit(records)
    assert "DQ-003" not in {f["rule_id"] for f in found}
    assert [(f["rule_id"], f["entity_id"]) for f in found] == [
        (f["rule_id"], f["entity_id"]) for f in expected
    ]


def test_timestamps_reach_the_ends_of_the_calendar() -> None:
    import pandas as pd

    from metaudit.source.quality import parse_column
    from metaudit.spec.contract import TABLES

    column = TABLES["sessions"].column("signed_at")
    raw = pd.Series(
        ["9999-12-31T12:00:00Z", "0001-01-02T00:00:00", "12", "2026-03-01T10:00:00+02:00"],
        dtype="string",
    )
    values, unreadable = parse_column(raw, column)
    assert unreadable.tolist() == [False, False, True, False]
    assert values.iloc[0] == pd.Timestamp("9999-12-31T12:00:00Z")
    assert values.iloc[3] == pd.Timestamp("2026-03-01T08:00:00Z")
