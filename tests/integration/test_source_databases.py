"""The reader and the whole check against real PostgreSQL and MariaDB servers.

The same records give the same findings whatever database holds them: SQLite
text, PostgreSQL and MariaDB with real SQL types, or text columns carrying
garbage that the DQ rules must name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import AS_OF, clean_records, find, write_records, write_sqlite

from metaudit.check.engine import run_check
from metaudit.errors import ContractError, SourceUnavailableError


def _messy_records():
    records = clean_records()
    records["sessions"].append(dict(find(records, "sessions", session_id="S-2")))  # DQ-001
    find(records, "progress_reports", report_id="PRR-1")["provider_id"] = "PV-404"  # DQ-002
    find(records, "sessions", session_id="S-3")["timed_minutes"] = "forty"  # DQ-003
    find(records, "claims", claim_id="CLM-2")["status"] = "lost"  # DQ-003
    find(records, "assessments", assessment_id="AS-2")["assessed_on"] = "someday"  # DQ-003
    return records


def _findings(source) -> list[dict]:
    return [f.to_dict() for f in run_check(source, as_of=AS_OF).findings]


@pytest.fixture(scope="module")
def sqlite_messy(tmp_path_factory) -> list[dict]:
    path = tmp_path_factory.mktemp("src") / "messy.sqlite"
    return _findings(write_sqlite(_messy_records(), path))


@pytest.mark.postgres
def test_postgres_text_columns_give_the_same_findings_as_sqlite(postgres_url, sqlite_messy):
    found = _findings(write_records(_messy_records(), postgres_url))
    assert {f["rule_id"] for f in found} >= {"DQ-001", "DQ-002", "DQ-003"}
    assert found == sqlite_messy


@pytest.mark.mariadb
def test_mariadb_text_columns_give_the_same_findings_as_sqlite(mariadb_url, sqlite_messy):
    found = _findings(write_records(_messy_records(), mariadb_url))
    assert {f["rule_id"] for f in found} >= {"DQ-001", "DQ-002", "DQ-003"}
    assert found == sqlite_messy


@pytest.mark.postgres
def test_postgres_typed_columns_read_clean(postgres_url):
    assert _findings(write_records(clean_records(), postgres_url, typed=True)) == []


@pytest.mark.mariadb
def test_mariadb_typed_columns_read_clean(mariadb_url):
    assert _findings(write_records(clean_records(), mariadb_url, typed=True)) == []


@pytest.mark.postgres
def test_postgres_missing_table_and_columns_named_at_once(postgres_url):
    import sqlalchemy as sa

    write_records(clean_records(), postgres_url)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE goals"))
        conn.execute(sa.text("ALTER TABLE sessions DROP COLUMN signed_at"))
    engine.dispose()
    with pytest.raises(ContractError) as caught:
        run_check(postgres_url, as_of=AS_OF)
    assert "'goals'" in str(caught.value) and "'signed_at'" in str(caught.value)


def test_unreachable_postgres_is_a_clear_error():
    with pytest.raises(SourceUnavailableError) as caught:
        run_check("postgresql+psycopg://nobody:secret@127.0.0.1:1/nowhere", as_of=AS_OF)
    assert "127.0.0.1" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_missing_sqlite_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SourceUnavailableError, match="not found"):
        run_check(tmp_path / "absent.sqlite", as_of=AS_OF)


def _hostile_records():
    """Extreme and foreign values every server can hold in a text column (reading 21)."""
    records = clean_records()
    find(records, "staff", staff_id="ST-1")["certification_expires_on"] = "9999-12-31"
    find(records, "referrals", referral_id="RF-1")["signed_on"] = "0001-01-01"
    find(records, "insurance_policies", policy_id="POL-1")["timely_filing_days"] = "1e30"
    records["session_services"][0]["minutes"] = "9223372036854775808"
    find(records, "practices", practice_id="PR-1")["timezone"] = "America"
    return records


@pytest.fixture(scope="module")
def sqlite_hostile(tmp_path_factory) -> list[dict]:
    path = tmp_path_factory.mktemp("src") / "hostile.sqlite"
    return _findings(write_sqlite(_hostile_records(), path))


def test_sqlite_hostile_values_read_as_the_rulebook_says(sqlite_hostile):
    dq3 = sorted(f["entity_id"] for f in sqlite_hostile if f["rule_id"] == "DQ-003")
    minutes_row = "session_services:" + clean_records()["session_services"][0]["session_id"]
    assert dq3 == sorted(["insurance_policies:POL-1", minutes_row, "practices:PR-1"])
    assert not [f for f in sqlite_hostile if f["rule_id"] in {"DOC-010", "COD-009"}]


@pytest.mark.postgres
def test_postgres_hostile_values_give_the_same_findings_as_sqlite(postgres_url, sqlite_hostile):
    assert _findings(write_records(_hostile_records(), postgres_url)) == sqlite_hostile


@pytest.mark.mariadb
def test_mariadb_hostile_values_give_the_same_findings_as_sqlite(mariadb_url, sqlite_hostile):
    assert _findings(write_records(_hostile_records(), mariadb_url)) == sqlite_hostile


def _far_dates_typed():
    from datetime import date

    records = clean_records()
    find(records, "staff", staff_id="ST-1")["certification_expires_on"] = date(9999, 12, 31)
    find(records, "referrals", referral_id="RF-1")["signed_on"] = date(1, 1, 1)
    return records


@pytest.mark.postgres
def test_postgres_typed_far_dates_read_as_dates(postgres_url):
    assert _findings(write_records(_far_dates_typed(), postgres_url, typed=True)) == []


@pytest.mark.mariadb
def test_mariadb_typed_far_dates_read_as_dates(mariadb_url):
    assert _findings(write_records(_far_dates_typed(), mariadb_url, typed=True)) == []
