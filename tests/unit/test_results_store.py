"""The results store: migrations, reruns that replace, history, digest, run status, alerts.

Every test runs on SQLite and on the real PostgreSQL server (production's database).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from metaudit.results import ResultsStore, default_url, migrate, session
from metaudit.results.models import VERSION_TABLE, Base
from metaudit.spec.findings import Finding

D1, D2, D3, D4 = (date(2026, 3, 1) + timedelta(days=i) for i in range(4))
PRACTICE = "PR-1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[ResultsStore]:
    opened = ResultsStore.open(store_url)
    opened.start_run("run-0", "met_compliance_nightly", D1, [], [PRACTICE], {PRACTICE: "Brookline"})
    yield opened
    opened.close()


def finding(
    rule_id: str,
    entity_id: str,
    day: date,
    *,
    practice_id: str | None = PRACTICE,
    severity: str = "critical",
    message: str | None = None,
    due_date: str | None = None,
) -> Finding:
    return Finding(
        as_of=day.isoformat(),
        practice_id=practice_id,
        rule_id=rule_id,
        severity=severity,
        entity_type="client",
        entity_id=entity_id,
        client_id=entity_id,
        message=message or f"Client {entity_id} breaks {rule_id}.",
        due_date=due_date,
    )


def persist(
    store: ResultsStore, day: date, findings: list[Finding], practice_id: str | None = PRACTICE
):
    return store.persist_practice(f"run-{day}", day, practice_id, findings)


def history(store: ResultsStore, practice_id: str | None = PRACTICE) -> dict[str, tuple]:
    return {
        row["entity_id"]: (row["first_seen"], row["last_seen"], row["resolved_on"])
        for row in store.history(practice_id)
    }


# -- schema ----------------------------------------------------------------------------------


def test_migrations_build_exactly_the_models(store: ResultsStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
        tables = set(sa.inspect(conn).get_table_names())
    assert set(Base.metadata.tables) | {VERSION_TABLE} == tables


def test_migrating_again_changes_nothing(store: ResultsStore) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1)])
    assert migrate(store.engine) == "0006"
    assert len(store.findings(D1, PRACTICE)) == 1


def test_the_store_keeps_its_own_version_table_beside_another_alembic_project(
    store_url: str,
) -> None:
    """The store may share a database with Airflow's metadata (its own alembic_version)."""
    engine = sa.create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('airflow-head')"))
    engine.dispose()
    store = ResultsStore.open(store_url)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
            "airflow-head"
        )
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == "0006"
    store.close()


