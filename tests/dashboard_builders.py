"""A results store for the dashboard's tests: two practices, three audit dates, money,
staff, payers, deadlines and acceptances, small enough to count by hand."""

from __future__ import annotations

from datetime import date, timedelta

from metaudit.results import ResultsStore
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


def dashboard_store(url: str) -> ResultsStore:
    """PR-1 (Brookline) on D1..D3 (DOC-008 resolved on D3; DOC-009 accepted until D2,
    REA-003 until after D3), PR-2 (Dale) on D3 with two critical findings."""
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
    return store
