"""The shared pass/fail/not-applicable of metaudit.check.outcomes against GX itself.

The real suites run on frames derived from records (tests/builders.py), with a
few defects in them and a client without activity: what ``frame_outcomes`` says
an expectation evaluated and failed must be what GX counted and listed on the
same frame, and what ``rule_outcomes`` says of each (rule, client) must be what
GX says when it validates that client's rows alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from builders import add_client_without_sessions, audit_view, clean_records, find

from metaudit.check.derive import FAMILIES
from metaudit.check.engine import derive_family
from metaudit.check.frames import Frame
from metaudit.check.gx import FamilyValidation, load_suite, validate_family
from metaudit.check.outcomes import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    frame_outcomes,
    rule_outcomes,
)
from metaudit.spec.settings import Settings

CLIENTS = ("CL-1", "CL-2")


def _records() -> dict[str, list[dict[str, Any]]]:
    records = clean_records()
    records["referrals"][0]["signed_on"] = None  # REF-006: one expectation
    plan = find(records, "plans_of_exercise", poe_id="POE-1")
    plan["frequency_per_week"] = None  # DOC-005: one part of several on one frame
    plan["progression"] = None
    add_client_without_sessions(records)  # CL-2: no row in any frame
    return records


@pytest.fixture(scope="module")
def checked() -> dict[str, tuple[list[Frame], Any, FamilyValidation]]:
    """Each family's frames, suite and GX validation of the records."""
    view = audit_view(_records())
    settings = Settings.load(None)
    out = {}
    for family in FAMILIES:
        frames = derive_family(family, view, settings)
        suite = load_suite(family)
        out[family] = (frames, suite, validate_family(family, frames, suite))
    return out


def _configs(suite: Any) -> list[dict[str, Any]]:
    return [e.configuration.to_json_dict() for e in suite.expectations]


def _key(config: dict[str, Any]) -> tuple[str, str, str]:
    """An expectation's identity in GX's results, which drop the runner's index."""
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    meta = {k: v for k, v in (config.get("meta") or {}).items() if k != "metaudit_index"}
    return (str(config.get("type")), repr(sorted(kwargs.items())), repr(sorted(meta.items())))


