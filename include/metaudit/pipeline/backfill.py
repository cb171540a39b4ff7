"""Recording the audit history of earlier dates (``metaudit backfill``).

A practice that joins with months of records has no history in the results store:
its dashboard's 90-day trend starts on its first night, and its first email finds
every finding "new". The backfill audits earlier as-of dates of today's source and
records each date as a run of its own, through the nightly run's own stages
(:func:`metaudit.pipeline.stages.plan_run`, extract's partitioning
:func:`~metaudit.pipeline.stages.write_snapshot`, the group check of
:func:`metaudit.pipeline.chunk.validate_practices`, ``persist_practice`` and
``finish_run``): the same findings, exposure, filing deadlines, staff and payer,
status row and findings history as a nightly run of that date would store, so the
dashboard and the next email treat the dates like any audit date. It sends no
email and builds no packets (those belong to the night they were due). The source
is read and typed once for all the dates (extract's streaming pass; the typing does
not depend on the date, only its findings are stamped with it).

The findings history is recomputed from every stored date on each persist, so the
dates may be recorded in any order. A date the store already has results for is
left alone unless ``replace``: the nightly run's results of that date were judged
on the records as they stood that night, which the source may no longer hold.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from metaudit.errors import MetAuditError, SettingsError
from metaudit.pipeline import chunk, stages
from metaudit.pipeline.alerts import describe_error

if TYPE_CHECKING:
    from metaudit.source.quality import TypedSource

log = logging.getLogger(__name__)

# The runs table's dag_id of a backfilled date (the nightly's is config.DAG_ID).
BACKFILL_DAG_ID = "metaudit_backfill"
# More dates than this is a mistyped range (a year of nightly dates is 366), refused
# before anything runs: each date costs a read of the whole source and a check.
MAX_DATES = 400


class BackfillFailedError(MetAuditError):
    """Some practices of some backfilled dates failed; the others were recorded."""


@dataclass(frozen=True)
class BackfilledDate:
    """What the backfill did for one as-of date."""

    as_of: date
    run_id: str
    # Practice id -> findings stored (the practices audited this time).
    findings: dict[str, int] = field(default_factory=dict)
    # Practices left alone: the store had results of the date already.
    skipped: list[str] = field(default_factory=list)
    # Practice id -> "stage (error type)" of the practices that failed.
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def backfill_dates(first: date, last: date, every: int) -> list[date]:
    """The as-of dates from ``first`` to ``last``, ``every`` days apart, counted back from
    ``last`` (so the latest is ``last``, in step with the nightly dates after it);
    oldest first."""
    if every < 1:
        raise SettingsError(f"--every must be a number of days, 1 or more, not {every}")
    if first > last:
        raise SettingsError(
            f"--from {first.isoformat()} is after --to {last.isoformat()}: "
            "give the earliest date first"
        )
    count = (last - first).days // every + 1
    if count > MAX_DATES:
        raise SettingsError(
            f"{count} dates from {first.isoformat()} to {last.isoformat()} every {every} "
            f"day(s) is more than {MAX_DATES}: narrow the range or take a larger --every"
        )
    return [last - timedelta(days=every * n) for n in reversed(range(count))]


def backfill_run_id(as_of: date) -> str:
    """The run id of a backfilled date: one per date, so a rerun replaces its run."""
    return f"backfill__{as_of.isoformat()}"


def backfill(
    source: str,
    store_url: str,
    dates: Sequence[date],
    *,
    wanted: Sequence[str] | None = None,
    replace: bool = False,
    config: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BackfilledDate]:
    """Audit each as-of date of ``dates`` (in the order given) for the ``wanted``
    practices (default every practice of the source) and record it in the results
    store as the nightly run would, without email or packets (see the module's
    docstring). Practices the store has results of a date for are skipped unless
    ``replace``. Raises :class:`BackfillFailedError` at the end when some practice of
    some date failed (the others are recorded); a source that cannot be read or a
    broken contract stops at once."""
    import shutil
    import uuid

    from metaudit.check.engine import stream_typed
    from metaudit.config import practices_per_task
    from metaudit.paths import data_dir
    from metaudit.spec.settings import Settings

    say = progress or (lambda message: None)
    practices = stages.list_practices(source, wanted)
    todo = {day: _todo(store_url, day, practices, replace) for day in dates}
    if not any(todo.values()):
        say("every date is recorded already (--replace audits them again)")
        return [
            BackfilledDate(day, backfill_run_id(day), skipped=sorted(practices)) for day in dates
        ]
    done: list[BackfilledDate] = []
    # The source is read and typed once for every date (the nightly extract's streaming
    # pass; the typing judges every row whatever the date), then partitioned per date.
    # The spool holds health records: a private folder beside the partitions.
    spool = data_dir() / "snapshots" / f".spool-backfill-{uuid.uuid4().hex[:8]}"
    try:
        read: dict[str, float] = {}
        timeout = Settings.load(config).statement_timeout_s
        streamed = stream_typed(source, max(dates), read, timeout, folder=spool)
        say(f"source read and typed in {sum(read.values()):.1f} s")
        for day in dates:
            began = time.perf_counter()
            run_id = backfill_run_id(day)
            skipped = sorted(set(practices) - set(todo[day]))
            if not todo[day]:
                say(f"{day.isoformat()}: already recorded, skipped (--replace audits it again)")
                done.append(BackfilledDate(day, run_id, skipped=skipped))
                continue
            plan = stages.plan_run(
                source,
                store_url,
                run_id=run_id,
                dag_id=BACKFILL_DAG_ID,
                as_of=day,
                wanted=todo[day],
            )
            work = stages.write_snapshot(
                streamed,
                day,
                plan["practice_ids"],
                # The shared read's cost goes to the first date's run.
                dict(read) if not done else {},
                store_url=store_url,
                run_id=run_id,
            )
            findings: dict[str, int] = {}
            failed: dict[str, str] = {}
            # Groups as the nightly's tasks take them: memory follows a group.
            for group in chunk.chunk_work(work, practices_per_task(), len(work) or 1):
                found, broken = _audit_group(store_url, run_id, group, config)
                findings.update(found)
                failed.update(broken)
            # A failed practice is named in ``failed``; the run is marked failed in the store.
            with contextlib.suppress(stages.PracticesFailedError):
                stages.finish_run(store_url, run_id, extracted_ok=True)
            item = BackfilledDate(
                day, run_id, findings, skipped, failed, seconds=time.perf_counter() - began
            )
            done.append(item)
            say(_described(item))
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    failures = [(item.as_of, p, why) for item in done for p, why in sorted(item.failed.items())]
    if failures:
        raise BackfillFailedError(
            f"{len(failures)} practice-date(s) failed, the others were recorded: "
            + "; ".join(f"{day.isoformat()} {p} at {why}" for day, p, why in failures)
        )
    return done


def _todo(store_url: str, day: date, practices: Sequence[str], replace: bool) -> list[str]:
    """The practices to audit on the date: all with ``replace``, else those whose results
    of the date the store does not hold."""
    from metaudit.results import session

    if replace:
        return list(practices)
    with session(store_url) as store:
        recorded = {
            row["practice_id"]
            for row in store.practice_runs(day)
            if row["has_results"] and row["practice_id"] is not None
        }
    return [p for p in practices if p not in recorded]


def _audit_group(
    store_url: str, run_id: str, group: dict[str, object], config: str | None
) -> tuple[dict[str, int], dict[str, str]]:
    """Check one group of practices together and persist each; returns the findings
    stored per practice and the failures (each also marked in the practice's status
    row of the date, as the nightly's are)."""
    from metaudit.results import session
    from metaudit.source.snapshot import PartitionError, read_partition

    as_of = str(group["as_of"])
    items = group["practices"]
    assert isinstance(items, list)
    parts: dict[str, TypedSource] = {}
    partitions: dict[str, str] = {}
    failures: list[chunk.PracticeFailure] = []
    for item in items:
        practice_id = str(item["practice_id"])
        partitions[practice_id] = str(item["partition"])
        try:
            parts[practice_id] = read_partition(Path(item["partition"]), practice_id)
        except PartitionError as exc:
            failures.append(chunk.PracticeFailure(practice_id, chunk.VALIDATE, exc))
    validated, failed = chunk.validate_practices(parts, partitions, as_of, config=config)
    failures.extend(failed)
    parts.clear()
    findings: dict[str, int] = {}
    for practice_id, work in validated.items():
        try:
            persisted = stages.persist_practice(store_url, run_id, work)
        except Exception as exc:
            log.exception("practice %s as of %s: persist failed", practice_id, as_of)
            failures.append(chunk.PracticeFailure(practice_id, chunk.PERSIST, exc))
            continue
        findings[practice_id] = int(persisted["findings"])
    if failures:
        with session(store_url) as store:
            for failure in failures:
                store.fail_practice(
                    run_id,
                    date.fromisoformat(as_of),
                    failure.practice_id,
                    describe_error(failure.error),
                )
    # The type only, as the nightly's run error: a foreign error's message may quote a
    # record (the status row keeps the whole, as the nightly's does).
    return findings, {f.practice_id: f"{f.stage} ({type(f.error).__name__})" for f in failures}


def _described(item: BackfilledDate) -> str:
    counts = ", ".join(f"{p} {n}" for p, n in sorted(item.findings.items()))
    line = (
        f"{item.as_of.isoformat()}: recorded in {item.seconds:.1f} s; findings {counts or 'none'}"
    )
    if item.skipped:
        line += f"; already recorded, skipped: {', '.join(item.skipped)}"
    if item.failed:
        line += f"; FAILED: {', '.join(sorted(item.failed))}"
    return line
