"""The Great Expectations layer: custom checks, suite loading, validation of frames.

The example suite ``gx_suites/demo.json`` (family DEMO) exists for these tests
only; the rule families' suites live in ``expectations/``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from metaudit.check.frames import Frame
from metaudit.check.gx import (
    RuleFailure,
    clear_suite_cache,
    load_suite,
    validate_all,
    validate_family,
)
from metaudit.config import EXPECTATIONS_DIR_ENV
from metaudit.errors import SuiteError
from metaudit.spec.icd10 import code_set_release, is_billable
from metaudit.spec.npi import is_valid_npi

SUITES = Path(__file__).parent / "gx_suites"
VALID_NPI = "1234567893"


def luhn_ok(number: str) -> bool:
    """Textbook Luhn check of a full number (check digit last), independent of npi.py."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


# ---------------------------------------------------------------------------
# NPI


@pytest.mark.parametrize(
    "value", [VALID_NPI, " 1234567893 ", "1987654328", "2876543218", "1122334455"]
)
def test_valid_npis(value: str) -> None:
    assert is_valid_npi(value)


@pytest.mark.parametrize(
    "value",
    [
        "1234567890",  # wrong check digit
        "3234567893",  # first digit not 1 or 2
        "0234567893",
        "123456789",  # 9 digits
        "12345678930",  # 11 digits
        "123456789X",
        "1234 67893",
        "\u0661234567893",  # an Arabic-Indic digit is not an ASCII digit
        "",
        None,
        1234567893,  # a number, not text
    ],
)
def test_invalid_npis(value: Any) -> None:
    assert not is_valid_npi(value)


def test_npi_check_digit_agrees_with_textbook_luhn() -> None:
    rng = random.Random(7)
    for _ in range(500):
        body = rng.choice("12") + "".join(rng.choice("0123456789") for _ in range(8))
        valid = [d for d in "0123456789" if is_valid_npi(body + d)]
        assert len(valid) == 1
        assert luhn_ok("80840" + body + valid[0])


# ---------------------------------------------------------------------------
# ICD-10-CM


@pytest.mark.parametrize("code", ["M54.50", "M5450", " m54.50 ", "I10", "S52.521A", "Z79.899"])
def test_billable_codes(code: str) -> None:
    assert is_billable(code)


@pytest.mark.parametrize(
    "code",
    ["M54.5", "M545", "S52521", "Z99", "A00-A09", "1", "", "XX", "M54.5X", "M5450Q", "M54.50 X"],
)
def test_not_billable_codes(code: str) -> None:
    assert not is_billable(code)


def test_code_set_release_names_the_shipped_release() -> None:
    release = code_set_release()
    assert release.startswith("ICD-10-CM ")
    assert "2026" in release


# ---------------------------------------------------------------------------
# Loading suites


def write_suite(directory: Path, family: str, expectations: list[dict[str, Any]]) -> Path:
    path = directory / f"{family.lower()}.json"
    path.write_text(json.dumps({"name": family.lower(), "expectations": expectations}))
    return path


def not_null(column: str, rule_id: str = "TST-001", frame: str = "tst_frame") -> dict[str, Any]:
    return {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": column},
        "meta": {"rule_id": rule_id, "frame": frame},
    }


def test_load_suite_reads_the_to_json_dict_format() -> None:
    suite = load_suite("DEMO", SUITES)
    assert suite.name == "demo"
    assert len(suite.expectations) == 10
    types = {e.expectation_type for e in suite.expectations}
    assert "expect_column_values_to_be_valid_npi" in types
    assert "expect_column_values_to_be_billable_icd10_cm" in types
    # What GX writes back is again a loadable suite file.
    assert suite.to_json_dict()["expectations"][0]["type"] == "expect_column_values_to_not_be_null"


def test_load_suite_is_cached_per_file() -> None:
    assert load_suite("demo", SUITES) is load_suite("DEMO", SUITES)


def test_load_suite_follows_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(tmp_path, "TST", [not_null("a")])
    monkeypatch.setenv(EXPECTATIONS_DIR_ENV, str(tmp_path))
    assert len(load_suite("TST").expectations) == 1


