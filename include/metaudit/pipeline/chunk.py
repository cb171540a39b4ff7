"""One task of the nightly run: a group of practices, audited together, each on its own.

Airflow costs seconds per task (scheduling, a task process, the Execution API)
and Great Expectations tens of milliseconds per expectation however few rows it
validates, so one task a practice and stage paid both four times a practice for
sub-second work. A task now takes a group of practices (:func:`chunk_practices`,
``METAUDIT_PRACTICES_PER_TASK``, ten by default; more when the network has more
practices than Airflow maps tasks):

1. each practice's partition is read (a damaged one fails that practice only);
2. the practices are checked together, once (:func:`validate_practices`), and each
   gets its own results folder, exactly as if checked alone: the same findings,
   exposure and deadlines, and its share of the GX results; should the joint
   check fail, each practice is checked alone, so one practice's records cannot
   fail the others;
3. then practice by practice: persist, notify and packets, each timed into the
   results store and the task log, a failure recorded against its practice and
   stage while the others go on.

The task fails after all its practices were tried: for good (naming the
practices and stages) when every failure is one a retry would not mend, else
with the first error a retry may mend, and Airflow tries the task again (every
stage is idempotent: the email is not sent twice, kept packets are not rebuilt).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaudit.errors import MetAuditError
from metaudit.lifetime import skip_final_collection
from metaudit.pipeline import stages
from metaudit.pipeline.alerts import describe_error, with_database_errors

if TYPE_CHECKING:
    from metaudit.check.engine import CheckResult
    from metaudit.check.frames import Frame
    from metaudit.check.view import AuditView
    from metaudit.source.quality import TypedSource

log = logging.getLogger(__name__)

VALIDATE, PERSIST, NOTIFY, PACKETS = "validate", "persist", "notify", "packets"
# A practice's stage when the forked process auditing it died before saying which.
AUDIT = "audit"


class PracticesFailedInTaskError(MetAuditError):
    """Some practices of a task failed for good (the others finished); retrying won't help."""

    def __init__(self, failures: Sequence[PracticeFailure]) -> None:
        self.failures = list(failures)
        where = "; ".join(
            f"{f.practice_id} at {f.stage} ({type(f.error).__name__})" for f in self.failures
        )
        super().__init__(
            f"{len(self.failures)} practice(s) of this task failed: {where} "
            "(the task's other practices finished; see the task log and the results "
            "store's alerts)"
        )


@dataclass(frozen=True)
class PracticeFailure:
    """One practice's stage that failed, and how."""

    practice_id: str
    stage: str
    error: BaseException
    # Judged where it happened (a forked part of the task); None: judge it when raising.
    final: bool | None = None