def test_a_process_migrates_a_store_once_and_a_new_store_on_first_open(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a store again (every task, every web request) does not run Alembic again;
    a store the process has not opened yet is migrated on its first open."""
    from metaudit.results import store as store_module

    migrated: list[str] = []
    real_migrate = store_module.migrate

    def counting(engine: sa.Engine) -> str:
        migrated.append(str(engine.url.database))
        return real_migrate(engine)

    monkeypatch.setattr(store_module, "migrate", counting)
    first, second = tmp_path / "first.sqlite", tmp_path / "second.sqlite"
    for path in (first, first, second, first, second):
        with session(f"sqlite:///{path}") as opened:
            assert opened.practice_runs() == []
    ResultsStore.open(f"sqlite:///{first}").close()
    assert migrated == [str(first), str(second)]
    # migrate() called by name still migrates (and finds nothing to do).
    with session(f"sqlite:///{first}") as opened:
        assert store_module.migrate(opened.engine) == "0006"
    assert migrated == [str(first), str(second), str(first)]


def test_a_store_deleted_and_made_again_is_migrated_again(tmp_path) -> None:
    path = tmp_path / "results.sqlite"
    with session(f"sqlite:///{path}") as opened:
        opened.start_run("run-0", "met_compliance_nightly", D1, [], [PRACTICE])
    path.unlink()
    with session(f"sqlite:///{path}") as opened:
        assert opened.run("run-0") is None


def test_a_session_closes_its_store_and_keeps_the_writes_before_an_error(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    with pytest.raises(RuntimeError), session(url) as opened:
        opened.start_run("run-0", "met_compliance_nightly", D1, [], [PRACTICE])
        raise RuntimeError("a step after the write failed")
    assert opened.engine.pool.checkedout() == 0
    with session(url) as again:
        assert again.run("run-0") is not None


def test_default_url_is_a_sqlite_file_in_the_data_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("METAUDIT_DATA_DIR", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path.resolve() / 'results.sqlite'}"


# -- reruns ----------------------------------------------------------------------------------


def test_rerun_of_a_date_replaces_its_findings_and_never_duplicates(store: ResultsStore) -> None:
    first = persist(store, D1, [finding("REF-001", "C1", D1), finding("REF-002", "C2", D1)])
    assert (first.inserted, first.updated, first.deleted) == (2, 0, 0)
    again = persist(
        store,
        D1,
        [
            finding("REF-001", "C1", D1, message="Client C1 lacks a referral, reworded."),
            finding("REF-003", "C3", D1),
        ],
    )
    assert (again.inserted, again.updated, again.deleted) == (1, 1, 1)
    stored = store.findings(D1, PRACTICE)
    assert [f.fingerprint for f in stored] == ["REF-001|client|C1", "REF-003|client|C3"]
    assert stored[0].message == "Client C1 lacks a referral, reworded."
    rows = store.practice_runs(D1)
    assert [(r["practice_id"], r["status"], r["findings"]) for r in rows] == [
        (PRACTICE, "success", 2)
    ]


def test_identical_rerun_leaves_every_results_table_unchanged(store: ResultsStore) -> None:
    day1 = [finding("REF-001", "C1", D1), finding("DOC-001", "C2", D1, severity="warning")]
    persist(store, D1, day1)
    persist(store, D2, [finding("REF-001", "C1", D2)])
    volatile = ("run_id", "timings", "started_at", "finished_at")
    before = {
        name: store.table_contents(name, exclude=volatile if name == "practice_runs" else ())
        for name in ("findings", "finding_history", "practice_runs", "practices")
    }
    result = persist(store, D1, day1)
    assert (result.inserted, result.updated, result.deleted) == (0, 0, 0)
    after = {
        name: store.table_contents(name, exclude=volatile if name == "practice_runs" else ())
        for name in before
    }
    assert after == before


def test_findings_without_a_practice_are_kept_apart_under_practice_null(
    store: ResultsStore,
) -> None:
    orphan = finding("DQ-002", "sessions:S-9", D1, practice_id=None, severity="warning")
    persist(store, D1, [finding("REF-001", "C1", D1)])
    persist(store, D1, [orphan], practice_id=None)
    persist(store, D1, [orphan], practice_id=None)  # a rerun does not duplicate them
    assert store.findings(D1, None) == [orphan]
    assert [f.rule_id for f in store.findings(D1, PRACTICE)] == ["REF-001"]
    assert history(store, None) == {"sessions:S-9": (D1, D1, None)}


def test_a_finding_of_another_practice_is_refused(store: ResultsStore) -> None:
    with pytest.raises(ValueError, match="PR-2"):
        persist(store, D1, [finding("REF-001", "C1", D1, practice_id="PR-2")])
    assert store.findings(D1, PRACTICE) == []


# -- history ---------------------------------------------------------------------------------


def test_history_tracks_first_seen_last_seen_and_resolved_on(store: ResultsStore) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1), finding("REF-002", "C2", D1)])
    persist(store, D2, [finding("REF-001", "C1", D2), finding("REF-003", "C3", D2)])
    persist(store, D3, [finding("REF-003", "C3", D3)])
    assert history(store) == {
        "C1": (D1, D2, D3),  # found D1 and D2, gone on D3
        "C2": (D1, D1, D2),
        "C3": (D2, D3, None),  # still open
    }


def test_a_finding_that_comes_back_starts_a_new_stretch(store: ResultsStore) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1)])
    persist(store, D2, [])
    persist(store, D3, [finding("REF-001", "C1", D3)])
    assert history(store) == {"C1": (D3, D3, None)}
    persist(store, D4, [])
    assert history(store) == {"C1": (D3, D3, D4)}


def test_rerun_of_an_earlier_date_recomputes_the_history(store: ResultsStore) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1)])
    persist(store, D2, [finding("REF-001", "C1", D2)])
    persist(store, D3, [finding("REF-001", "C1", D3)])
    assert history(store) == {"C1": (D1, D3, None)}
    # The source was fixed and D2 rerun: C1 now has a gap on D2.
    persist(store, D2, [finding("REF-002", "C2", D2)])
    assert history(store) == {"C1": (D3, D3, None), "C2": (D2, D2, D3)}
    # A date inserted before everything else counts too.
    persist(store, D1 - timedelta(days=1), [finding("REF-002", "C2", D1 - timedelta(days=1))])
    assert history(store)["C2"] == (D2, D2, D3)


def test_a_failed_rerun_keeps_the_dates_results(store: ResultsStore) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1)])
    store.fail_practice("run-again", D1, PRACTICE, "PartitionError: damaged")
    (row,) = store.practice_runs(D1)
    assert (row["status"], row["has_results"], row["run_id"]) == ("failed", True, "run-again")
    assert row["error"] == "PartitionError: damaged"
    assert len(store.findings(D1, PRACTICE)) == 1
    assert store.digest(PRACTICE, D1).new  # the date still counts as a date with results


# -- digest ----------------------------------------------------------------------------------


def test_digest_splits_new_still_open_resolved_and_due_soon(store: ResultsStore) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1), finding("REF-002", "C2", D1)])
    persist(
        store,
        D2,
        [
            finding("REF-001", "C1", D2),
            finding(
                "REA-002",
                "C4",
                D2,
                severity="notice",
                due_date=(D2 + timedelta(days=7)).isoformat(),
            ),
            finding(
                "REA-002",
                "C5",
                D2,
                severity="notice",
                due_date=(D2 + timedelta(days=8)).isoformat(),
            ),
        ],
    )
    digest = store.digest(PRACTICE, D2)
    assert digest.practice_name == "Brookline" and digest.as_of == D2.isoformat()
    assert [(t.finding.entity_id, t.first_seen) for t in digest.still_open] == [
        ("C1", "2026-03-01")
    ]
    assert [t.finding.entity_id for t in digest.new] == ["C4", "C5"]
    assert all(t.first_seen == D2.isoformat() for t in digest.new)
    assert [(t.finding.entity_id, t.resolved_on) for t in digest.resolved] == [("C2", "2026-03-02")]
    assert [t.finding.entity_id for t in digest.due_soon] == ["C4"]
    assert [
        t.finding.entity_id for t in store.digest(PRACTICE, D2, due_within_days=8).due_soon
    ] == [
        "C4",
        "C5",
    ]


def test_digest_of_the_first_date_has_only_new_findings(store: ResultsStore) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1)])
    digest = store.digest(PRACTICE, D1)
    assert [t.finding.entity_id for t in digest.new] == ["C1"]
    assert digest.still_open == [] and digest.resolved == []


def test_digest_of_an_earlier_date_ignores_later_dates(store: ResultsStore) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1)])
    persist(store, D2, [finding("REF-001", "C1", D2), finding("REF-002", "C2", D2)])
    persist(store, D3, [])
    digest = store.digest(PRACTICE, D2)
    assert [t.finding.entity_id for t in digest.still_open] == ["C1"]
    assert [t.finding.entity_id for t in digest.new] == ["C2"]
    assert digest.resolved == []


def test_digest_compares_with_the_previous_date_with_results_not_the_day_before(
    store: ResultsStore,
) -> None:
    persist(store, D1, [finding("REF-001", "C1", D1)])
    store.fail_practice("run-d2", D2, PRACTICE, "SourceUnavailableError: down")
    persist(store, D3, [finding("REF-001", "C1", D3)])
    digest = store.digest(PRACTICE, D3)
    assert [(t.finding.entity_id, t.first_seen) for t in digest.still_open] == [
        ("C1", "2026-03-01")
    ]


def test_digest_of_a_date_without_results_is_refused(store: ResultsStore) -> None:
    persist(store, D1, [])
    with pytest.raises(LookupError, match="2026-03-02"):
        store.digest(PRACTICE, D2)


# -- runs and alerts -------------------------------------------------------------------------


def test_run_outcome_names_the_practices_that_did_not_finish(store: ResultsStore) -> None:
    store.start_run("run-1", "met", D1, [], ["PR-1", "PR-2", "PR-3"], {"PR-2": "Newton"})
    store.persist_practice("run-1", D1, "PR-1", [])
    store.fail_practice("run-1", D1, "PR-2", "ValueError: boom")
    outcome = store.run_outcome("run-1")
    assert outcome.succeeded == ["PR-1"] and outcome.failed == ["PR-2", "PR-3"]
    store.finish_run("run-1", outcome.failed, unattributed=0)
    run = store.run("run-1")
    assert run is not None
    assert (run["status"], run["failed_practices"]) == ("failed", ["PR-2", "PR-3"])


def test_a_success_left_by_an_earlier_try_of_the_same_run_does_not_count(
    store: ResultsStore,
) -> None:
    store.start_run("run-1", "met", D1, [], ["PR-1"])
    store.persist_practice("run-1", D1, "PR-1", [])
    assert store.run_outcome("run-1").failed == []
    store.start_run("run-1", "met", D1, [], ["PR-1"])  # Airflow cleared and reran the run
    assert store.run_outcome("run-1").failed == ["PR-1"]


def test_alerts_are_recorded_for_the_admins(store: ResultsStore) -> None:
    alert_id = store.record_alert(
        dag_id="met_compliance_nightly",
        run_id="run-0",
        task_id="practice.validate",
        map_index=1,
        error="PartitionError: damaged",
        practice_id=PRACTICE,
        as_of=D1,
    )
    (alert,) = store.alerts("run-0")
    assert alert["id"] == alert_id and alert["practice_id"] == PRACTICE
    assert alert["notified_at"] is None and alert["as_of"] == D1


# -- exposure --------------------------------------------------------------------------------


def test_exposure_is_stored_beside_the_findings_and_replaced_with_them(
    store: ResultsStore,
) -> None:
    from metaudit.results.digest import FindingExposure

    day1 = [finding("REF-001", "C1", D1), finding("REF-002", "C2", D1)]
    money = {
        day1[0].fingerprint: FindingExposure(2, 15000, 0, 4999, "CLM-1"),
        day1[1].fingerprint: FindingExposure(1, 0, 2**40, 0),
    }
    store.persist_practice("run-1", D1, PRACTICE, day1, exposure=money)
    assert store.exposure(D1, PRACTICE) == money
    digest = store.digest(PRACTICE, D1)
    assert digest.exposure_of(day1[0]).total == 19999
    assert digest.exposure_of(day1[1]).in_flight == 2**40
    before = store.table_contents("finding_exposure")
    store.persist_practice("run-1", D1, PRACTICE, day1, exposure=money)
    assert store.table_contents("finding_exposure") == before  # untouched, ids too
    # A rerun without the second finding, and a changed amount on the first.
    changed = {day1[0].fingerprint: FindingExposure(2, 100, 0, 0, "CLM-1")}
    store.persist_practice("run-2", D1, PRACTICE, day1[:1], exposure=changed)
    assert store.exposure(D1, PRACTICE) == changed
    # A rerun without exposure stores none (no stale money).
    store.persist_practice("run-3", D1, PRACTICE, day1[:1])
    assert store.exposure(D1, PRACTICE) == {}
    assert store.digest(PRACTICE, D1).exposure_of(day1[0]).total == 0


def test_exposure_of_a_finding_not_stored_is_refused(store: ResultsStore) -> None:
    from metaudit.results.digest import FindingExposure

    with pytest.raises(ValueError, match="not among the findings"):
        store.persist_practice(
            "run-1",
            D1,
            PRACTICE,
            [finding("REF-001", "C1", D1)],
            exposure={"REF-009|client|C9": FindingExposure(1, 1, 0, 0)},
        )
    assert store.findings(D1, PRACTICE) == []


def test_filing_deadlines_are_stored_and_the_digest_carries_those_of_the_week(
    store: ResultsStore,
) -> None:
    from metaudit.results.digest import FilingDeadline

    def due(claim: str, day: date) -> FilingDeadline:
        return FilingDeadline(claim, "C1", "2026-01-01", 90, day.isoformat(), 15000)

    week = [due("CLM-2", D1 + timedelta(days=7)), due("CLM-1", D1), due("CLM-3", D1)]
    later = due("CLM-9", D1 + timedelta(days=8))
    past = due("CLM-0", D1 - timedelta(days=1))
    findings = [finding("REF-001", "C1", D1)]
    store.persist_practice("run-1", D1, PRACTICE, findings, deadlines=[*week, later, past])
    assert len(store.filing_deadlines(D1, PRACTICE)) == 5
    # Within the week (the as-of date and the 7 days after it), soonest first, then by claim.
    assert store.digest(PRACTICE, D1).filing_deadlines == [week[1], week[2], week[0]]
    before = store.table_contents("filing_deadlines")
    store.persist_practice("run-1", D1, PRACTICE, findings, deadlines=[*week, later, past])
    assert store.table_contents("filing_deadlines") == before
    # A rerun replaces the date's deadlines: a claim submitted since has none.
    store.persist_practice("run-2", D1, PRACTICE, findings, deadlines=[week[0]])
    assert store.digest(PRACTICE, D1).filing_deadlines == [week[0]]
    store.persist_practice("run-3", D1, PRACTICE, findings)
    assert store.filing_deadlines(D1, PRACTICE) == []