def test_misspelled_expectation_type_raises(tmp_path: Path) -> None:
    broken = not_null("a", "TST-002")
    broken["type"] = "expect_column_values_to_not_be_nul"
    write_suite(tmp_path, "TST", [not_null("a"), broken])
    with pytest.raises(SuiteError, match=r"expect_column_values_to_not_be_nul.*TST-002"):
        load_suite("TST", tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["meta"].pop("rule_id"), "meta.rule_id"),
        (lambda e: e["meta"].pop("frame"), "meta.frame"),
        (lambda e: e.pop("meta"), "meta"),
        (lambda e: e["meta"].update(rule_id="REF-001"), "does not belong to family TST"),
        (lambda e: e["kwargs"].update(mostly=0.9), "mostly"),
        (lambda e: e["kwargs"].update(colum="b"), "colum"),
        (lambda e: e["kwargs"].update(result_format="SUMMARY"), "result_format"),
        (lambda e: e.update(kwarg={}), "unknown key"),
        (lambda e: e["meta"].update(part=""), "meta.part"),
    ],
)
def test_broken_expectations_raise(tmp_path: Path, change: Any, message: str) -> None:
    expectation = not_null("a")
    change(expectation)
    write_suite(tmp_path, "TST", [expectation])
    with pytest.raises(SuiteError, match=message):
        load_suite("TST", tmp_path)


def test_aggregate_expectations_are_refused(tmp_path: Path) -> None:
    aggregate = {
        "type": "expect_column_max_to_be_between",
        "kwargs": {"column": "a", "max_value": 3},
        "meta": {"rule_id": "TST-001", "frame": "tst_frame"},
    }
    write_suite(tmp_path, "TST", [aggregate])
    with pytest.raises(SuiteError, match="not a row-level"):
        load_suite("TST", tmp_path)