@dataclass(frozen=True)
class TaskRef:
    """The Airflow task instance a group of practices runs in (for the alerts it records)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int | None = None
    log_url: str | None = None


def chunk_practices(practice_ids: Sequence[str], per_task: int, max_tasks: int) -> list[list[str]]:
    """Split the practices (in order) into groups of about ``per_task``, never into more
    than ``max_tasks`` groups (Airflow's ``[core] max_map_length``): the groups grow
    instead. Group sizes differ by at most one."""
    if per_task < 1 or max_tasks < 1:
        raise ValueError(f"per_task and max_tasks must be >= 1, got {per_task}, {max_tasks}")
    ordered = list(practice_ids)
    if not ordered:
        return []
    tasks = min(max_tasks, math.ceil(len(ordered) / per_task))
    size, extra = divmod(len(ordered), tasks)
    groups, start = [], 0
    for index in range(tasks):
        end = start + size + (1 if index < extra else 0)
        groups.append(ordered[start:end])
        start = end
    return groups


def chunk_work(
    work: Sequence[Mapping[str, str]], per_task: int, max_tasks: int, processes: int = 1
) -> list[dict[str, Any]]:
    """Extract's work items (one per practice) grouped into one work item per task:
    ``{"as_of", "label", "practices": [{"practice_id", "partition"}, ...]}``. A task that
    audits in ``processes`` processes takes ``per_task`` practices for each: every part
    still checks about ``per_task`` practices together (GX's fixed cost spread as
    before), and a run that gives a task the machine (``airflow dags test``) pays
    Airflow's cost per task fewer times."""
    by_id = {item["practice_id"]: item for item in work}
    chunks = []
    for group in chunk_practices(sorted(by_id), per_task * max(1, processes), max_tasks):
        label = group[0] if len(group) == 1 else f"{group[0]}..{group[-1]} ({len(group)})"
        chunks.append(
            {
                "as_of": by_id[group[0]]["as_of"],
                "label": label,
                "practices": [
                    {"practice_id": p, "partition": by_id[p]["partition"]} for p in group
                ],
            }
        )
    return chunks


def audit_chunk(
    store_url: str,
    chunk: Mapping[str, Any],
    task: TaskRef,
    *,
    is_final: Callable[[BaseException], bool],
    api_key: str | None = None,
    host: str | None = None,
    packet_key: str | None = None,
    packet_signing_key: str | None = None,
    demo: bool = False,
    resend: bool = False,
    rebuild: bool = False,
    config: str | None = None,
    out_root: Path | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    """Audit a group of practices of one as-of date (see the module's docstring); return
    ``{"as_of", "practices": {practice_id: {"findings", "email", "packets"}}}`` (the
    email's delivery and the packets' summary, for the practices that got that far).
    ``is_final`` tells a failure a retry would not mend. ``processes`` > 1 audits the
    group in that many forked processes at once (:mod:`metaudit.pipeline.workers`)."""
    skip_final_collection()
    as_of = str(chunk["as_of"])
    options: dict[str, Any] = {
        "api_key": api_key,
        "host": host,
        "packet_key": packet_key,
        "packet_signing_key": packet_signing_key,
        "demo": demo,
        "resend": resend,
        "rebuild": rebuild,
        "config": config,
        "out_root": out_root,
    }
    if processes > 1 and len(chunk["practices"]) > 1:
        summary, failures = _audit_in_parts(store_url, chunk, task, is_final, processes, options)
    else:
        summary, failures = _audit_practices(store_url, chunk, task, **options)
    _raise_failures(store_url, task, date.fromisoformat(as_of), failures, is_final)
    return {"as_of": as_of, "practices": summary}


def _audit_in_parts(
    store_url: str,
    chunk: Mapping[str, Any],
    task: TaskRef,
    is_final: Callable[[BaseException], bool],
    processes: int,
    options: Mapping[str, Any],
) -> tuple[dict[str, Any], list[PracticeFailure]]:
    """The group split into ``processes`` parts of about equal records, each audited in a
    forked process; the failures come back judged final or not where they happened (the
    task's retry policy and try number are there too)."""
    from metaudit.pipeline import workers

    parts = workers.split_by_size(
        chunk["practices"], processes, lambda item: workers.partition_bytes(item["partition"])
    )
    # Loaded once here, so that every part (and every later task of this process) starts
    # with them in memory.
    stages.warm_up()

    def audit_part(
        part: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, Any], list[PracticeFailure]]:
        summary, failures = _audit_practices(
            store_url, {**chunk, "practices": part}, task, **options
        )
        return summary, [
            PracticeFailure(f.practice_id, f.stage, workers.portable(f.error), is_final(f.error))
            for f in failures
        ]

    outcomes = workers.run_parts(
        [([str(item["practice_id"]) for item in part], part) for part in parts], audit_part
    )
    summary: dict[str, Any] = {}
    failures: list[PracticeFailure] = []
    for outcome in outcomes:
        if outcome.error is None:
            done, failed = outcome.value
            summary.update(done)
            failures.extend(failed)
        else:
            log.error("practices %s: %s", ", ".join(outcome.practices), outcome.error)
            failures.extend(PracticeFailure(p, AUDIT, outcome.error) for p in outcome.practices)
    return summary, failures


def _audit_practices(
    store_url: str,
    chunk: Mapping[str, Any],
    task: TaskRef,
    *,
    config: str | None,
    out_root: Path | None,
    **options: Any,
) -> tuple[dict[str, Any], list[PracticeFailure]]:
    """The group's practices read, checked together, then each persisted, mailed and
    packed; returns what each did and the failures."""
    from metaudit.source.snapshot import PartitionError, read_partition

    as_of = str(chunk["as_of"])
    failures: list[PracticeFailure] = []
    parts: dict[str, TypedSource] = {}
    partitions: dict[str, str] = {}
    read_seconds: dict[str, dict[str, float]] = {}
    for item in chunk["practices"]:
        practice_id = str(item["practice_id"])
        partitions[practice_id] = str(item["partition"])
        began = time.perf_counter()
        try:
            parts[practice_id] = read_partition(Path(item["partition"]), practice_id)
            read_seconds[practice_id] = {"read_partition": time.perf_counter() - began}
        except PartitionError as exc:
            log.error("practice %s: %s", practice_id, exc)
            failures.append(PracticeFailure(practice_id, VALIDATE, exc))

    material: dict[str, Any] = {}
    validated, failed = validate_practices(
        parts,
        partitions,
        as_of,
        config=config,
        out_root=out_root,
        timings=read_seconds,
        material=material,
    )
    failures.extend(failed)
    summary: dict[str, Any] = {}
    for practice_id, item in validated.items():
        summary[practice_id] = _finish_practice(
            store_url,
            task,
            item,
            parts[practice_id],
            failures,
            material=_share_of(material, practice_id),
            config=config,
            **options,
        )
        # The practice is done with: its records need not stay for the next one.
        del parts[practice_id]
    return summary, failures


def _finish_practice(
    store_url: str,
    task: TaskRef,
    validated: Mapping[str, str],
    typed: TypedSource,
    failures: list[PracticeFailure],
    **options: Any,
) -> dict[str, Any]:
    """Persist one validated practice, then mail it and build its packets (each attempted
    even when the other failed); failures go to ``failures``. Returns what it did."""
    practice_id = validated["practice_id"]
    timings: dict[str, float] = {}
    done: dict[str, Any] = {"findings": None}
    began = time.perf_counter()
    try:
        persisted = stages.persist_practice(store_url, task.run_id, validated)
    except Exception as exc:
        log.exception("practice %s: persist failed", practice_id)
        failures.append(PracticeFailure(practice_id, PERSIST, exc))
        return done
    done["findings"] = persisted["findings"]
    after_persist = time.perf_counter()
    try:
        mail = stages.notify_practice(
            store_url,
            task.run_id,
            persisted,
            api_key=options["api_key"],
            host=options["host"],
            resend=options["resend"],
            config=options["config"],
        )
        done["email"] = mail
    except Exception as exc:
        log.exception("practice %s: notify failed", practice_id)
        failures.append(PracticeFailure(practice_id, NOTIFY, exc))
    timings[NOTIFY] = time.perf_counter() - after_persist
    before_packets = time.perf_counter()
    try:
        view, frames = options["material"] or (None, None)
        packets = stages.build_packets(
            persisted,
            key=options["packet_key"],
            signing_key=options.get("packet_signing_key"),
            demo=options["demo"],
            rebuild=options["rebuild"],
            config=options["config"],
            typed=typed,
            view=view,
            frames=frames,
            store_url=store_url,
        )
        done["packets"] = packets
    except Exception as exc:
        log.exception("practice %s: packets failed", practice_id)
        failures.append(PracticeFailure(practice_id, PACKETS, exc))
    timings[PACKETS] = time.perf_counter() - before_packets
    as_of = date.fromisoformat(str(persisted["as_of"]))
    try:
        from metaudit.results import session

        with session(store_url) as store:
            store.record_stage_timings(as_of, practice_id, timings)
    except with_database_errors():
        log.exception("practice %s: could not store the notify and packets timings", practice_id)
    log.info(
        "practice %s as of %s: %s findings; persist %.2f s, notify %.2f s, packets %.2f s "
        "(total %.2f s)",
        practice_id,
        as_of,
        persisted["findings"],
        after_persist - began,
        timings[NOTIFY],
        timings[PACKETS],
        time.perf_counter() - began,
    )
    return done


def validate_practices(
    parts: Mapping[str, TypedSource],
    partitions: Mapping[str, str],
    as_of: str,
    *,
    config: str | None = None,
    out_root: Path | None = None,
    timings: Mapping[str, Mapping[str, float]] | None = None,
    material: dict[str, Any] | None = None,
) -> tuple[dict[str, dict[str, str]], list[PracticeFailure]]:
    """Check the practices together and write each one's results folder; returns each
    validated practice's work item (ids and paths) and the failures. When the joint
    check fails, each practice is checked alone, so one cannot fail the others.
    ``timings``: each practice's earlier stages (reading its partition), kept with its
    share of the check's. ``material``, when given, receives the check's as-of view and
    derived frames (``view``, ``frames``, ``practices``), for the packets to use."""
    from metaudit.spec.settings import Settings

    if not parts:
        return {}, []
    settings = Settings.load(config)
    day = date.fromisoformat(as_of)
    ids = sorted(parts)
    started_at = stages._now()
    try:
        result, seconds = _check_together(
            [parts[p] for p in ids], ids, day, settings, keep_material=material is not None
        )
    except Exception as exc:
        if len(ids) == 1:
            return {}, [PracticeFailure(ids[0], VALIDATE, exc)]
        log.warning(
            "checking %d practices together failed (%s); checking each on its own",
            len(ids),
            describe_error(exc),
        )
        validated: dict[str, dict[str, str]] = {}
        failures: list[PracticeFailure] = []
        for practice_id in ids:
            done, failed = validate_practices(
                {practice_id: parts[practice_id]},
                partitions,
                as_of,
                config=config,
                out_root=out_root,
                timings=timings,
                material=None,
            )
            validated.update(done)
            failures.extend(failed)
        return validated, failures
    validated = {}
    failures = []
    share = 1.0 / len(ids)
    for practice_id in ids:
        try:
            validated[practice_id] = stages.write_practice_results(
                result,
                practice_id,
                partitions[practice_id],
                as_of,
                # Each practice's share of the joint check's stages (the task log has the
                # whole), so the store's per-practice timings add up to the task's.
                {
                    **(timings or {}).get(practice_id, {}),
                    **{stage: spent * share for stage, spent in seconds.items()},
                },
                started_at,
                out_root=out_root,
            )
        except Exception as exc:
            log.exception("practice %s: writing its results failed", practice_id)
            failures.append(PracticeFailure(practice_id, VALIDATE, exc))
    if material is not None:
        material.update(view=result.view, frames=result.frames, practices=ids)
    log.info(
        "checked %d practice(s) together as of %s: %d findings; %s",
        len(ids),
        as_of,
        len(result.findings),
        {k: round(v, 2) for k, v in seconds.items()},
    )
    return validated, failures


def _check_together(
    parts: Sequence[TypedSource],
    ids: Sequence[str],
    day: date,
    settings: Any,
    *,
    keep_material: bool = False,
) -> tuple[CheckResult, dict[str, float]]:
    from metaudit.check.engine import check_typed
    from metaudit.source.snapshot import combine

    timings: dict[str, float] = {}
    began = time.perf_counter()
    typed = combine(parts)
    timings["combine"] = time.perf_counter() - began
    result = check_typed(
        typed, day, ids, settings, timings, share_by_practice=True, keep_material=keep_material
    )
    strangers = sorted({str(f.practice_id) for f in result.findings} - set(ids))
    if strangers:
        raise ValueError(f"the check of practices {list(ids)} reported findings of {strangers}")
    return result, timings


def _share_of(material: dict[str, Any], practice_id: str) -> tuple[AuditView, list[Frame]] | None:
    """The practice's as-of view and derived frames out of the group's (what the view and
    derivation of the practice alone give), or None when the group's check kept none."""
    from metaudit.check.view import RowsBy, frames_share, practice_share

    view, frames = material.get("view"), material.get("frames")
    if view is None or frames is None:
        return None
    if material.get("practices") == [practice_id]:
        return view, list(frames)
    # The group's rows are grouped by practice once, for the shares of all its practices.
    by = material.setdefault("rows_by_practice", RowsBy("practice_id"))
    share = practice_share(view, practice_id, by)
    return share, frames_share(frames, "practice_id", {practice_id}, by)


def _raise_failures(
    store_url: str,
    task: TaskRef,
    as_of: date,
    failures: Sequence[PracticeFailure],
    is_final: Callable[[BaseException], bool],
) -> None:
    """Record the failures that are final against their practices (status and an alert
    each, mailed once for the task by the DAG's failure callback) and raise: the first
    error a retry may mend, else PracticesFailedInTaskError."""
    if not failures:
        return

    def judged_final(failure: PracticeFailure) -> bool:
        return failure.final if failure.final is not None else is_final(failure.error)

    final = [f for f in failures if judged_final(f)]
    if final:
        _record(store_url, task, as_of, final)
    retryable = [f for f in failures if not judged_final(f)]
    if retryable:
        first = retryable[0]
        log.error(
            "%d practice(s) of this task failed in a way a retry may mend; the task is "
            "retried (first: %s at %s)",
            len(retryable),
            first.practice_id,
            first.stage,
        )
        raise first.error
    raise PracticesFailedInTaskError(final)


def _record(
    store_url: str, task: TaskRef, as_of: date, failures: Sequence[PracticeFailure]
) -> None:
    from metaudit.results import session

    try:
        with session(store_url) as store:
            for failure in failures:
                error = describe_error(failure.error)
                store.record_alert(
                    dag_id=task.dag_id,
                    run_id=task.run_id,
                    task_id=f"{task.task_id}.{failure.stage}",
                    map_index=task.map_index,
                    try_number=task.try_number,
                    practice_id=failure.practice_id,
                    as_of=as_of,
                    error=error,
                    log_url=task.log_url,
                )
                store.fail_practice(task.run_id, as_of, failure.practice_id, error)
    except with_database_errors():
        log.exception("could not record the failed practices of run %s", task.run_id)
