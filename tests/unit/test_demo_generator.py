"""The demo generator: reproducible, clean unless told otherwise, every rule in its truth."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from metaudit.demo import (
    DEFECTS,
    GenerationReport,
    generate,
    read_truth,
    rules_covered,
    select,
    vocab,
)
from metaudit.demo.network import ACTIVE_DAYS, AUTH_WINDOW_DAYS, CLEAN_DESIGN, REASSESSMENT_DAYS
from metaudit.spec.contract import TABLES
from metaudit.spec.npi import is_valid_npi
from metaudit.spec.rulebook import RULES
from metaudit.spec.settings import SETTINGS

AS_OF = date(2026, 3, 2)
SMALL = 3000
SCOPE_PATTERNS = [
    r"\bdiagnos\w*",
    r"\bprescri\w*",
    r"\bmedications?\b",
    r"\btreat(s|ed|ing)?\b",
    r"\btreatment\b",
]
MEDICAL_EXERCISE_PATTERNS = [r"medical\s+exercise", r"\bMET\b", r"\bMES\b"]
ENTITY_ID_SHAPES = {
    "claim_diagnosis": re.compile(r"CM\d{8}:[A-L]"),
    "client_date": re.compile(r"CL\d{6}:\d{4}-\d{2}-\d{2}"),
    "row": re.compile(r"[a-z_]+:[A-Z]{2}\d+"),
}


def _generate(path: Path, **kwargs: object) -> GenerationReport:
    options: dict[str, object] = {"as_of": AS_OF, "sessions": SMALL, "progress": False}
    options.update(kwargs)
    return generate(str(path), **options)  # type: ignore[arg-type]


def _table_hashes(path: Path) -> dict[str, str]:
    hashes = {}
    with sqlite3.connect(path) as conn:
        for name in TABLES:
            digest = hashlib.sha256()
            for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
                digest.update(repr(row).encode())
            hashes[name] = digest.hexdigest()
    return hashes


def _row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in TABLES
        }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> GenerationReport:
    """A small network with every defect of the catalogue."""
    return _generate(tmp_path_factory.mktemp("demo") / "demo.sqlite")


def test_same_seed_gives_identical_database(tmp_path: Path, demo: GenerationReport) -> None:
    again = _generate(tmp_path / "again.sqlite")
    assert demo.database is not None and again.database is not None
    assert _table_hashes(demo.database) == _table_hashes(again.database)
    assert [e.as_dict() for e in again.expected] == [e.as_dict() for e in demo.expected]


def test_another_seed_gives_another_database(tmp_path: Path, demo: GenerationReport) -> None:
    other = _generate(tmp_path / "other.sqlite", seed=8, defects="none")
    assert other.database is not None and demo.database is not None
    assert _table_hashes(other.database)["sessions"] != _table_hashes(demo.database)["sessions"]


def test_catalogue_has_a_defect_for_every_rule() -> None:
    assert rules_covered() == set(RULES)
    for entry in DEFECTS.values():
        assert entry.inject.__doc__, f"{entry.name} has no docstring"
        assert set(entry.rules) <= set(RULES), entry.name


def test_truth_names_every_rule(demo: GenerationReport) -> None:
    assert {e.rule_id for e in demo.expected} == set(RULES)
    assert {e.defect for e in demo.expected} == set(DEFECTS)
    for e in demo.expected:
        assert e.rule_id in DEFECTS[e.defect].rules, (e.defect, e.rule_id)
        assert e.entity_type in RULES[e.rule_id].entity_types, (e.rule_id, e.entity_type)
        shape = ENTITY_ID_SHAPES.get(e.entity_type)
        assert shape is None or shape.fullmatch(e.entity_id), e
    notices = [e for e in demo.expected if RULES[e.rule_id].severity == "notice"]
    assert {e.rule_id for e in notices} == {"REF-009", "ELG-006", "REA-003", "CLM-002"}
    assert all((e.due_date is None) == (e.rule_id == "CLM-002") for e in notices)


def test_truth_and_meta_files_are_written_and_parseable(demo: GenerationReport) -> None:
    assert demo.database is not None
    assert demo.truth_path == demo.database.with_suffix(".truth.jsonl")
    lines = demo.truth_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(demo.expected)
    first = json.loads(lines[0])
    assert set(first) == {
        "rule_id",
        "entity_type",
        "entity_id",
        "practice_id",
        "client_id",
        "due_date",
        "defect",
    }
    assert read_truth(demo.truth_path) == demo.expected
    meta = json.loads(demo.meta_path.read_text(encoding="utf-8"))
    assert demo.meta_path.name == "demo.meta.json"
    assert meta["seed"] == 7 and meta["as_of"] == AS_OF.isoformat()
    assert meta["row_counts"] == _row_counts(demo.database)
    assert meta["defects"] == list(DEFECTS)


def test_clean_network_has_no_truth(tmp_path: Path) -> None:
    report = _generate(tmp_path / "clean.sqlite", defects="none")
    assert report.expected == []
    assert report.truth_path.exists() and report.truth_path.read_text(encoding="utf-8") == ""


def test_row_counts_are_plausible(demo: GenerationReport) -> None:
    counts = demo.row_counts
    assert all(counts[name] > 0 for name in TABLES), counts
    # The bulk leaves room for the sessions of the defect hosts (about twenty each).
    assert counts["sessions"] == pytest.approx(SMALL, rel=0.05)
    assert counts["clients"] == demo.clients
    assert counts["claims"] < counts["sessions"] < counts["session_exercises"]
    assert counts["claim_lines"] >= counts["claims"]
    assert counts["outcome_measures"] == pytest.approx(3 * counts["assessments"], rel=0.01)
    with sqlite3.connect(demo.database) as conn:  # type: ignore[arg-type]
        completed = conn.execute(
            "SELECT count(*) FROM sessions WHERE status = 'completed'"
        ).fetchone()[0]
        future = conn.execute(
            "SELECT count(*) FROM sessions WHERE session_date > ?", (AS_OF.isoformat(),)
        ).fetchone()[0]
    assert 0.85 * counts["sessions"] < completed < counts["sessions"]
    assert future > 0  # records after the as-of date exist and must cause nothing


def test_npis_are_valid(demo: GenerationReport) -> None:
    with sqlite3.connect(demo.database) as conn:  # type: ignore[arg-type]
        practice_npis = [r[0] for r in conn.execute("SELECT organization_npi FROM practices")]
        staff_npis = [
            r[0] for r in conn.execute("SELECT npi FROM staff WHERE credential IN ('MES', 'AMES')")
        ]
        billing = [r[0] for r in conn.execute("SELECT DISTINCT billing_npi FROM claims")]
    assert all(is_valid_npi(n) for n in practice_npis)
    assert all(is_valid_npi(n) for n in staff_npis)
    assert sum(not is_valid_npi(n) for n in billing) == 1  # cod008_invalid_billing_npi


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_vocabulary_keeps_the_clean_network_clean() -> None:
    import simple_icd_10_cm as icd

    texts = (
        vocab.SESSION_NOTES
        + vocab.MISSED_SESSION_NOTES
        + vocab.ASSESSMENT_NOTES
        + vocab.INITIAL_DEFICITS
        + vocab.REASSESSMENT_DEFICITS
        + vocab.DISCHARGE_DEFICITS
    )
    for text in texts:
        for pattern in SCOPE_PATTERNS:
            assert not re.search(pattern, text, re.IGNORECASE), (pattern, text)
    for text in vocab.SERVICES_REQUESTED:
        assert any(re.search(p, text, re.IGNORECASE) for p in MEDICAL_EXERCISE_PATTERNS), text
    for condition in vocab.PRIMARY_CONDITIONS + vocab.SECONDARY_CONDITIONS:
        assert icd.is_leaf(condition.icd10_code), condition.icd10_code
    assert {c.category for c in vocab.PRIMARY_CONDITIONS} == {"post_surgical", "trauma", "chronic"}
    assert icd.is_leaf(vocab.UNDOCUMENTED_CODE)
    assert not icd.is_leaf(vocab.HEADER_CODE)


def test_active_placement_avoids_every_notice_window() -> None:
    # Latest assessment young enough that its reassessment falls due after the notice
    # window (REA-002/003); the authorization window covering D ends after the notice
    # window (ELG-006). The windows are the settings' defaults.
    interval = SETTINGS["reassessment_interval_days"].default
    reassessment_notice = SETTINGS["reassessment_notice_days"].default
    auth_notice = SETTINGS["auth_end_notice_days"].default
    for t in ACTIVE_DAYS:
        latest = t % REASSESSMENT_DAYS  # days since the latest assessment
        assert interval - latest > reassessment_notice, t  # due after D + notice
        # The window's last day is day AUTH_WINDOW_DAYS - 1 of it.
        assert (AUTH_WINDOW_DAYS - 1) - t % AUTH_WINDOW_DAYS > auth_notice, t
    assert set(CLEAN_DESIGN) == set(RULES)


def test_select_names_and_rule_ids() -> None:
    assert select("none") == [] and select([]) == []
    assert [d.name for d in select("REF-004")] == [
        "ref004_np_without_supervisor",
        "ref004_supervisor_not_physician",
    ]
    assert [d.name for d in select("ref006_unsigned_referral, CLM-002")] == [
        "ref006_unsigned_referral",
        "clm002_no_answer_from_payer",
    ]
    with pytest.raises(ValueError, match="unknown defect"):
        select("no_such_defect")


def test_selected_defects_only(tmp_path: Path) -> None:
    report = _generate(
        tmp_path / "some.sqlite", defects="REF-006,dq001_duplicate_eligibility_check"
    )
    assert {e.rule_id for e in report.expected} == {"REF-006", "DQ-001"}
    assert report.meta["primary_keys"] is False  # a duplicated key needs a table without one


@pytest.mark.slow
def test_audit_reports_exactly_the_truth(demo: GenerationReport) -> None:
    """The audit over the demo finds the injected defects and nothing else."""
    from metaudit.check.engine import run_check

    result = run_check(str(demo.database), AS_OF)

    def key(x: object) -> tuple[object, ...]:
        return tuple(
            getattr(x, f)
            for f in ("rule_id", "entity_type", "entity_id", "practice_id", "client_id", "due_date")
        )

    assert sorted(map(key, result.findings)) == sorted(map(key, demo.expected))
