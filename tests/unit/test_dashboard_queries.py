"""The dashboard's figures from the results store: one query each, accepted findings out.

Every test runs on SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from dashboard_builders import D1, D2, D3, dashboard_store

from metaudit.results import ResultsStore
from metaudit.results.dashboard import PayerExposure, RuleCount, StaffCount


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ResultsStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = dashboard_store(url)
    yield opened
    opened.close()


def test_open_findings_by_severity_leave_out_the_accepted_while_accepted(store) -> None:
    days = store.open_by_severity("PR-1", D3)
    assert [(d.as_of, d.counts) for d in days] == [
        (D1, {"critical": 2, "warning": 0, "notice": 0}),
        (D2, {"critical": 2, "warning": 0, "notice": 0}),
        # DOC-009's acceptance lapsed after D2; DOC-008 resolved.
        (D3, {"critical": 1, "warning": 1, "notice": 0}),
    ]
    assert [d.as_of for d in store.open_by_severity("PR-1", D3, days=2)] == [D2, D3]
    assert [store.accepted_count("PR-1", day) for day in (D1, D2, D3)] == [1, 2, 1]
    assert store.latest_result_date("PR-1") == D3
    assert store.latest_result_date("PR-9") is None


def test_the_open_count_of_the_latest_date_is_the_digests(store) -> None:
    digest = store.digest("PR-1", D3)
    assert store.open_by_severity("PR-1", D3)[-1].total == len(digest.new) + len(digest.still_open)


def test_exposure_by_class_and_by_payer(store) -> None:
    assert store.exposure_by_class("PR-1", D3) == {
        "fix_before_billing": 1000,
        "in_flight": 500,
        "recoupment_risk": 0,
    }
    assert store.exposure_by_payer("PR-1", D3) == [
        PayerExposure("Acme", 1000, 1),
        PayerExposure("Beta", 500, 1),
    ]
    assert store.exposure_by_class("PR-2", D3)["recoupment_risk"] == 400
    assert store.exposure_by_payer("PR-2", D3) == [PayerExposure(None, 400, 2)]


def test_top_rules_due_this_week_and_staff(store) -> None:
    assert store.top_rules("PR-1", D3) == [
        RuleCount("REF-001", "critical", 1, 1000),
        RuleCount("DOC-009", "warning", 1, 500),
    ]
    due = store.due_this_week("PR-1", D3)
    assert due.findings == []  # REA-003 is due, but accepted
    assert [d.claim_id for d in due.filing_deadlines] == ["K1"]
    assert store.staff_documentation("PR-1", D3) == [StaffCount("ST-1", 1, {"DOC-009": 1})]
    # The session finding was accepted on D2: no staff counts then (and none attributed).
    assert store.staff_documentation("PR-1", D2) == []


def test_a_clients_findings_with_first_seen_resolved_and_acceptance(store) -> None:
    c1 = store.client_findings("PR-1", "C1")
    assert [(f.rule_id, f.first_seen, f.resolved_on) for f in c1] == [
        ("REF-001", D1, None),
        ("DOC-008", D1, D3),
    ]
    c2 = {f.rule_id: f for f in store.client_findings("PR-1", "C2")}
    assert c2["REA-003"].acceptance is not None
    assert c2["REA-003"].acceptance.until == (D3 + timedelta(days=30)).isoformat()
    assert c2["DOC-009"].acceptance is not None and c2["DOC-009"].acceptance.until == "2026-03-02"
    assert c2["DOC-009"].message == "S2 breaks DOC-009."
    assert store.client_findings("PR-2", "C1") == []


def test_the_network_ranking_by_open_critical_then_exposure(store) -> None:
    ranking = store.practice_ranking()
    assert [(r.practice_id, r.name, r.open_critical, r.open, r.exposure) for r in ranking] == [
        ("PR-2", "Dale", 2, 2, 400),
        ("PR-1", "Brookline", 1, 2, 1500),
    ]
    assert [r.practice_id for r in store.practice_ranking(["PR-1"])] == ["PR-1"]
    assert [r.practice_id for r in store.practice_ranking(by="exposure")] == ["PR-1", "PR-2"]
    with pytest.raises(ValueError, match="a ranking is by critical or exposure"):
        store.practice_ranking(by="name")