def test_missing_or_unreadable_suite_file_raises(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite("NONE", tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SuiteError, match="not valid JSON"):
        load_suite("BAD", tmp_path)
    (tmp_path / "top.json").write_text(json.dumps({"name": "top", "expectation": []}))
    with pytest.raises(SuiteError, match="unknown top-level"):
        load_suite("TOP", tmp_path)


# ---------------------------------------------------------------------------
# Validating frames


def referral_frame() -> Frame:
    day = pd.Timestamp
    data = pd.DataFrame(
        {
            "entity_id": pd.array(["RF-1", "RF-2", "RF-3", "RF-4", "RF-5"], dtype="string"),
            "practice_id": pd.array(["PR-1"] * 5, dtype="string"),
            "client_id": pd.array(["CL-1", "CL-2", "CL-3", "CL-4", "CL-5"], dtype="string"),
            "signed_on": pd.Series(
                [day("2026-01-05"), pd.NaT, day("2026-01-07"), day("2026-01-08"), pd.NaT],
                dtype="datetime64[ns]",
            ),
            # derive writes "" when the provider row is missing: unknown must fail.
            "referrer_npi": pd.array(
                [VALID_NPI, "1234567890", "", VALID_NPI, VALID_NPI], dtype="string"
            ),
            # NA: the rule does not apply (e.g. no referring provider to judge).
            "credential_allowed": pd.array([True, False, None, True, True], dtype="boolean"),
            "services": pd.array(
                ["Medical Exercise 2x/week", "MET", "physical therapy", None, "medical  exercise"],
                dtype="string",
            ),
            "expires_on": pd.Series(
                [
                    day("2026-07-01"),
                    day("2026-04-10"),
                    pd.NaT,
                    day("2026-04-20"),
                    day("2026-05-01"),
                ],
                dtype="datetime64[ns]",
            ),
            "notice_until": pd.Series(
                [
                    day("2026-04-14"),
                    day("2026-04-14"),
                    day("2026-04-14"),
                    pd.NaT,
                    day("2026-04-14"),
                ],
                dtype="datetime64[ns]",
            ),
        }
    )
    return Frame("demo_referral", "referral", data)


def claim_frame() -> Frame:
    data = pd.DataFrame(
        {
            "entity_id": pd.array(["C-1", "C-2", "C-3", "C-4", "C-5", "C-6"], dtype="string"),
            "practice_id": pd.array(["PR-1"] * 6, dtype="string"),
            "client_id": pd.array(["CL-1"] * 6, dtype="string"),
            "icd10_code": pd.array(
                ["M54.50", "M54.5", "m17.11", None, "XYZ", "M54.50"], dtype="string"
            ),
            "visits_allowed": pd.array([10, 10, None, 5, None, 8], dtype="Int64"),
            "visits_used": pd.array([3, 11, 2, None, None, 8], dtype="Int64"),
            "units": pd.array([1, 5, None, 0, 4, -1], dtype="Int64"),
        }
    )
    return Frame("demo_claim", "claim", data)


EXPECTED_FAILURES = [
    RuleFailure("DEMO-001", "demo_referral", "RF-2"),
    RuleFailure("DEMO-001", "demo_referral", "RF-5"),
    RuleFailure("DEMO-002", "demo_referral", "RF-2"),
    RuleFailure("DEMO-002", "demo_referral", "RF-3"),
    RuleFailure("DEMO-003", "demo_referral", "RF-2"),
    RuleFailure("DEMO-004", "demo_referral", "RF-3", "medical exercise"),
    RuleFailure("DEMO-004", "demo_referral", "RF-4", "services requested"),
    RuleFailure("DEMO-005", "demo_referral", "RF-2"),
    RuleFailure("DEMO-006", "demo_claim", "C-2"),
    RuleFailure("DEMO-006", "demo_claim", "C-5"),
    RuleFailure("DEMO-007", "demo_claim", "C-2"),
    # ignore_row_if "neither": a null on one side or both fails.
    RuleFailure("DEMO-008", "demo_claim", "C-2"),
    RuleFailure("DEMO-008", "demo_claim", "C-3"),
    RuleFailure("DEMO-008", "demo_claim", "C-4"),
    RuleFailure("DEMO-008", "demo_claim", "C-5"),
    RuleFailure("DEMO-009", "demo_claim", "C-2"),
    RuleFailure("DEMO-009", "demo_claim", "C-6"),
]


@pytest.fixture(scope="module")
def demo_validation() -> Any:
    suite = load_suite("DEMO", SUITES)
    return validate_family("DEMO", [referral_frame(), claim_frame()], suite)


def test_validate_family_returns_exactly_the_failing_entities(demo_validation: Any) -> None:
    assert demo_validation.family == "DEMO"
    assert demo_validation.failures == EXPECTED_FAILURES
    assert not demo_validation.success


def test_nulls_are_skipped(demo_validation: Any) -> None:
    failing = {(f.rule_id, f.entity_id) for f in demo_validation.failures}
    # RF-3's credential is NA, RF-4's services are NA for the regex, C-4's code is NA.
    assert ("DEMO-003", "RF-3") not in failing
    assert ("DEMO-004", "RF-4") in failing  # only through the not-null expectation
    assert not any(
        f.part == "medical exercise" and f.entity_id == "RF-4" for f in demo_validation.failures
    )
    assert ("DEMO-006", "C-4") not in failing
    # either_value_is_missing skips a row with a null on one side, on dates and on Int64.
    assert ("DEMO-005", "RF-3") not in failing
    assert ("DEMO-005", "RF-4") not in failing
    assert ("DEMO-007", "C-3") not in failing
    # between skips the null units of C-3.
    assert ("DEMO-009", "C-3") not in failing


def test_results_are_json_safe_and_bounded(demo_validation: Any) -> None:
    text = json.dumps(demo_validation.results, allow_nan=False)
    assert "unexpected_index_list" not in text.replace("partial_unexpected_index_list", "")
    assert len(demo_validation.results) == 2
    by_frame = {r["meta"]["metaudit"]["frame"]: r for r in demo_validation.results}
    assert by_frame["demo_claim"]["meta"]["metaudit"]["rows"] == 6
    between = next(
        r
        for r in by_frame["demo_claim"]["results"]
        if r["expectation_config"]["meta"]["rule_id"] == "DEMO-009"
    )
    assert between["result"]["unexpected_count"] == 2
    # Positions are replaced by entity ids in what is stored.
    assert between["result"]["partial_unexpected_index_list"] == ["C-2", "C-6"]


def test_empty_frame_validates_trivially() -> None:
    suite = load_suite("DEMO", SUITES)
    empty_claims = Frame("demo_claim", "claim", claim_frame().data.iloc[0:0])
    validation = validate_family("DEMO", [referral_frame(), empty_claims], suite)
    assert [f for f in validation.failures if f.frame == "demo_claim"] == []
    assert len(validation.failures) == 8
    empty = next(r for r in validation.results if r["meta"]["metaudit"]["frame"] == "demo_claim")
    assert empty["success"] is True
    json.dumps(validation.results, allow_nan=False)


def test_absent_frame_or_column_raises() -> None:
    suite = load_suite("DEMO", SUITES)
    with pytest.raises(SuiteError, match="demo_claim"):
        validate_family("DEMO", [referral_frame()], suite)
    claims = claim_frame()
    with pytest.raises(SuiteError, match="DEMO-009 needs 'units'"):
        validate_family(
            "DEMO",
            [referral_frame(), Frame("demo_claim", "claim", claims.data.drop(columns="units"))],
            suite,
        )


def test_any_index_and_repeated_runs_give_fresh_ids() -> None:
    """Ids come from positions: a shuffled, string-indexed frame must map back
    right, and a second frame must not reuse the first one's metrics."""
    suite = load_suite("DEMO", SUITES)
    referrals = referral_frame()
    shuffled = referrals.data.iloc[[4, 2, 0, 3, 1]].set_index(pd.Index(list("vwxyz")))
    first = validate_family(
        "DEMO", [Frame("demo_referral", "referral", shuffled), claim_frame()], suite
    )
    assert first.failures == EXPECTED_FAILURES

    fixed = claim_frame().data.assign(units=pd.array([1, 1, 1, 1, 1, 1], dtype="Int64"))
    second = validate_family("DEMO", [referrals, Frame("demo_claim", "claim", fixed)], suite)
    assert [f for f in second.failures if f.rule_id == "DEMO-009"] == []


def test_pairs_of_nullable_strings_and_booleans_do_not_break_gx(tmp_path: Path) -> None:
    """GX raises on NA in pair comparisons of nullable dtypes; the runner must not."""
    pairs = [
        {
            "type": "expect_column_pair_values_to_be_equal",
            "kwargs": {"column_A": column, "column_B": f"{column}_b"},
            "meta": {"rule_id": rule_id, "frame": "tst_frame"},
        }
        for rule_id, column in (("TST-001", "code"), ("TST-002", "flag"))
    ]
    write_suite(tmp_path, "TST", pairs)
    data = pd.DataFrame(
        {
            "entity_id": ["a", "b", "c", "d"],
            "code": pd.array(["X", "X", None, None], dtype="string"),
            "code_b": pd.array(["X", "Y", "X", None], dtype="string"),
            "flag": pd.array([True, True, None, None], dtype="boolean"),
            "flag_b": pd.array([True, False, True, None], dtype="boolean"),
        }
    )
    validation = validate_family(
        "TST", [Frame("tst_frame", "row", data)], load_suite("TST", tmp_path)
    )
    # GX's default ignore_row_if (both_values_are_missing): a null on one side fails.
    assert [(f.rule_id, f.entity_id) for f in validation.failures] == [
        ("TST-001", "b"),
        ("TST-001", "c"),
        ("TST-002", "b"),
        ("TST-002", "c"),
    ]


def test_validate_all_reads_each_family_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXPECTATIONS_DIR_ENV, str(SUITES))
    validations = validate_all({"DEMO": [referral_frame(), claim_frame()]})
    assert validations["DEMO"].failures == EXPECTED_FAILURES


def test_gx_error_inside_an_expectation_raises(tmp_path: Path) -> None:
    regex = {
        "type": "expect_column_values_to_match_regex",
        "kwargs": {"column": "a", "regex": "("},
        "meta": {"rule_id": "TST-001", "frame": "tst_frame"},
    }
    write_suite(tmp_path, "TST", [regex])
    frame = Frame("tst_frame", "row", pd.DataFrame({"entity_id": ["x"], "a": ["text"]}))
    with pytest.raises(SuiteError, match="TST-001"):
        validate_family("TST", [frame], load_suite("TST", tmp_path))


def test_importing_the_package_does_not_import_great_expectations() -> None:
    code = (
        "import sys, metaudit.check.gx, metaudit.check.gx.runner, metaudit.spec.icd10, metaudit.spec.npi;"
        "print('great_expectations' in sys.modules, 'simple_icd_10_cm' in sys.modules)"
    )
    include = Path(__file__).resolve().parents[2] / "include"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(include)},
    )
    assert out.stdout.split() == ["False", "False"]


@pytest.fixture(autouse=True)
def _fresh_suite_cache() -> Any:
    """Suites written to tmp paths must not leak between tests."""
    yield
    clear_suite_cache()
