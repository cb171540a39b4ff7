"""Settings: rulebook defaults, overrides per practice and payer, validation, frame helpers."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from metaudit.errors import SettingsError
from metaudit.spec.settings import (
    DEFAULTS,
    PAYER_SETTINGS,
    SETTINGS,
    RuleSettings,
    Settings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# The rulebook's numbers and code lists, as the rulebook states them.
RULEBOOK_DEFAULTS = {
    "referral_validity_days": 90,
    "referral_expiry_notice_days": 14,
    "active_client_days": 14,
    "referrer_credentials": ("MD", "DO", "DPM", "NP", "PA"),
    "supervised_credentials": ("NP", "PA"),
    "supervisor_credentials": ("MD", "DO"),
    "medical_exercise_patterns": (r"medical\s+exercise", r"\bMET\b", r"\bMES\b"),
    "excluded_plan_types": ("medicare", "medicare_advantage", "medicaid", "managed_medicaid"),
    "auth_visits_left_notice": 2,
    "auth_end_notice_days": 14,
    "prior_rehab_disciplines": ("PT", "OT", "DC"),
    "qualifying_condition_categories": ("post_surgical", "trauma", "chronic"),
    "note_signature_days": 2,
    "specialist_credentials": ("MES", "AMES"),
    "scope_of_practice_patterns": (
        r"\bdiagnos\w*",
        r"\bprescri\w*",
        r"\bmedications?\b",
        r"\btreat(s|ed|ing)?\b",
        r"\btreatment\b",
    ),
    "progress_report_days": 14,
    "reassessment_interval_days": 30,
    "reassessment_notice_days": 7,
    "medical_exercise_cpt_codes": ("97110", "97112", "97530"),
    "timed_cpt_codes": ("97110", "97112", "97530"),
    "max_diagnosis_pointers": 4,
    "unit_rule": "cms",
    "timely_filing_days": 90,
    "denied_appeal_days": 30,
    "unanswered_claim_days": 30,
    "default_timezone": "America/New_York",
}

PAYER_SCOPED = {
    "timely_filing_days",
    "unit_rule",
    "denied_appeal_days",
    "unanswered_claim_days",
    "medical_exercise_cpt_codes",
    "timed_cpt_codes",
    "max_diagnosis_pointers",
    "auth_visits_left_notice",
    "auth_end_notice_days",
    "excluded_plan_types",
}


def _error(config: dict) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_dict(config)
    return str(caught.value)


# ------------------------------------------------------------------ defaults


def test_defaults_equal_the_rulebook(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dataclasses.asdict(DEFAULTS) == RULEBOOK_DEFAULTS
    assert set(SETTINGS) == set(RULEBOOK_DEFAULTS)
    assert PAYER_SETTINGS == PAYER_SCOPED
    monkeypatch.delenv("METAUDIT_CONFIG", raising=False)
    settings = Settings.load(None)
    assert settings.for_practice("PR-1") == DEFAULTS
    assert settings.for_payer("PR-1", "Anyone") == DEFAULTS
    assert settings.for_practice(None) == RuleSettings()


def test_defaults_written_out_load_to_the_same_settings() -> None:
    # Every default passes its own validation (lists written as YAML would give them).
    written = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in RULEBOOK_DEFAULTS.items()
    }
    assert Settings.from_dict({"defaults": written}).for_practice("X") == DEFAULTS


def test_values_are_normalised() -> None:
    settings = Settings.from_dict(
        {
            "defaults": {
                "timed_cpt_codes": [97110, " 97112 ", "97110"],
                "specialist_credentials": ["mes", "Ames"],
                "excluded_plan_types": ["Medicare", " MEDICAID "],
                "qualifying_condition_categories": ["Trauma"],
                "unit_rule": " AMA ",
                "default_timezone": "America/Chicago",
            }
        }
    )
    rs = settings.for_practice("PR-1")
    assert rs.timed_cpt_codes == ("97110", "97112")
    assert rs.specialist_credentials == ("MES", "AMES")
    assert rs.excluded_plan_types == ("medicare", "medicaid")
    assert rs.qualifying_condition_categories == ("trauma",)
    assert rs.unit_rule == "ama"
    assert rs.default_timezone == "America/Chicago"
    assert settings.default_timezone == "America/Chicago"


# ---------------------------------------------------------------- precedence

LAYERED = {
    "defaults": {"timely_filing_days": 100, "denied_appeal_days": 40},
    "payers": {"Acme Health": {"timely_filing_days": 300}},
    "practices": {
        "PR-1": {
            "settings": {"timely_filing_days": 200, "note_signature_days": 1},
            "payers": {"acme health": {"timely_filing_days": 400}},
        },
        "PR-2": {"settings": {"timely_filing_days": 250}},
    },
}


def test_precedence_default_defaults_practice_payer_practice_payer() -> None:
    settings = Settings.from_dict(LAYERED)
    # rulebook default, where nothing overrides
    assert settings.for_practice("PR-1").unanswered_claim_days == 30
    # defaults
    assert settings.for_practice("PR-9").timely_filing_days == 100
    assert settings.for_practice(None).timely_filing_days == 100
    assert settings.for_practice("PR-1").denied_appeal_days == 40
    # practice settings over defaults
    assert settings.for_practice("PR-1").timely_filing_days == 200
    assert settings.for_practice("PR-1").note_signature_days == 1
    assert settings.for_practice("PR-2").note_signature_days == 2
    # top-level payer over practice settings
    assert settings.for_payer("PR-2", "Acme Health").timely_filing_days == 300
    assert settings.for_payer(None, "Acme Health").timely_filing_days == 300
    # practice payer over everything
    assert settings.for_payer("PR-1", "Acme Health").timely_filing_days == 400
    # an unknown payer, or none, falls back to the practice
    assert settings.for_payer("PR-1", "Other").timely_filing_days == 200
    assert settings.for_payer("PR-1", None).timely_filing_days == 200
    # the payer layer keeps what it does not set
    assert settings.for_payer("PR-1", "Acme Health").note_signature_days == 1


@pytest.mark.parametrize("name", ["Acme Health", "ACME HEALTH", "  acme health ", "aCmE hEaLtH"])
def test_payer_names_ignore_case_and_blanks(name: str) -> None:
    settings = Settings.from_dict(LAYERED)
    assert settings.for_payer("PR-1", name).timely_filing_days == 400
    assert settings.for_payer("PR-2", name).timely_filing_days == 300


def test_same_payer_twice_in_one_section_is_an_error() -> None:
    message = _error({"payers": {"Acme": {"unit_rule": "ama"}, " ACME": {"unit_rule": "cms"}}})
    assert "payers. ACME: same payer as 'Acme'" in message


# ---------------------------------------------------------------- validation

BAD_VALUES = [
    ("timely_filing_days", "abc", "must be a whole number of days >= 0, got 'abc'"),
    ("timely_filing_days", -1, "must be a whole number of days >= 0, got -1"),
    ("timely_filing_days", 9.5, "must be a whole number of days >= 0, got 9.5"),
    ("timely_filing_days", True, "must be a whole number of days >= 0, got true"),
    ("timely_filing_days", None, "must be a whole number of days >= 0, got null"),
    ("max_diagnosis_pointers", 0, "must be a whole number between 1 and 12, got 0"),
    ("max_diagnosis_pointers", 13, "must be a whole number between 1 and 12, got 13"),
    ("auth_visits_left_notice", -2, "must be a whole number >= 0, got -2"),
    ("timed_cpt_codes", [], "must be a non-empty list of codes, got []"),
    ("timed_cpt_codes", "97110", "must be a non-empty list of codes, got '97110'"),
    ("unit_rule", "medicare", "must be one of cms, ama, got 'medicare'"),
    ("excluded_plan_types", None, "must be a non-empty list of values, got null"),
]


@pytest.mark.parametrize(("name", "value", "problem"), BAD_VALUES)
def test_bad_values_name_their_path(name: str, value: object, problem: str) -> None:
    # The same mistake is reported with its own path in every place it can stand.
    places: dict[str, dict[str, Any]] = {
        f"defaults.{name}": {"defaults": {name: value}},
        f"practices.PR-1.settings.{name}": {"practices": {"PR-1": {"settings": {name: value}}}},
    }
    if name in PAYER_SCOPED:
        places[f"payers.Acme.{name}"] = {"payers": {"Acme": {name: value}}}
        places[f"practices.PR-1.payers.Acme.{name}"] = {
            "practices": {"PR-1": {"payers": {"Acme": {name: value}}}}
        }
    for path, config in places.items():
        assert f"{path}: {problem}" in _error(config)


def test_list_items_are_named_by_position() -> None:
    message = _error(
        {
            "defaults": {
                "scope_of_practice_patterns": [r"\bdiagnos\w*", "(unclosed"],
                "excluded_plan_types": ["medicare", "medicare-advantage"],
                "prior_rehab_disciplines": ["PT", "PTT"],
                "timed_cpt_codes": ["97110", None],
            }
        }
    )
    assert "defaults.scope_of_practice_patterns[1]: not a valid regular expression" in message
    assert "got '(unclosed'" in message
    assert (
        "defaults.excluded_plan_types[1]: 'medicare-advantage' is not a listed value "
        "(did you mean 'medicare_advantage'?)" in message
    )
    assert "defaults.prior_rehab_disciplines[1]: 'PTT' is not a listed value" in message
    assert "defaults.timed_cpt_codes[1]: must be non-blank text, got null" in message


def test_unknown_names_suggest_the_close_match() -> None:
    message = _error(
        {
            "defautls": {},
            "defaults": {"timely_filling_days": 90},
            "practices": {"PR-1": {"setting": {}, "settings": {"note_signature_day": 1}}},
        }
    )
    assert "defautls: unknown section (did you mean 'defaults'?)" in message
    assert "defaults.timely_filling_days: unknown setting (did you mean 'timely_filing_days'?)" in (
        message
    )
    assert "practices.PR-1.setting: unknown key (did you mean 'settings'?)" in message
    assert "practices.PR-1.settings.note_signature_day: unknown setting (did you mean " in message


def test_unknown_timezone() -> None:
    message = _error({"practices": {"PR-1": {"settings": {"default_timezone": "Mars/Olympus"}}}})
    assert "practices.PR-1.settings.default_timezone: unknown time zone" in message
    assert "got 'Mars/Olympus'" in message
    assert "default_timezone: unknown time zone (did you mean 'America/New_York'?)" in _error(
        {"defaults": {"default_timezone": "America/New_Yrok"}}
    )


def test_payer_override_of_a_practice_setting_is_an_error() -> None:
    message = _error({"payers": {"Acme": {"referral_validity_days": 60}}})
    assert "payers.Acme.referral_validity_days: cannot be set per payer" in message
    message = _error({"practices": {"PR-1": {"payers": {"Acme": {"note_signature_days": 1}}}}})
    assert "practices.PR-1.payers.Acme.note_signature_days: cannot be set per payer" in message


def test_every_problem_in_one_message() -> None:
    message = _error(
        {
            "defaults": {"timely_filing_days": "abc", "unit_rule": "x"},
            "payers": {"Acme": {"note_signature_days": 1}},
            "practices": {
                "PR-1": {"payers": {"Acme": {"timely_filing_days": -5}}},
                7: {},
            },
        }
    )
    assert message.startswith("invalid configuration (configuration): 5 problems")
    for path in (
        "defaults.timely_filing_days:",
        "defaults.unit_rule:",
        "payers.Acme.note_signature_days:",
        "practices.PR-1.payers.Acme.timely_filing_days:",
        "practices.7: a practice id must be text; quote it",
    ):
        assert path in message


def test_reserved_sections_are_accepted_and_kept() -> None:
    settings = Settings.from_dict(
        {
            "email": {"from": "audit@example.org"},
            "packets": {"dir": "data/packets"},
            "access": {"admins": ["ops"]},
            "practices": {
                "PR-1": {
                    "name": "Northside MET",
                    "compliance_leads": ["lead@example.org"],
                    "email": {"cc": []},
                    "packet_viewers": ["owner"],
                }
            },
        }
    )
    assert settings.sections["packets"] == {"dir": "data/packets"}
    assert settings.practice_section("PR-1")["name"] == "Northside MET"
    assert settings.practice_ids == ("PR-1",)
    assert settings.for_practice("PR-1") == DEFAULTS


def test_empty_sections_are_fine() -> None:
    settings = Settings.from_dict({"defaults": None, "payers": None, "practices": {"PR-1": None}})
    assert settings.for_payer("PR-1", "Acme") == DEFAULTS


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(SettingsError, match="must be a mapping"):
        Settings.from_dict(["defaults"])  # type: ignore[arg-type]


# ---------------------------------------------------------------- YAML files


def test_load_a_file_and_the_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "metaudit.yaml"
    path.write_text(
        "defaults:\n  medical_exercise_patterns: ['medical\\s+exercise', '\\bMET\\b']\n"
        "payers:\n  Acme:\n    unit_rule: ama\n",
        encoding="utf-8",
    )
    settings = Settings.load(path)
    assert settings.for_practice("X").medical_exercise_patterns == (
        r"medical\s+exercise",
        r"\bMET\b",
    )
    assert settings.for_payer("X", "ACME").unit_rule == "ama"
    monkeypatch.setenv("METAUDIT_CONFIG", str(path))
    assert Settings.load(None).for_payer("X", "acme").unit_rule == "ama"
    assert Settings.load(str(path)).source == str(path)


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.load(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("defaults: [unclosed\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid YAML"):
        Settings.load(broken)
    twice = tmp_path / "twice.yaml"
    twice.write_text("defaults:\n  unit_rule: ama\n  unit_rule: cms\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="'unit_rule' appears twice"):
        Settings.load(twice)
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  timely_filing_days: abc\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        Settings.load(bad)
    assert str(bad) in str(caught.value)
    assert "defaults.timely_filing_days: must be a whole number of days >= 0, got 'abc'" in str(
        caught.value
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    assert Settings.load(empty).for_practice("PR-1") == DEFAULTS


def test_the_example_configuration_loads() -> None:
    settings = Settings.load(REPO_ROOT / "metaudit.example.yaml")
    assert settings.for_payer("PR-1", "ACME HEALTH").timely_filing_days == 365
    assert settings.for_payer("PR-2", "Acme Health").timely_filing_days == 180
    assert settings.for_practice("PR-2").default_timezone == "America/Chicago"
    assert settings.for_practice("PR-1").note_signature_days == 1


def test_configuration_doc_names_every_setting() -> None:
    text = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in SETTINGS:
        assert f"| `{name}` |" in text


# ---------------------------------------------------------------- frame helpers

FRAME_CONFIG = {
    "defaults": {"timely_filing_days": 100},
    "payers": {"Acme": {"timely_filing_days": 300, "timed_cpt_codes": ["97110"]}},
    "practices": {
        "PR-1": {
            "settings": {
                "timely_filing_days": 200,
                "specialist_credentials": ["MES"],
                "scope_of_practice_patterns": [r"\bcure[sd]?\b"],
                "excluded_plan_types": ["medicare", "auto"],
            },
            "payers": {"Blue": {"timely_filing_days": 400, "timed_cpt_codes": ["97530", "97112"]}},
        },
        "PR-2": {"settings": {"note_signature_days": 5}},
    },
}


@pytest.fixture
def frame() -> pd.DataFrame:
    # A non-default index: results must align with it, not with positions.
    return pd.DataFrame(
        {
            "practice_id": pd.array(["PR-1", "PR-1", "PR-2", "PR-2", None, "PR-1"], dtype="string"),
            "payer_name": pd.array(
                ["ACME ", "blue", "Blue", None, "acme", "Other"], dtype="string"
            ),
            "cpt_code": pd.array(
                ["97110", " 97112", "97112", "97530", "97110", None], dtype="string"
            ),
            "credential": pd.array(["mes", "AMES", " ames ", "MD", "AMES", "MES"], dtype="string"),
            "plan_type": pd.array(
                ["Auto", "medicaid", "medicaid", "AUTO", None, "medicare"], dtype="string"
            ),
            "notes": pd.array(
                ["Cured the knee", "treated gently", "TREATMENT plan", None, "treats", "fine"],
                dtype="string",
            ),
        },
        index=[10, 11, 12, 13, 14, 15],
    )


def test_column_resolves_each_row(frame: pd.DataFrame) -> None:
    settings = Settings.from_dict(FRAME_CONFIG)
    days = settings.column(frame, "timely_filing_days", payer=frame["payer_name"])
    assert days.dtype == "Int64"
    assert list(days.index) == list(frame.index)
    # PR-2 has no entry for Blue: its own value (the defaults' 100) stands.
    assert days.tolist() == [300, 400, 100, 100, 300, 200]
    # Without payers: the practice's value (NA practice: the defaults).
    assert settings.column(frame, "timely_filing_days").tolist() == [200, 200, 100, 100, 100, 200]
    assert settings.column(frame, "note_signature_days").tolist() == [2, 2, 5, 5, 2, 2]
    codes = settings.column(frame, "timed_cpt_codes", payer=frame["payer_name"])
    assert codes.tolist() == [
        ("97110",),
        ("97530", "97112"),
        ("97110", "97112", "97530"),
        ("97110", "97112", "97530"),
        ("97110",),
        ("97110", "97112", "97530"),
    ]
    assert settings.column(frame, "unit_rule").dtype == "string"
    empty = settings.column(frame.iloc[:0], "timely_filing_days")
    assert empty.empty and empty.dtype == "Int64"


def test_column_refuses_payer_for_a_practice_setting(frame: pd.DataFrame) -> None:
    settings = Settings.from_dict(FRAME_CONFIG)
    with pytest.raises(ValueError, match="not payer-scoped"):
        settings.column(frame, "note_signature_days", payer=frame["payer_name"])
    with pytest.raises(KeyError, match="did you mean 'note_signature_days'"):
        settings.column(frame, "note_signature_day")


def test_isin_compares_normalised_codes(frame: pd.DataFrame) -> None:
    settings = Settings.from_dict(FRAME_CONFIG)
    held = settings.isin(frame, "credential", "specialist_credentials")
    assert held.dtype == bool
    assert list(held.index) == list(frame.index)
    assert held.tolist() == [True, False, True, False, True, True]
    timed = settings.isin(frame, "cpt_code", "timed_cpt_codes", payer=frame["payer_name"])
    assert timed.tolist() == [True, True, True, True, True, False]
    excluded = settings.isin(frame, "plan_type", "excluded_plan_types")
    assert excluded.tolist() == [True, False, True, False, False, True]
    with pytest.raises(ValueError, match="not a code list"):
        settings.isin(frame, "notes", "scope_of_practice_patterns")


def test_regex_any_per_practice(frame: pd.DataFrame) -> None:
    settings = Settings.from_dict(FRAME_CONFIG)
    hits = settings.regex_any(frame, "notes", "scope_of_practice_patterns")
    assert hits.dtype == bool
    assert list(hits.index) == list(frame.index)
    # PR-1 uses its own pattern only; PR-2 and the unknown practice the defaults.
    assert hits.tolist() == [True, False, True, False, True, False]
    with pytest.raises(ValueError, match="not a list of patterns"):
        settings.regex_any(frame, "notes", "timed_cpt_codes")


def test_regex_any_applies_patterns_as_written() -> None:
    settings = Settings.load(None)
    df = pd.DataFrame(
        {
            "practice_id": ["PR-1"] * 6,
            "text": [
                "treatments",
                "Treatment",
                "MET sessions",
                "metabolic",
                "Medical  Exercise",
                "diagnosis",
            ],
        }
    )
    scope = settings.regex_any(df, "text", "scope_of_practice_patterns").tolist()
    assert scope == [False, True, False, False, False, True]
    named = settings.regex_any(df, "text", "medical_exercise_patterns").tolist()
    assert named == [False, False, True, False, True, False]


def test_helpers_resolve_once_per_pair_on_a_large_frame() -> None:
    settings = Settings.from_dict(FRAME_CONFIG)
    rows = 300_000
    rng = np.random.default_rng(7)
    df = pd.DataFrame(
        {
            "practice_id": pd.array(rng.choice(["PR-1", "PR-2", "PR-3"], rows), dtype="string"),
            "cpt_code": pd.array(rng.choice(["97110", "97112", "99999"], rows), dtype="string"),
        }
    )
    payer = pd.Series(rng.choice(["Acme", "BLUE", "other", "Zed"], rows), dtype="string")
    start = time.perf_counter()
    days = settings.column(df, "timely_filing_days", payer=payer)
    timed = settings.isin(df, "cpt_code", "timed_cpt_codes", payer=payer)
    elapsed = time.perf_counter() - start
    assert len(days) == len(timed) == rows
    # 3 practices x 4 payers: twelve resolutions, not one per row.
    assert len(settings._cache) <= 12
    assert elapsed < 5, f"{elapsed:.2f}s"
    pr1_blue = (df["practice_id"] == "PR-1") & (payer == "BLUE")
    assert (days[pr1_blue] == 400).all()


def test_missing_practice_or_payer_scalars_fall_back() -> None:
    settings = Settings.from_dict(LAYERED)
    assert settings.for_practice(pd.NA).timely_filing_days == 100  # type: ignore[arg-type]
    assert settings.for_payer("PR-1", pd.NA).timely_filing_days == 200  # type: ignore[arg-type]
    assert settings.for_payer("PR-1", "  ").timely_filing_days == 200


def test_reading_a_configuration_needs_no_pandas() -> None:
    # Airflow parses DAG and plugin files often; settings must load without pandas.
    import subprocess
    import sys

    code = (
        "import sys; from metaudit.spec.settings import Settings; "
        "Settings.from_dict({'defaults': {'unit_rule': 'ama'}}); "
        "assert 'pandas' not in sys.modules and 'numpy' not in sys.modules"
    )
    env = {"PYTHONPATH": str(REPO_ROOT / "include")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_statement_timeout_defaults_to_300_seconds_and_can_be_set() -> None:
    assert Settings.from_dict({}).statement_timeout_s == pytest.approx(300.0)
    settings = Settings.from_dict({"source": {"statement_timeout_seconds": 2.5}})
    assert settings.statement_timeout_s == pytest.approx(2.5)


@pytest.mark.parametrize("bad", [0, -1, "300", True, 10**9, None])
def test_a_bad_statement_timeout_is_named(bad: object) -> None:
    with pytest.raises(SettingsError, match=r"source\.statement_timeout_seconds"):
        Settings.from_dict({"source": {"statement_timeout_seconds": bad}})


def test_an_unknown_source_key_is_named() -> None:
    with pytest.raises(SettingsError, match=r"source\.timeout"):
        Settings.from_dict({"source": {"timeout": 3}})


def test_a_timezone_setting_naming_a_folder_is_an_error_not_a_crash() -> None:
    with pytest.raises(SettingsError, match="default_timezone"):
        Settings.from_dict({"defaults": {"default_timezone": "America"}})
