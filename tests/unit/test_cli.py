"""The metaudit command: exit codes and files as the interfaces fix them."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from builders import AS_OF, clean_records, find, write_sqlite

from metaudit.cli import main
from metaudit.spec.findings import FIELDS


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metaudit.cli", *args], capture_output=True, text=True, check=False
    )


def test_check_on_a_database_missing_a_table_exits_2_and_names_it(tmp_path: Path):
    db = write_sqlite(clean_records(), tmp_path / "src.sqlite")
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE authorizations")
        conn.execute("ALTER TABLE claims DROP COLUMN billing_npi")
    proc = _run("check", "--source", str(db), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "'authorizations'" in proc.stderr and "'billing_npi'" in proc.stderr
    assert not (tmp_path / "out" / "findings.jsonl").exists()


def test_check_on_a_missing_file_exits_2(tmp_path: Path):
    assert main(["check", "--source", str(tmp_path / "nope.sqlite"), "--out", str(tmp_path)]) == 2


def test_bad_as_of_exits_2(tmp_path: Path):
    proc = _run("check", "--source", "x.sqlite", "--as-of", "31/03/2026", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "YYYY-MM-DD" in proc.stderr


def test_check_writes_sorted_jsonl_and_csv_with_the_same_rows(tmp_path: Path):
    records = clean_records()
    find(records, "referrals", referral_id="RF-1")["signed_on"] = None  # REF-006
    find(records, "goals", goal_id="G-2")["target_date"] = None  # DOC-007
    records["sessions"].append(dict(find(records, "sessions", session_id="S-1")))  # DQ-001
    db = write_sqlite(records, tmp_path / "src.sqlite")
    out = tmp_path / "out"
    code = main(["check", "--source", str(db), "--as-of", AS_OF.isoformat(), "--out", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    assert [list(r) for r in rows] == [list(FIELDS)] * len(rows)
    assert [(r["rule_id"], r["entity_id"]) for r in rows] == [
        ("DQ-001", "sessions:S-1"),
        ("REF-006", "RF-1"),
        ("DOC-007", "G-2"),
    ]
    assert all(r["as_of"] == "2026-03-31" and r["practice_id"] == "PR-1" for r in rows)
    assert rows[1]["fingerprint"] == "REF-006|referral|RF-1"
    with (out / "findings.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["fingerprint"] for r in table] == [r["fingerprint"] for r in rows]
    assert list(table[0]) == list(FIELDS)
    assert (out / "validation" / "ref.json").exists()


def test_check_filters_practices(tmp_path: Path):
    records = clean_records()
    find(records, "referrals", referral_id="RF-1")["signed_on"] = None
    db = write_sqlite(records, tmp_path / "src.sqlite")
    out = tmp_path / "out"
    assert (
        main(
            [
                "check",
                "--source",
                str(db),
                "--as-of",
                "2026-03-31",
                "--practice",
                "PR-9",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "findings.jsonl").read_text() == ""


def test_accept_withdraw_and_list_the_trail_from_the_command_line(tmp_path: Path, capsys):
    from datetime import UTC, datetime, timedelta

    from dashboard_builders import D3, dashboard_store, ref

    store_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    dashboard_store(store_url).close()
    fingerprint = ref(D3).fingerprint
    until = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    common = ["--practice", "PR-1", "--store", store_url, "--fingerprint", fingerprint]
    accept = ["accept", *common, "--user", "kim", "--reason", "payer exception", "--until", until]
    assert main(accept) == 0
    assert f"accepted until {until} by kim" in capsys.readouterr().out
    assert main(["withdraw", *common, "--user", "kim"]) == 0
    capsys.readouterr()
    assert main(["acceptances", *common]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["action"], r["user"], r["until"]) for r in rows] == [
        ("accepted", "kim", until),
        ("withdrawn", "kim", None),
    ]
    # Refusals exit 2 and say why.
    assert main(["accept", *common[:4], "--fingerprint", "nope", *accept[7:]]) == 2
    assert "has no finding with fingerprint nope" in capsys.readouterr().err
    assert main([*accept[:-1], "2020-01-01"]) == 2
    assert "is in the past" in capsys.readouterr().err
