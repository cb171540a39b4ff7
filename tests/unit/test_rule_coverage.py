"""One source of truth per rule: every rulebook rule is implemented and tested, and every
implementation belongs to a rulebook rule of the right entity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from builders import AS_OF, clean_records, write_sqlite

from metaudit.check.derive import FAMILIES
from metaudit.check.engine import derive_family, load_source
from metaudit.check.view import build_view
from metaudit.spec.rulebook import RULES
from metaudit.spec.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DQ_RULES = {"DQ-001", "DQ-002", "DQ-003"}


def _suite_expectations() -> list[tuple[str, dict]]:
    pairs = []
    for family in FAMILIES:
        suite = json.loads((ROOT / "expectations" / f"{family.lower()}.json").read_text())
        pairs.extend((family, e) for e in suite["expectations"])
    return pairs


def test_every_rulebook_rule_has_an_implementation_and_no_other():
    in_suites = {e["meta"]["rule_id"] for _, e in _suite_expectations()}
    quality_source = (ROOT / "include" / "metaudit" / "source" / "quality.py").read_text()
    in_quality = set(re.findall(r'"(DQ-00\d)"', quality_source))
    assert in_quality == DQ_RULES
    assert in_suites | in_quality == set(RULES)


def test_suite_rules_belong_to_their_family():
    for family, expectation in _suite_expectations():
        rule = RULES[expectation["meta"]["rule_id"]]
        assert rule.family == family, expectation


def test_every_frame_reports_an_entity_its_rules_name(tmp_path: Path):
    db = write_sqlite(clean_records(), tmp_path / "src.sqlite")
    view = build_view(load_source(db, AS_OF), pd.Timestamp(AS_OF))
    settings = Settings.load(None)
    entity_of = {}
    for family in FAMILIES:
        for frame in derive_family(family, view, settings):
            entity_of[frame.name] = frame.entity_type
    for _, expectation in _suite_expectations():
        meta = expectation["meta"]
        assert meta["frame"] in entity_of, (
            f"{meta['rule_id']} validates unknown frame {meta['frame']}"
        )
        assert entity_of[meta["frame"]] in RULES[meta["rule_id"]].entity_types, meta


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_every_rule_has_a_firing_test(rule_id: str):
    name = "test_" + rule_id.lower().replace("-", "")
    sources = [
        *(ROOT / "tests" / "rules").glob("test_*.py"),
        ROOT / "tests" / "unit" / "test_quality.py",
    ]
    assert any(re.search(rf"def {name}_", p.read_text()) for p in sources), f"no {name}_* test"
