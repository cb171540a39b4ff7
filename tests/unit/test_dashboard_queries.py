"""The dashboard's figures from the results store: one query each, accepted findings out.

Every test runs on SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from metaudit.results import ResultsStore
from metaudit.results.dashboard import PayerExposure, RuleCount, StaffCount
from metaudit.results.digest import FilingDeadline, FindingAttribution, FindingExposure
from metaudit.spec.findings import Finding

D1, D2, D3 = (date(2026, 3, 1) + timedelta(days=i) for i in range(3))
TODAY = D1


def finding(
    practice: str,
    rule_id: str,
    severity: str,
    day: date,
    entity: str,
    client: str,
    entity_type: str = "client",
    due: date | None = None,
) -> Finding:
    return Finding(
        as_of=day.isoformat(),
        practice_id=practice,
        rule_id=rule_id,
        severity=severity,
        entity_type=entity_type,
        entity_id=entity,
        client_id=client,
        message=f"{entity} breaks {rule_id}.",
        due_date=due.isoformat() if due else None,
    )


def ref(day: date, client: str = "C1", practice: str = "PR-1") -> Finding:
    return finding(practice, "REF-001", "critical", day, client, client)


def log_incomplete(day: date) -> Finding:
    return finding("PR-1", "DOC-008", "critical", day, "S1", "C1", "session")


def signed_late(day: date) -> Finding:
    return finding("PR-1", "DOC-009", "warning", day, "S2", "C2", "session")


def reassess(day: date) -> Finding:
    return finding("PR-1", "REA-003", "notice", day, "C2", "C2", due=D3 + timedelta(days=3))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ResultsStore]:
    """PR-1 on D1..D3 (DOC-008 resolved on D3; DOC-009 accepted until D2, REA-003 until
    after D3), PR-2 on D3 with two critical findings."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = ResultsStore.open(url)
    store.start_run("run-0", "dag", D1, [], ["PR-1", "PR-2"], {"PR-1": "Brookline", "PR-2": "Dale"})
    store.persist_practice("r1", D1, "PR-1", [ref(D1), log_incomplete(D1), signed_late(D1)])
    store.persist_practice(
        "r2", D2, "PR-1", [ref(D2), log_incomplete(D2), signed_late(D2), reassess(D2)]
    )
    on_d3 = [ref(D3), signed_late(D3), reassess(D3)]
    store.persist_practice(
        "r3",
        D3,
        "PR-1",
        on_d3,
        exposure={
            ref(D3).fingerprint: FindingExposure(lines=1, fix_before_billing=1000, claim_id="K1"),
            signed_late(D3).fingerprint: FindingExposure(lines=2, in_flight=500),
        },
        attribution={
            ref(D3).fingerprint: FindingAttribution(payer="Acme"),
            signed_late(D3).fingerprint: FindingAttribution(staff_id="ST-1", payer="Beta"),
        },
        deadlines=[
            FilingDeadline(
                "K1", "C1", "2026-01-10", 90, (D3 + timedelta(days=2)).isoformat(), 1000
            ),
            FilingDeadline("K2", "C1", "2026-02-10", 90, (D3 + timedelta(days=20)).isoformat(), 50),
        ],
    )
    theirs = [ref(D3, "C9", "PR-2"), ref(D3, "C8", "PR-2")]
    store.persist_practice(
        "r3",
        D3,
        "PR-2",
        theirs,
        exposure={f.fingerprint: FindingExposure(lines=1, recoupment_risk=200) for f in theirs},
    )
    for item, until in ((signed_late(D1), D2), (reassess(D2), D3 + timedelta(days=30))):
        store.accept_finding(
            "PR-1",
            item.fingerprint,
            user_name="lead",
            reason="payer letter",
            until=until,
            today=TODAY,
        )
    yield store
    store.close()


def test_open_findings_by_severity_leave_out_the_accepted_while_accepted(store) -> None:
    days = store.open_by_severity("PR-1", D3)
    assert [(d.as_of, d.counts) for d in days] == [
        (D1, {"critical": 2, "warning": 0, "notice": 0}),
        (D2, {"critical": 2, "warning": 0, "notice": 0}),
        # DOC-009's acceptance lapsed after D2; DOC-008 resolved.
        (D3, {"critical": 1, "warning": 1, "notice": 0}),
    ]
    assert [d.as_of for d in store.open_by_severity("PR-1", D3, days=2)] == [D2, D3]
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
