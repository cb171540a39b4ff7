"""`metaudit backfill`: earlier as-of dates recorded in the results store as nightly runs.

A small demo network (two practices, every injected defect) is backfilled on three
weekly dates given out of order; the store must then hold each date as a run of
its own, the findings history computed from the per-date findings as if the dates
had come night after night, the dashboard's trend counting every date, and a rerun
must neither duplicate rows nor, without --replace, touch a date already recorded.
The demo summary's figures are checked against the store's, the dashboard page's
and the morning email's.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from builders import demo_source_fixture

from metaudit import paths
from metaudit.cli import main
from metaudit.demo import GenerationReport
from metaudit.demo.summary import demo_finding, practice_figures, write_summary
from metaudit.errors import SettingsError
from metaudit.mail.content import exposure_totals, money
from metaudit.pipeline import stages
from metaudit.pipeline.backfill import (
    BACKFILL_DAG_ID,
    MAX_DATES,
    backfill,
    backfill_dates,
    backfill_run_id,
)
from metaudit.results import ResultsStore
from metaudit.spec.settings import Settings
from metaudit.web.access import access_policy
from metaudit.web.catalog import PacketCatalog
from metaudit.web.context import WebContext
from metaudit.web.dashboard import board

AS_OF = date(2026, 3, 31)
WEEK = timedelta(days=7)
# Recorded out of order on purpose: the latest date first, then the earliest.
DATES = [AS_OF, AS_OF - 2 * WEEK, AS_OF - WEEK]
PRACTICES = ("PR0001", "PR0002")

demo = demo_source_fixture(as_of=AS_OF, sessions=400, practices=2)


@pytest.fixture(scope="module")
def backfilled(
    demo: GenerationReport, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("data")
    store_url = f"sqlite:///{data / 'results.sqlite'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METAUDIT_DATA_DIR", str(data))
        patch.delenv("METAUDIT_CONFIG", raising=False)
        done = backfill(str(demo.database), store_url, DATES)
        yield {"store_url": store_url, "data": data, "done": done, "source": str(demo.database)}


# -- the dates -------------------------------------------------------------------------------


def test_dates_count_back_from_to_every_few_days_oldest_first() -> None:
    assert backfill_dates(date(2026, 3, 1), date(2026, 3, 31), 7) == [
        date(2026, 3, 3),
        date(2026, 3, 10),
        date(2026, 3, 17),
        date(2026, 3, 24),
        date(2026, 3, 31),
    ]
    assert backfill_dates(AS_OF, AS_OF, 7) == [AS_OF]
    assert len(backfill_dates(date(2026, 1, 1), date(2026, 12, 31), 1)) == 365


@pytest.mark.parametrize(
    ("first", "last", "every", "message"),
    [
        (date(2026, 3, 31), date(2026, 3, 1), 7, "--from 2026-03-31 is after --to 2026-03-01"),
        (date(2026, 3, 1), date(2026, 3, 31), 0, "--every must be a number of days, 1 or more"),
        (date(2016, 3, 1), date(2026, 3, 31), 1, f"is more than {MAX_DATES}: narrow the range"),
    ],
)
def test_a_bad_range_is_refused_saying_why(first: date, last: date, every: int, message: str):
    with pytest.raises(SettingsError, match=message):
        backfill_dates(first, last, every)


def test_the_command_refuses_a_bad_range_before_opening_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "results.sqlite"
    code = main(
        [
            "backfill",
            *("--source", str(tmp_path / "missing.sqlite")),
            *("--from", "2026-03-31", "--to", "2026-03-01"),
            *("--store", f"sqlite:///{store}"),
        ]
    )
    assert code == 2
    assert (
        "metaudit backfill: --from 2026-03-31 is after --to 2026-03-01" in capsys.readouterr().err
    )
    assert not store.exists()


def test_the_command_names_a_bad_date() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["backfill", "--source", "x.sqlite", "--from", "31/03/2026", "--to", "2026-03-31"])
    assert exit_.value.code == 2


# -- what the store holds ----------------------------------------------------------------------


def test_each_date_is_a_run_of_its_own_with_every_practice_recorded(
    backfilled: dict[str, Any],
) -> None:
    store = ResultsStore(backfilled["store_url"])
    assert [item.as_of for item in backfilled["done"]] == DATES
    for day in DATES:
        run = store.run(backfill_run_id(day))
        assert run is not None
        assert (run["dag_id"], run["as_of"], run["status"]) == (BACKFILL_DAG_ID, day, "success")
        rows = {r["practice_id"]: r for r in store.practice_runs(day)}
        assert set(rows) == {*PRACTICES, None}
        for practice_id in PRACTICES:
            assert rows[practice_id]["status"] == "success" and rows[practice_id]["has_results"]
            stored = store.findings(day, practice_id)
            assert rows[practice_id]["findings"] == len(stored) > 0
            assert {f.as_of for f in stored} == {day.isoformat()}
            # Persist stored the money beside the findings, as the nightly does.
            assert set(store.exposure(day, practice_id)) == {f.fingerprint for f in stored}
    # Nothing was mailed and no packet built; the partitions (health records) are gone.
    assert not (backfilled["data"] / paths.OUTBOX_FOLDER).exists()
    assert not (backfilled["data"] / "packets").exists()
    assert not any((backfilled["data"] / "snapshots").glob("*/PR*"))


def _expected_history(store: ResultsStore, practice_id: str) -> dict[str, tuple]:
    """First seen, last seen and resolved on of every fingerprint, walking the stored
    per-date findings in date order (what night after night would have given)."""
    found = {day: {f.fingerprint for f in store.findings(day, practice_id)} for day in DATES}
    ordered = sorted(DATES)
    out: dict[str, tuple] = {}
    for fingerprint in set().union(*found.values()):
        seen = [day for day in ordered if fingerprint in found[day]]
        last = seen[-1]
        first = last
        # The latest unbroken stretch of audit dates that found it.
        for day in reversed(ordered[: ordered.index(last)]):
            if fingerprint not in found[day]:
                break
            first = day
        after = [day for day in ordered if day > last]
        out[fingerprint] = (first, last, after[0] if after else None)
    return out


def test_history_of_dates_recorded_out_of_order_is_that_of_their_order(
    backfilled: dict[str, Any],
) -> None:
    store = ResultsStore(backfilled["store_url"])
    changed = False
    for practice_id in PRACTICES:
        history = {
            row["fingerprint"]: (row["first_seen"], row["last_seen"], row["resolved_on"])
            for row in store.history(practice_id)
        }
        expected = _expected_history(store, practice_id)
        assert history == expected
        changed |= any(first != min(DATES) or resolved for first, _, resolved in expected.values())
    # The network's records change over the weeks: the history is not one date's copy.
    assert changed


def test_the_dashboard_trend_counts_every_backfilled_date(backfilled: dict[str, Any]) -> None:
    store = ResultsStore(backfilled["store_url"])
    for practice_id in PRACTICES:
        trend = store.open_by_severity(practice_id, AS_OF)
        assert [day.as_of for day in trend] == sorted(DATES)
        assert [day.total for day in trend] == [
            len(store.findings(day, practice_id)) for day in sorted(DATES)
        ]


def test_a_rerun_skips_recorded_dates_and_replace_does_not_duplicate(
    backfilled: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("METAUDIT_DATA_DIR", str(backfilled["data"]))
    store = ResultsStore(backfilled["store_url"])
    tables = ("findings", "finding_exposure", "finding_history", "practice_runs", "audit_runs")
    before = {name: store.table_contents(name, ("id",)) for name in tables}
    status = {r["practice_id"]: r["finished_at"] for r in store.practice_runs(AS_OF)}
    day = (AS_OF - WEEK).isoformat()
    args = ["backfill", "--source", backfilled["source"], "--from", day, "--to", day]
    args += ["--store", backfilled["store_url"]]

    assert main(args) == 0
    assert "every date is recorded already" in capsys.readouterr().err
    assert {r["practice_id"]: r["finished_at"] for r in store.practice_runs(AS_OF)} == status

    assert main([*args, "--replace", "--practice", "PR0002"]) == 0
    assert "recorded in" in capsys.readouterr().err
    after = {name: store.table_contents(name, ("id",)) for name in tables}
    assert {n: len(rows) for n, rows in after.items()} == {n: len(r) for n, r in before.items()}
    # The same records give the same findings: only timings and times moved.
    assert store.table_contents("findings", ("id",)) == before["findings"]
    assert store.table_contents("finding_history", ("id",)) == before["finding_history"]


def test_only_the_practices_a_date_lacks_are_audited(
    demo: GenerationReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METAUDIT_DATA_DIR", str(tmp_path))
    store_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    (first,) = backfill(str(demo.database), store_url, [AS_OF], wanted=["PR0001"])
    assert (first.findings.keys(), first.skipped) == ({"PR0001"}, [])
    store = ResultsStore(store_url)
    kept = store.table_contents("findings", ("id",))

    (second,) = backfill(str(demo.database), store_url, [AS_OF])
    assert (second.findings.keys(), second.skipped) == ({"PR0002"}, ["PR0001"])
    rows = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert rows["PR0001"]["has_results"] and rows["PR0002"]["has_results"]
    # PR0001's rows of the date are the first run's, untouched.
    pr0001 = [row for row in store.table_contents("findings", ("id",)) if "PR0001" in row]
    assert pr0001 == [row for row in kept if "PR0001" in row]
    with pytest.raises(SettingsError, match="practice_ids not in the source: PR9999"):
        backfill(str(demo.database), store_url, [AS_OF], wanted=["PR9999"])


def test_a_practice_that_fails_is_named_and_the_others_are_recorded(
    demo: GenerationReport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("METAUDIT_DATA_DIR", str(tmp_path))
    store_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    persist = stages.persist_practice

    def refuse_pr0002(url: str, run_id: str, validated: Any) -> Any:
        if validated["practice_id"] == "PR0002":
            raise OSError("disk full, record CL000001 quoted")
        return persist(url, run_id, validated)

    monkeypatch.setattr(stages, "persist_practice", refuse_pr0002)
    day = AS_OF.isoformat()
    args = ["backfill", "--source", str(demo.database), "--from", day, "--to", day]
    code = main([*args, "--store", store_url])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        "1 practice-date(s) failed, the others were recorded: 2026-03-31 PR0002 at persist" in err
    )
    # The error's type, not its message: a foreign message may quote a record.
    assert "(OSError)" in err and "CL000001" not in err
    store = ResultsStore(store_url)
    rows = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert rows["PR0001"]["status"] == "success" and store.findings(AS_OF, "PR0001")
    assert rows["PR0002"]["status"] == "failed" and not rows["PR0002"]["has_results"]
    run = store.run(backfill_run_id(AS_OF))
    assert run is not None and (run["status"], run["failed_practices"]) == ("failed", ["PR0002"])


# -- the demo's summary ------------------------------------------------------------------------


def test_the_demo_summary_shows_the_store_s_money_trend_and_accepted_finding(
    backfilled: dict[str, Any], demo: GenerationReport
) -> None:
    store = ResultsStore(backfilled["store_url"])
    fingerprint = demo_finding(store, "PR0001", AS_OF)
    assert fingerprint is not None
    # With an earlier date known: a finding the store has on both (a long-standing one).
    first = min(DATES)
    lasting = demo_finding(store, "PR0001", AS_OF, since=first)
    assert lasting in {f.fingerprint for f in store.findings(first, "PR0001")}
    assert lasting in {f.fingerprint for f in store.findings(AS_OF, "PR0001")}
    store.accept_finding(
        "PR0001",
        fingerprint,
        user_name="demo-lead",
        reason="Demo: payer written exception on file",
        until=AS_OF + timedelta(days=30),
        today=AS_OF,
    )
    out = io.StringIO()
    code = write_summary(
        backfilled["data"], AS_OF.isoformat(), Path(demo.database), backfilled["store_url"], out
    )
    text = out.getvalue()
    assert code == 0
    page = WebContext(
        policy=access_policy(Settings.from_dict({})),
        catalog=PacketCatalog(backfilled["data"] / "packets"),
        store=store,
        packet_key=None,
        clock=lambda: AS_OF,
    )
    for practice_id in PRACTICES:
        figures = practice_figures(store, practice_id, AS_OF)
        # What the dashboard page of the practice shows.
        shown = board(page, practice_id)
        assert (shown.as_of, shown.exposure_total, shown.by_class) == (
            AS_OF,
            figures.money_at_risk,
            figures.by_class,
        )
        assert [day.as_of for day in shown.history] == figures.audit_dates
        assert shown.accepted == len(figures.accepted)
        # The money the morning email counts (new and still open, from the digest).
        digest = store.digest(practice_id, AS_OF)
        assert figures.by_class == exposure_totals(digest)
        assert figures.money_at_risk == sum(store.exposure_by_class(practice_id, AS_OF).values())
        assert figures.money_at_risk > 0
        assert f"at risk : {money(figures.money_at_risk)} open exposure" in text
        assert figures.audit_dates == sorted(DATES)
        assert f"trend   : {len(DATES)} audit date(s) in the last 90 days" in text
        assert f"dashboard: /metaudit/dashboard?practice_id={practice_id}" in text
    accepted = practice_figures(store, "PR0001", AS_OF).accepted
    assert [item.fingerprint for item in accepted] == [fingerprint]
    assert store.accepted_count("PR0001", AS_OF) == 1
    assert f"by demo-lead until {(AS_OF + timedelta(days=30)).isoformat()} ({fingerprint})" in text
    assert "the morning email lists it as accepted" in text
    assert practice_figures(store, "PR0002", AS_OF).accepted == []