def _evaluated(result: dict[str, Any]) -> int:
    """How many rows GX checked: null checks report no missing count and check them all."""
    return int(result["element_count"]) - int(result.get("missing_count") or 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_frame_outcomes_agree_with_gx_per_expectation(checked, family: str) -> None:
    frames, suite, validation = checked[family]
    configs = _configs(suite)
    by_key = {_key(config): position for position, config in enumerate(configs)}
    assert len(by_key) == len(configs)
    by_frame = {frame.name: frame for frame in frames}
    compared = 0
    for frame_result in validation.results:
        frame = by_frame[frame_result["meta"]["metaudit"]["frame"]]
        planned = [(p, c) for p, c in enumerate(configs) if c["meta"]["frame"] == frame.name]
        failing: dict[str, set[str]] = {}
        gx_parts: dict[tuple[str, str | None], set[str]] = {}
        for failure in validation.failures:
            if failure.frame == frame.name:
                failing.setdefault(failure.rule_id, set()).add(failure.entity_id)
                gx_parts.setdefault((failure.rule_id, failure.part), set()).add(failure.entity_id)
        outcomes = frame_outcomes(planned, frame.data, failing)
        for entry in frame_result["results"]:
            config = entry["expectation_config"]
            outcome = outcomes[by_key[_key(config)]]
            assert len(outcome.evaluated) == _evaluated(entry["result"]), config
            assert (not outcome.unexpected) == entry["success"], config
            if not outcome.by_rule:
                assert len(outcome.unexpected) == entry["result"]["unexpected_count"], config
                part = config["meta"].get("part")
                parts_of_rule = [
                    c["meta"].get("part")
                    for _, c in planned
                    if c["meta"]["rule_id"] == outcome.rule_id
                ]
                if parts_of_rule.count(part) == 1:
                    assert set(outcome.unexpected) == gx_parts.get((outcome.rule_id, part), set())
            compared += 1
    assert compared == sum(len(r["results"]) for r in validation.results)


def _gx_statuses(family: str, frames: list[Frame], suite: Any, client: str) -> dict[str, str]:
    """Each rule's status for a client, from GX validating the client's rows alone."""
    alone = [
        Frame(f.name, f.entity_type, f.data[f.data["client_id"].astype(str) == client])
        for f in frames
    ]
    validation = validate_family(family, alone, suite)
    failed: set[str] = set()
    evaluated: set[str] = set()
    for frame_result in validation.results:
        for entry in frame_result["results"]:
            rule_id = entry["expectation_config"]["meta"]["rule_id"]
            if not entry["success"]:
                failed.add(rule_id)
            if _evaluated(entry["result"]):
                evaluated.add(rule_id)
    rule_ids = {c["meta"]["rule_id"] for c in _configs(suite)}
    return {
        rule_id: FAIL if rule_id in failed else PASS if rule_id in evaluated else NOT_APPLICABLE
        for rule_id in rule_ids
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_rule_outcomes_agree_with_gx_per_client(checked, family: str) -> None:
    frames, suite, validation = checked[family]
    outcomes = rule_outcomes(family, frames, _configs(suite), validation.failures, CLIENTS)
    for client in CLIENTS:
        ours = {rule_id: status for (rule_id, c), status in outcomes.items() if c == client}
        assert ours == _gx_statuses(family, frames, suite, client), client


def test_the_cases_the_records_set_up(checked) -> None:
    statuses: dict[tuple[str, str], str] = {}
    for family, (frames, suite, validation) in checked.items():
        statuses.update(
            rule_outcomes(family, frames, _configs(suite), validation.failures, CLIENTS)
        )
    assert statuses["REF-006", "CL-1"] == FAIL
    assert statuses["DOC-005", "CL-1"] == FAIL
    assert statuses["REF-001", "CL-1"] == PASS
    # CL-1's claims are all undenied: the appeal check skips every row.
    assert statuses["CLM-001", "CL-1"] == NOT_APPLICABLE
    # CL-2 has no activity: its only row is in elg_client (no policy: ELG-008 fails),
    # and no rule of any other frame applies to it.
    assert statuses["ELG-008", "CL-2"] == FAIL
    with_row = {
        str(c["meta"]["rule_id"])
        for frames, suite, _ in checked.values()
        for f in frames
        if (f.data["client_id"].astype(str) == "CL-2").any()
        for c in _configs(suite)
        if c["meta"]["frame"] == f.name
    }
    absent = {rule_id for rule_id, client in statuses if client == "CL-2"} - with_row
    assert len(absent) > 20
    assert {statuses[rule_id, "CL-2"] for rule_id in absent} == {NOT_APPLICABLE}
    # With no clients named, only clients with a row are keyed.
    frames, suite, validation = checked["REF"]
    default = rule_outcomes("REF", frames, _configs(suite), validation.failures)
    assert {client for _, client in default} == {"CL-1"}


def test_doc005_parts_fall_to_their_own_expectations(checked) -> None:
    frames, suite, validation = checked["DOC"]
    configs = _configs(suite)
    poe = next(f for f in frames if f.name == "doc_poe")
    planned = [(p, c) for p, c in enumerate(configs) if c["meta"]["frame"] == "doc_poe"]
    failing = {"DOC-005": {f.entity_id for f in validation.failures if f.rule_id == "DOC-005"}}
    outcomes = frame_outcomes(planned, poe.data, failing)
    failed_parts = {configs[p]["meta"].get("part") for p, o in outcomes.items() if o.unexpected}
    gx_parts = {f.part for f in validation.failures if f.rule_id == "DOC-005"}
    assert failed_parts == gx_parts
    assert {"frequency per week", "progression"} <= gx_parts
