"""Accepted findings: the store's acceptances, their lapse and withdrawal, the append-only
trail, and the digest (hence the email's counts) without them.

Every store test runs on SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from metaudit.results import ResultsStore
from metaudit.results.acceptances import (
    ACCEPTED,
    REASON_LENGTH,
    WITHDRAWN,
    AcceptanceError,
    UnknownFindingError,
)
from metaudit.spec.findings import Finding

D1, D2, D3 = (date(2026, 3, 1) + timedelta(days=i) for i in range(3))
TODAY = D1
PRACTICE = "PR-1"
REASON = "Payer ACME written exception 2026-17 for this plan of care"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ResultsStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = ResultsStore.open(url)
    opened.start_run("run-0", "met_compliance_nightly", D1, [], [PRACTICE], {PRACTICE: "Brookline"})
    yield opened
    opened.close()


def finding(rule_id: str, client: str, day: date, severity: str = "critical") -> Finding:
    return Finding(
        as_of=day.isoformat(),
        practice_id=PRACTICE,
        rule_id=rule_id,
        severity=severity,
        entity_type="client",
        entity_id=client,
        client_id=client,
        message=f"Client {client} breaks {rule_id}.",
    )


def persist(store: ResultsStore, day: date, *findings: Finding) -> None:
    store.persist_practice(f"run-{day}", day, PRACTICE, list(findings))


@pytest.fixture
def two_days(store: ResultsStore) -> tuple[str, str]:
    """C1 (REF-001) and C2 (DOC-009) found on D1 and D2."""
    for day in (D1, D2):
        persist(store, day, finding("REF-001", "C1", day), finding("DOC-009", "C2", day, "warning"))
    return finding("REF-001", "C1", D1).fingerprint, finding("DOC-009", "C2", D1).fingerprint


def test_an_acceptance_is_in_force_up_to_its_date_and_lapses_after(
    store: ResultsStore, two_days: tuple[str, str]
) -> None:
    c1, _ = two_days
    made = store.accept_finding(
        PRACTICE, c1, user_name="lead", reason=f"  {REASON} ", until=D2, today=TODAY
    )
    assert (made.accepted_by, made.reason, made.until) == ("lead", REASON, D2.isoformat())
    assert store.acceptances(PRACTICE, D1).keys() == {c1}
    assert store.acceptances(PRACTICE, D2).keys() == {c1}
    assert store.acceptances(PRACTICE, D3) == {}  # lapsed
    assert store.acceptances(PRACTICE).keys() == {c1}  # recorded, not withdrawn


def test_the_digest_lists_an_accepted_finding_apart_until_it_lapses(
    store: ResultsStore, two_days: tuple[str, str]
) -> None:
    c1, c2 = two_days
    store.accept_finding(PRACTICE, c1, user_name="lead", reason=REASON, until=D2, today=TODAY)
    digest = store.digest(PRACTICE, D2)
    assert [t.finding.fingerprint for t in digest.still_open] == [c2]
    assert [t.finding.fingerprint for t in digest.accepted] == [c1]
    assert digest.acceptances[c1].reason == REASON
    # The first date too: the acceptance covers every audit date up to its until date.
    first = store.digest(PRACTICE, D1)
    assert [t.finding.fingerprint for t in first.new] == [c2]
    # D3: the acceptance lapsed, so the finding is open (and counted) again.
    persist(store, D3, finding("REF-001", "C1", D3), finding("DOC-009", "C2", D3, "warning"))
    later = store.digest(PRACTICE, D3)
    assert sorted(t.finding.fingerprint for t in later.still_open) == sorted([c1, c2])
    assert later.accepted == [] and later.acceptances == {}


def test_a_withdrawal_ends_the_acceptance_and_the_trail_keeps_both(
    store: ResultsStore, two_days: tuple[str, str]
) -> None:
    c1, _ = two_days
    store.accept_finding(PRACTICE, c1, user_name="lead", reason=REASON, until=D3, today=TODAY)
    store.accept_finding(PRACTICE, c1, user_name="lead2", reason="renewed", until=D3, today=TODAY)
    assert store.acceptances(PRACTICE, D2)[c1].accepted_by == "lead2"
    store.withdraw_acceptance(PRACTICE, c1, user_name="dana", reason="exception revoked")
    assert store.acceptances(PRACTICE) == {}
    assert [t.finding.fingerprint for t in store.digest(PRACTICE, D2).accepted] == []
    trail = store.acceptance_trail(PRACTICE, c1)
    assert [(e.action, e.user_name, e.reason, e.until) for e in trail] == [
        (ACCEPTED, "lead", REASON, D3),
        (ACCEPTED, "lead2", "renewed", D3),
        (WITHDRAWN, "dana", "exception revoked", None),
    ]
    with pytest.raises(AcceptanceError, match="no acceptance to withdraw"):
        store.withdraw_acceptance(PRACTICE, c1, user_name="dana")


def test_the_trail_is_append_only_across_accept_and_withdraw(
    store: ResultsStore, two_days: tuple[str, str]
) -> None:
    c1, c2 = two_days
    store.accept_finding(PRACTICE, c1, user_name="lead", reason=REASON, until=D3, today=TODAY)
    before = store.table_contents("finding_acceptances")
    store.accept_finding(PRACTICE, c2, user_name="lead", reason=REASON, until=D3, today=TODAY)
    store.withdraw_acceptance(PRACTICE, c1, user_name="lead")
    after = store.table_contents("finding_acceptances")
    assert set(before) <= set(after) and len(after) == len(before) + 2
    # A rerun of a date replaces the findings, never the trail.
    persist(store, D2, finding("DOC-009", "C2", D2, "warning"))
    assert store.table_contents("finding_acceptances") == after


@pytest.mark.parametrize(
    ("reason", "until", "message"),
    [
        ("   ", D2, "a reason is required"),
        ("x" * (REASON_LENGTH + 1), D2, f"at most {REASON_LENGTH} characters"),
        ("bad\x00byte", D2, "control characters"),
        (REASON, TODAY - timedelta(days=1), "is in the past"),
    ],
)
def test_bad_acceptances_are_refused_with_a_reason(
    store: ResultsStore, two_days: tuple[str, str], reason: str, until: date, message: str
) -> None:
    c1, _ = two_days
    with pytest.raises(AcceptanceError, match=message):
        store.accept_finding(
            PRACTICE, c1, user_name="lead", reason=reason, until=until, today=TODAY
        )
    assert store.acceptance_trail(PRACTICE) == []


def test_only_a_finding_of_the_practice_can_be_accepted(
    store: ResultsStore, two_days: tuple[str, str]
) -> None:
    c1, _ = two_days
    with pytest.raises(UnknownFindingError, match="has no finding"):
        store.accept_finding("PR-2", c1, user_name="lead", reason=REASON, until=D2, today=TODAY)
    with pytest.raises(UnknownFindingError):
        store.accept_finding(
            PRACTICE, "nope", user_name="lead", reason=REASON, until=D2, today=TODAY
        )
    with pytest.raises(UnknownFindingError):
        store.withdraw_acceptance(PRACTICE, "nope", user_name="lead")


def test_the_migration_creates_the_trail_table(store: ResultsStore) -> None:
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("finding_acceptances")}
    assert columns == {
        "id",
        "recorded_at",
        "practice_id",
        "fingerprint",
        "action",
        "user_name",
        "reason",
        "until",
    }


# -- the morning email ---------------------------------------------------------------------


def _email(store: ResultsStore, day: date):  # type: ignore[no-untyped-def]
    from metaudit.mail.content import build_email

    email = build_email(
        store.digest(PRACTICE, day),
        ["lead@example.org"],
        airflow_base_url=None,
        packets_base_url=None,
        sender="audit@example.org",
    )
    assert email is not None
    return email


def test_the_email_counts_without_the_accepted_finding_and_lists_it_without_the_reason(
    store: ResultsStore, two_days: tuple[str, str]
) -> None:
    from metaudit.mail.content import count_digest

    c1, _ = two_days
    before = count_digest(store.digest(PRACTICE, D2))
    assert (before.open, before.open_by_severity["critical"], before.accepted) == (2, 1, 0)
    secret = "Mrs Smith's diagnosis M54.5, see payer letter"
    store.accept_finding(PRACTICE, c1, user_name="lead", reason=secret, until=D2, today=TODAY)
    after = count_digest(store.digest(PRACTICE, D2))
    assert (after.open, after.open_by_severity["critical"], after.accepted) == (1, 0, 1)
    email = _email(store, D2)
    assert ": 0 new critical, 1 open," in email.subject
    for part in (email.html, email.text):
        assert "accepted" in part.lower() and "REF-001" in part and D2.isoformat() in part
        assert "Smith" not in part and "M54.5" not in part and "payer letter" not in part
    # Lapsed on D3: counted open again, no accepted block.
    persist(store, D3, finding("REF-001", "C1", D3), finding("DOC-009", "C2", D3, "warning"))
    lapsed = _email(store, D3)
    assert ": 0 new critical, 2 open," in lapsed.subject
    assert "accepted" not in lapsed.text.lower()
