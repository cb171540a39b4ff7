"""The rulebook module: the 50 rules, their messages, and the docs generated from them."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pandas as pd
import pytest

from metaudit import docs_gen
from metaudit.spec import rulebook, settings
from metaudit.spec.rulebook import RULES

# (id, severity, entity types) as the rulebook v1 states them.
EXPECTED = {
    "REF-001": ("critical", ("client",)),
    "REF-002": ("critical", ("session",)),
    "REF-003": ("critical", ("referral",)),
    "REF-004": ("critical", ("referral",)),
    "REF-005": ("critical", ("referral",)),
    "REF-006": ("critical", ("referral",)),
    "REF-007": ("warning", ("referral",)),
    "REF-008": ("critical", ("referral",)),
    "REF-009": ("notice", ("referral",)),
    "ELG-001": ("critical", ("claim",)),
    "ELG-002": ("critical", ("policy",)),
    "ELG-003": ("critical", ("claim",)),
    "ELG-004": ("critical", ("claim_line",)),
    "ELG-005": ("critical", ("claim_line",)),
    "ELG-006": ("notice", ("authorization",)),
    "ELG-007": ("critical", ("client",)),
    "ELG-008": ("critical", ("client",)),
    "ELG-009": ("critical", ("assessment",)),
    "DOC-001": ("critical", ("client",)),
    "DOC-002": ("critical", ("client",)),
    "DOC-003": ("warning", ("assessment",)),
    "DOC-004": ("critical", ("session",)),
    "DOC-005": ("warning", ("poe",)),
    "DOC-006": ("critical", ("poe",)),
    "DOC-007": ("warning", ("goal",)),
    "DOC-008": ("critical", ("session",)),
    "DOC-009": ("warning", ("session",)),
    "DOC-010": ("critical", ("session",)),
    "DOC-011": ("warning", ("session", "assessment")),
    "DOC-012": ("warning", ("assessment",)),
    "REA-001": ("critical", ("session",)),
    "REA-002": ("warning", ("client",)),
    "REA-003": ("notice", ("client",)),
    "REA-004": ("warning", ("assessment",)),
    "REA-005": ("warning", ("client",)),
    "COD-001": ("critical", ("claim_line",)),
    "COD-002": ("critical", ("claim_line",)),
    "COD-003": ("critical", ("claim_diagnosis",)),
    "COD-004": ("warning", ("claim_diagnosis",)),
    "COD-005": ("critical", ("client_date",)),
    "COD-006": ("critical", ("claim_line",)),
    "COD-007": ("critical", ("claim_line",)),
    "COD-008": ("critical", ("claim",)),
    "COD-009": ("warning", ("claim",)),
    "COD-010": ("warning", ("claim_line",)),
    "CLM-001": ("warning", ("claim",)),
    "CLM-002": ("notice", ("claim",)),
    "DQ-001": ("critical", ("row",)),
    "DQ-002": ("warning", ("row",)),
    "DQ-003": ("warning", ("row",)),
}

SAMPLE_IDS = {
    "client": "C-1",
    "session": "S-3",
    "referral": "R-12",
    "policy": "P-2",
    "claim": "CL-4",
    "claim_line": "L-9",
    "claim_diagnosis": "C-4:B",
    "assessment": "A-5",
    "poe": "POE-1",
    "goal": "G-7",
    "authorization": "AU-2",
    "client_date": "C-1:2026-03-02",
    "row": "sessions:S-17",
}

# The spec lives beside the repository (../shared); the product never reads it.
SPEC_RULES = Path(__file__).resolve().parents[2].parent / "shared" / "contract" / "rules.md"


def test_exactly_the_fifty_rules_in_rulebook_order() -> None:
    assert list(RULES) == list(EXPECTED)
    assert len(RULES) == 50


@pytest.mark.parametrize("rule_id", list(EXPECTED))
def test_severity_entity_and_family(rule_id: str) -> None:
    rule = RULES[rule_id]
    severity, entities = EXPECTED[rule_id]
    assert rule.id == rule_id
    assert (rule.severity, rule.entity_types) == (severity, entities)
    assert rule.family == rule_id.split("-")[0]
    assert rule.family in rulebook.FAMILIES
    assert rule.severity in rulebook.SEVERITY_ORDER
    assert all(e in rulebook.ENTITY_LABELS for e in rule.entity_types)
    assert rule.title and rule.meaning and rule.fix and rule.message


def test_families_group_the_rules_in_order() -> None:
    grouped = rulebook.rules_by_family()
    assert list(grouped) == ["REF", "ELG", "DOC", "REA", "COD", "CLM", "DQ"]
    counts = {family: len(rules) for family, rules in grouped.items()}
    assert counts == {"REF": 9, "ELG": 9, "DOC": 12, "REA": 5, "COD": 10, "CLM": 2, "DQ": 3}
    assert [r.id for rules in grouped.values() for r in rules] == list(RULES)


def test_severity_order_and_rule_is_frozen() -> None:
    assert rulebook.SEVERITY_ORDER == ("critical", "warning", "notice")
    with pytest.raises(dataclasses.FrozenInstanceError):
        RULES["REF-006"].severity = "notice"  # type: ignore[misc]


def test_notices_with_a_date_have_a_due_placeholder() -> None:
    notices = {r.id for r in RULES.values() if r.severity == "notice"}
    assert notices == {"REF-009", "ELG-006", "REA-003", "CLM-002"}
    assert {r.id for r in RULES.values() if r.has_due_date} == {"REF-009", "ELG-006", "REA-003"}


@pytest.mark.parametrize("rule_id", list(EXPECTED))
def test_templates_use_only_known_placeholders(rule_id: str) -> None:
    rule = RULES[rule_id]
    assert rulebook.template_fields(rule.message) <= rulebook.PLACEHOLDERS
    assert rule.message.startswith("{entity} ")
    # The other texts are shown as they are: a brace would be a forgotten template.
    for text in (rule.title, rule.meaning, rule.fix, rule.missing_default):
        assert "{" not in text and "}" not in text
    assert bool(rule.missing_default) == rule.uses_parts


def _one_sentence(text: str) -> bool:
    return (
        text.endswith(".")
        and not text.endswith("..")
        and ". " not in text
        and text[0].isupper()
        and "{" not in text
        and "}" not in text
        and "  " not in text
    )


DUE_CASES = (
    (None, "soon"),
    ("2026-03-16", "on 2026-03-16"),
    (pd.Timestamp("2026-03-16"), "on 2026-03-16"),
    (pd.NaT, "soon"),
)


@pytest.mark.parametrize("rule_id", list(EXPECTED))
def test_every_message_renders_as_one_sentence(rule_id: str) -> None:
    rule = RULES[rule_id]
    for entity_type in rule.entity_types:
        entity_id = SAMPLE_IDS[entity_type]
        label = rulebook.entity_label(entity_type, entity_id)
        for parts in (None, [], ["a signature"], ["frequency per week", "a signature"]):
            for due, due_text in DUE_CASES:
                text = rulebook.message(rule_id, entity_type, entity_id, parts, due_date=due)
                assert _one_sentence(text), text
                assert text.startswith(label), text
                if parts:
                    assert ", ".join(parts) in text
                if rule.has_due_date:
                    assert due_text in text, text


def test_messages_carry_no_client_name() -> None:
    # A client record as the source holds it: nothing of it but the id may reach a message.
    client = {"client_id": "C-1", "first_name": "Philippa", "last_name": "Quennell"}
    params = list(inspect.signature(rulebook.message).parameters)
    assert params == ["rule_id", "entity_type", "entity_id", "parts", "due_date"]
    for rule in RULES.values():
        for entity_type in rule.entity_types:
            entity_id = client["client_id"] if entity_type == "client" else SAMPLE_IDS[entity_type]
            text = rulebook.message(rule.id, entity_type, entity_id, ["an outcome measure"])
            for word in (client["first_name"], client["last_name"]):
                assert word.lower() not in text.lower()


def test_message_examples() -> None:
    assert (
        rulebook.message("DOC-005", "poe", "POE-1", ["frequency per week", "a signature"])
        == "Plan of exercise POE-1 lacks frequency per week, a signature."
    )
    assert rulebook.message("REF-006", "referral", "R-12") == "Referral R-12 is not signed."
    # Parts of a rule whose sentence has no place for them are kept, in parentheses.
    assert (
        rulebook.message("REF-006", "referral", "R-12", ["x"]) == "Referral R-12 is not signed (x)."
    )
    assert rulebook.message("DOC-006", "poe", "POE-1") == (
        "Plan of exercise POE-1 lacks a short-term or a long-term goal."
    )
    # Repeated parts are named once; a trailing period in a part is not doubled.
    assert rulebook.message("DOC-007", "goal", "G-1", ["a target date.", "a target date"]) == (
        "Goal G-1 is not measurable: it lacks a target date."
    )
    assert "on 2026-04-01" in rulebook.message("REA-003", "client", "C-1", due_date="2026-04-01")
    assert rulebook.message("REA-003", "client", "C-1").endswith("for a reassessment soon.")
    assert rulebook.message("COD-005", "client_date", "C-1:2026-03-02").startswith(
        "Client C-1 on 2026-03-02 has more timed units"
    )
    assert rulebook.message("DOC-011", "assessment", "A-5").startswith("Assessment A-5 ")


def test_entity_labels() -> None:
    label = rulebook.entity_label
    assert label("referral", "R-12") == "Referral R-12"
    assert label("session", "S-3") == "Session S-3"
    assert label("claim_line", "L-9") == "Claim line L-9"
    assert label("claim_diagnosis", "C-4:B") == "Claim diagnosis C-4:B"
    assert label("client", "C-1") == "Client C-1"
    assert label("client_date", "C-1:2026-03-02") == "Client C-1 on 2026-03-02"
    assert label("row", "sessions:S-17") == "Row sessions:S-17"
    assert label("poe", "POE-1") == "Plan of exercise POE-1"


def test_message_refuses_unknown_rule_or_entity() -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        rulebook.message("REF-010", "referral", "R-1")
    with pytest.raises(ValueError, match="REF-006 reports on referral"):
        rulebook.message("REF-006", "client", "C-1")


def test_rule_settings_exist_and_every_setting_is_used() -> None:
    used = {name for rule in RULES.values() for name in rule.settings}
    assert used <= set(settings.SETTINGS)
    assert used == set(settings.SETTINGS), set(settings.SETTINGS) - used


def test_docs_rules_md_is_up_to_date() -> None:
    stale = docs_gen.stale_docs()
    assert not stale, f"run `python -m metaudit.docs_gen`: stale {[str(p) for p in stale]}"
    text = (docs_gen.REPO_ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for rule in RULES.values():
        assert f"### {rule.id}\n" in text
        assert rule.meaning in text


def _spec_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows: dict[str, tuple[str, tuple[str, ...]]] = {}
    row = re.compile(r"^\|\s*([A-Z]{2,3}-\d{3})\s*\|\s*(\w+)\s*\|\s*([^|]+?)\s*\|")
    for line in SPEC_RULES.read_text(encoding="utf-8").splitlines():
        match = row.match(line)
        if match:
            entities = tuple(e.strip() for e in match.group(3).split(","))
            rows[match.group(1)] = (match.group(2), entities)
    return rows


@pytest.mark.skipif(not SPEC_RULES.exists(), reason=f"rulebook spec not found at {SPEC_RULES}")
def test_rulebook_matches_the_spec_tables() -> None:
    spec = _spec_table()
    assert len(spec) == 50
    ours = {r.id: (r.severity, r.entity_types) for r in RULES.values()}
    assert ours == spec


def _numeric_defaults(rule: rulebook.Rule) -> set[int]:
    defaults = rulebook.setting_defaults()
    return {
        value
        for name in rule.settings
        if isinstance(value := defaults[name], int) and not isinstance(value, bool)
    }


@pytest.mark.parametrize("rule", rulebook._rules(), ids=lambda rule: rule.id)
def test_rule_texts_name_defaults_by_setting_not_by_number(rule: rulebook.Rule) -> None:
    # The unfilled texts: a number equal to one of the rule's settings' defaults would be
    # a hand-typed copy that goes stale when the default changes.
    for field in ("title", "meaning", "fix", "missing_default", "example"):
        text = getattr(rule, field)
        numbers = {int(n) for n in re.findall(r"(?<![\w.-])\d+(?![\w.-])", text)}
        assert not numbers & _numeric_defaults(rule), (rule.id, field, text)
        named = rulebook.template_fields(text)
        assert named <= set(rule.settings), (rule.id, field, named - set(rule.settings))


def test_fill_defaults_writes_in_the_given_default() -> None:
    template = "more than {reassessment_interval_days} days, codes ({timed_cpt_codes})"
    fake = {"reassessment_interval_days": 45, "timed_cpt_codes": ("97110", "97530")}
    assert rulebook.fill_defaults(template, fake) == "more than 45 days, codes (97110, 97530)"
    assert rulebook.fill_defaults("no number here", fake) == "no number here"


def test_rules_carry_the_settings_defaults() -> None:
    raw = {rule.id: rule for rule in rulebook._rules()}["REA-002"]
    fake = rulebook.setting_defaults() | {"reassessment_interval_days": 45}
    assert "more than 45 days" in rulebook.with_defaults(raw, fake).meaning
    default = settings.SETTINGS["reassessment_interval_days"].default
    assert f"more than {default} days" in RULES["REA-002"].meaning
    assert "{" not in RULES["REA-002"].meaning
    # The message template keeps its per-finding placeholders.
    assert RULES["REA-002"].message == raw.message
