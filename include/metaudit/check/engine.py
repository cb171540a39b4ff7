"""The whole check: read, type, view, derive, validate, assemble findings."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from metaudit import config
from metaudit.check.derive import FAMILIES
from metaudit.check.frames import Frame
from metaudit.spec.findings import Finding, sort_findings

if TYPE_CHECKING:
    import sqlalchemy as sa

    from metaudit.check.gx.runner import FamilyValidation
    from metaudit.check.view import AuditView
    from metaudit.source.quality import TypedSource
    from metaudit.source.stream import StreamedSource
    from metaudit.spec.settings import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass
class CheckResult:
    """What one check produced: findings, GX validation results and stage timings."""

    as_of: str
    findings: list[Finding]
    validations: dict[str, FamilyValidation] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    practice_ids: list[str] = field(default_factory=list)
    # One row per finding, in the findings' order: the claim lines it puts at risk and
    # their money (metaudit.check.exposure); None when not computed.
    exposure: pd.DataFrame | None = None
    # The draft claims' timely-filing deadlines (metaudit.check.deadlines); None when not computed.
    deadlines: pd.DataFrame | None = None
    # With ``keep_material``: the as-of view and every family's derived frames (what the
    # packets are made of), else None (the frames are let go family by family).
    view: AuditView | None = None
    frames: list[Frame] | None = None


def derive_family(family: str, view: AuditView, settings: Settings) -> list[Frame]:
    """The frames of one family (its module ``metaudit.check.derive.<family>``)."""
    module = importlib.import_module(f"metaudit.check.derive.{family.lower()}")
    frames: list[Frame] = module.derive(view, settings)
    return frames


def run_view_rules(
    view: AuditView,
    settings: Settings,
    families: Sequence[str] = FAMILIES,
    timings: dict[str, float] | None = None,
    share_by: Sequence[str] | None = None,
    keep_frames: list[Frame] | None = None,
) -> tuple[list[Finding], dict[str, FamilyValidation]]:
    """Run every family's derivation and suite over a view; return findings and results
    (with each of ``share_by``'s practices' share of them, see ``validate_family``)."""
    from metaudit.check.gx.runner import load_suite, validate_family

    findings: list[Finding] = []
    validations: dict[str, FamilyValidation] = {}
    timings = timings if timings is not None else {}
    for family in families:
        started = time.perf_counter()
        frames = derive_family(family, view, settings)
        derived = time.perf_counter()
        suite = load_suite(family)
        validation = validate_family(family, frames, suite, share_by)
        validations[family] = validation
        validated = time.perf_counter()
        findings.extend(_assemble(view, frames, suite, validation))
        if keep_frames is not None:
            keep_frames.extend(frames)
        else:
            # A family's frames are done with: give their memory back before the next.
            del frames
            release_memory()
        done = time.perf_counter()
        timings["derive"] = timings.get("derive", 0.0) + derived - started
        timings["validate"] = timings.get("validate", 0.0) + validated - derived
        timings["assemble"] = timings.get("assemble", 0.0) + done - validated
    return findings, validations


def _assemble(
    view: AuditView, frames: list[Frame], suite: Any, validation: FamilyValidation
) -> list[Finding]:
    """Turn failing ids into findings; the cost follows the failures, not the rows."""
    from metaudit.spec import rulebook

    due_columns: dict[tuple[str, str], str] = {}
    for expectation in suite.expectations:
        meta = expectation.meta or {}
        if meta.get("due_date_column"):
            due_columns[meta["rule_id"], meta["frame"]] = meta["due_date_column"]

    by_name = {frame.name: frame for frame in frames}
    parts: dict[tuple[str, str, str], list[str]] = {}
    for failure in validation.failures:
        key = (failure.rule_id, failure.frame, failure.entity_id)
        bucket = parts.setdefault(key, [])
        if failure.part and failure.part not in bucket:
            bucket.append(failure.part)

    findings: list[Finding] = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for rule_id, frame_name, entity_id in parts:
        grouped.setdefault((rule_id, frame_name), []).append(entity_id)
    for (rule_id, frame_name), entity_ids in grouped.items():
        frame = by_name[frame_name]
        rule = rulebook.RULES[rule_id]
        due_column = due_columns.get((rule_id, frame_name))
        wanted = ["practice_id", "client_id"] + ([due_column] if due_column else [])
        rows = frame.data[wanted].take(_positions(frame.data["entity_id"], entity_ids))
        for entity_id, row in zip(entity_ids, rows.itertuples(index=False), strict=True):
            due = _iso(row[2]) if due_column else None
            findings.append(
                Finding(
                    as_of=view.as_of_iso,
                    practice_id=_text(row[0]),
                    rule_id=rule_id,
                    severity=rule.severity,
                    entity_type=frame.entity_type,
                    entity_id=str(entity_id),
                    client_id=_text(row[1]),
                    message=rulebook.message(
                        rule_id,
                        frame.entity_type,
                        str(entity_id),
                        parts[rule_id, frame_name, entity_id] or None,
                        due_date=due,
                    ),
                    due_date=due,
                )
            )
    return findings


def _positions(column: pd.Series, entity_ids: list[str]) -> np.ndarray:
    """Row positions of entity ids in a frame's unique ``entity_id`` column.

    The few failing ids are hashed and the column scanned once in Arrow, so the
    cost follows the failures; an index lookup on Arrow-backed strings costs
    seconds per million rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    every = pa.array(column.astype("string").array)
    wanted = pa.array(entity_ids, type=every.type)
    hits = np.flatnonzero(np.asarray(pc.is_in(every, value_set=wanted), dtype=bool))
    where = dict(zip(column.iloc[hits].astype(str).tolist(), hits.tolist(), strict=True))
    missing = [entity_id for entity_id in entity_ids if entity_id not in where]
    if missing:
        raise KeyError(f"failing entity ids not in their frame: {missing[:5]}")
    return np.array([where[entity_id] for entity_id in entity_ids], dtype=np.intp)


def load_source(
    source: str | Path | sa.URL,
    as_of: date,
    timings: dict[str, float] | None = None,
    statement_timeout_s: float | None = None,
) -> TypedSource:
    """Read and type the whole source once, with its data-quality findings (DQ rules).

    ``statement_timeout_s`` bounds each statement and lock wait of the read (default:
    the setting ``source.statement_timeout_seconds``'s default). Raises ContractError or
    SourceUnavailableError when the source cannot be audited.
    """
    from metaudit.source.quality import type_source
    from metaudit.source.reader import DEFAULT_STATEMENT_TIMEOUT_S, iter_tables

    timings = timings if timings is not None else {}
    use_fast_arrow_allocator()
    reading = _Stopwatch()
    started = time.perf_counter()
    # Each table is typed as soon as it is read and its text let go, so the
    # whole source is never held twice (text and typed).
    typed = type_source(
        reading.timed(
            iter_tables(source, None, statement_timeout_s or DEFAULT_STATEMENT_TIMEOUT_S)
        ),
        pd.Timestamp(as_of).strftime("%Y-%m-%d"),
    )
    timings["read"] = reading.seconds
    timings["type"] = time.perf_counter() - started - reading.seconds
    release_memory()
    return typed


class _Stopwatch:
    """Seconds spent inside an iterator (reading), apart from the consumer's work."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, items: Iterator[_T]) -> Iterator[_T]:
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - started
            yield item
            del item


def use_fast_arrow_allocator() -> None:
    """Allocate Arrow buffers with jemalloc (the C library's malloc where pyarrow has
    no jemalloc), unless ``ARROW_DEFAULT_MEMORY_POOL`` names a pool.

    Typing allocates and frees thousands of column buffers; pyarrow's default,
    mimalloc, spends seconds of kernel time on them here and peaks higher.
    """
    import pyarrow as pa

    if config.arrow_pool_chosen():
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        pool = pa.system_memory_pool()
    if pa.default_memory_pool().backend_name != pool.backend_name:
        pa.set_memory_pool(pool)


def release_memory() -> None:
    """Hand memory freed by a stage back to the system before the next one.

    Arrow's allocator and the C library's keep freed blocks for reuse, each for
    itself: without this, a million-session check holds gigabytes of freed text
    buffers that numpy allocations of the next stage cannot use.
    """
    import ctypes
    import ctypes.util

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = ctypes.util.find_library("c")
    if libc and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(libc).malloc_trim(0)


def check_typed(
    typed: TypedSource,
    as_of: date,
    practice_ids: Iterable[str] | None = None,
    settings: Settings | None = None,
    timings: dict[str, float] | None = None,
    *,
    share_by_practice: bool = False,
    keep_material: bool = False,
) -> CheckResult:
    """Run every rule over a typed source for some practices (all when None).

    ``share_by_practice``: the practices are validated together and each
    ``FamilyValidation`` also holds every practice's share of the results (what the
    nightly run writes per practice). ``keep_material``: the result keeps the view
    and the derived frames (the packets need them; they cost memory)."""
    return _check(
        typed,
        as_of,
        practice_ids,
        settings,
        timings,
        release_source=False,
        share_by_practice=share_by_practice,
        keep_material=keep_material,
    )


def _check(
    typed: TypedSource,
    as_of: date,
    practice_ids: Iterable[str] | None,
    settings: Settings | None,
    timings: dict[str, float] | None,
    *,
    release_source: bool,
    share_by_practice: bool = False,
    keep_material: bool = False,
    owns: Callable[[Finding], bool] | None = None,
) -> CheckResult:
    """check_typed; with ``release_source`` the typed tables are let go once the view
    is built (the caller has no further use for them); with ``owns``, only the rule
    findings it accepts are kept (a practice group's, see :func:`check_streamed`)."""
    from metaudit.check.deadlines import filing_deadlines
    from metaudit.check.exposure import finding_exposure
    from metaudit.check.view import build_view
    from metaudit.spec.settings import Settings

    settings = settings or Settings.load(None)
    timings = timings if timings is not None else {}
    day = pd.Timestamp(as_of).normalize()
    wanted = sorted(set(practice_ids)) if practice_ids is not None else None
    started = time.perf_counter()
    # When the caller is done with the typed source, the view takes its tables
    # over one by one: a filtered table and its source are never both kept.
    view = build_view(
        typed,
        day,
        wanted,
        settings.for_practice(None).default_timezone,
        release_source=release_source,
    )
    dq = typed.findings
    if release_source:
        release_memory()
    _add_time(timings, "view", started)

    practices = sorted(view.practices["practice_id"].dropna().astype(str).tolist())
    kept: list[Frame] | None = [] if keep_material else None
    findings, validations = run_view_rules(
        view,
        settings,
        timings=timings,
        share_by=practices if share_by_practice else None,
        keep_frames=kept,
    )
    if wanted is not None:
        dq = [f for f in dq if f.practice_id in wanted]
    if owns is not None:
        # A group's view holds the network tables whole: their findings belong to the
        # group that owns their practice, and to no other.
        findings = [f for f in findings if owns(f)]
    started = time.perf_counter()
    ordered = sort_findings([*dq, *findings])
    _add_time(timings, "assemble", started)
    started = time.perf_counter()
    exposure = finding_exposure(view, ordered, settings)
    _add_time(timings, "exposure", started)
    started = time.perf_counter()
    deadlines = filing_deadlines(view, settings)
    _add_time(timings, "deadlines", started)
    return CheckResult(
        as_of=view.as_of_iso,
        findings=ordered,
        validations=validations,
        seconds=timings,
        practice_ids=practices,
        exposure=exposure,
        deadlines=deadlines,
        view=view if keep_material else None,
        frames=kept,
    )


def run_check(
    source: str | Path | sa.URL,
    as_of: date | None = None,
    practice_ids: Iterable[str] | None = None,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
    clients_per_group: int | None = None,
) -> CheckResult:
    """Read a source database and run every rule; raise ContractError or
    SourceUnavailableError when the check cannot run.

    The source is streamed into practice groups in a private temporary folder
    (removed on return) and checked group by group (:func:`stream_typed`,
    :func:`check_streamed`): memory follows a group of ``clients_per_group`` clients
    (default :data:`metaudit.source.stream.CLIENTS_PER_GROUP`), not the network; the
    result is the whole-network check's.

    ``CheckResult.seconds`` splits the time by stage: read, type, view, derive,
    validate, assemble (summed over the groups).
    """
    say = progress or (lambda message: None)
    day = as_of or date.today()
    timings: dict[str, float] = {}
    loading = threading.Thread(target=warm_up, name="metaudit-warm-up", daemon=True)
    loading.start()
    timeout = settings.statement_timeout_s if settings is not None else None
    say("reading and typing the source (data-contract rules)")
    with stream_typed(source, day, timings, timeout, clients_per_group) as streamed:
        say(
            f"deriving the rule facts and validating the suites "
            f"({len(streamed.groups)} practice group(s))"
        )
        loading.join()
        return check_streamed(streamed, day, practice_ids, settings, timings, say)


def stream_typed(
    source: str | Path | sa.URL,
    as_of: date,
    timings: dict[str, float] | None = None,
    statement_timeout_s: float | None = None,
    clients_per_group: int | None = None,
    folder: Path | None = None,
) -> StreamedSource:
    """Read and type the source in one streaming pass into practice groups on disk
    (:mod:`metaudit.source.stream`), with its data-quality findings: memory follows a
    batch and the network's key sets, not the network. Raises as :func:`load_source`."""
    from metaudit.source.reader import DEFAULT_STATEMENT_TIMEOUT_S, iter_table_batches
    from metaudit.source.stream import CLIENTS_PER_GROUP, stream_source

    timings = timings if timings is not None else {}
    use_fast_arrow_allocator()
    batches = iter_table_batches(source, None, statement_timeout_s or DEFAULT_STATEMENT_TIMEOUT_S)
    streamed = stream_source(
        batches,
        pd.Timestamp(as_of).strftime("%Y-%m-%d"),
        folder=folder,
        clients_per_group=clients_per_group or CLIENTS_PER_GROUP,
    )
    for stage, seconds in streamed.seconds.items():
        timings[stage] = timings.get(stage, 0.0) + seconds
    release_memory()
    return streamed


def check_streamed(
    streamed: StreamedSource,
    as_of: date,
    practice_ids: Iterable[str] | None = None,
    settings: Settings | None = None,
    timings: dict[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CheckResult:
    """Run every rule over a streamed source, one practice group at a time.

    Each group is checked as the whole network would be (its view holds the network
    tables whole), keeping the findings about its records (its clients', else its
    practices'; the first group: also those naming neither, or a practice without
    clients: :meth:`StreamedSource.finding_group`). Findings,
    exposure and deadlines are then merged in the order of the whole-network check;
    a family's GX results list each group's suite results in group order.
    """
    from metaudit.check.gx.runner import FamilyValidation
    from metaudit.spec.settings import Settings

    settings = settings or Settings.load(None)
    timings = timings if timings is not None else {}
    say = progress or (lambda message: None)
    wanted = sorted(set(practice_ids)) if practice_ids is not None else None
    results: list[CheckResult] = []
    needed = set(range(len(streamed.groups)))
    if wanted is not None:
        # The groups of the wanted practices, and those holding the records of a wanted
        # practice's data-quality finding (a client row repeated under it, say).
        needed = {streamed.group_of(p) for p in wanted} | {
            streamed.finding_group(f) for f in streamed.findings if f.practice_id in wanted
        }
    for number in sorted(needed):
        if len(streamed.groups) > 1:
            say(f"practice group {number + 1} of {len(streamed.groups)}")
        typed = streamed.read_group(number, by_client=True)

        def owns(finding: Finding, number: int = number) -> bool:
            return streamed.finding_group(finding) == number

        results.append(
            _check(typed, as_of, wanted, settings, timings, release_source=True, owns=owns)
        )
        del typed
        release_memory()
    if len(results) == 1:
        return results[0]
    if not results:  # no wanted practice in the source: what the whole check gives
        return _check(
            streamed.read_group(0), as_of, wanted or [], settings, timings, release_source=True
        )
    every = [finding for result in results for finding in result.findings]
    order = sorted(range(len(every)), key=lambda at: every[at].sort_key())
    validations: dict[str, FamilyValidation] = {}
    for result in results:
        for family, validation in result.validations.items():
            merged = validations.setdefault(family, FamilyValidation(family))
            merged.failures.extend(validation.failures)
            merged.results.extend(validation.results)
    for merged in validations.values():
        merged.failures.sort(key=lambda f: (f.rule_id, f.entity_id, f.frame, f.part or ""))
    exposures = [r.exposure for r in results if r.exposure is not None]
    deadlines = [r.deadlines for r in results if r.deadlines is not None]
    return CheckResult(
        as_of=results[0].as_of,
        findings=[every[at] for at in order],
        validations=validations,
        seconds=timings,
        practice_ids=sorted({p for r in results for p in r.practice_ids}),
        exposure=(
            pd.concat(exposures, ignore_index=True).iloc[order].reset_index(drop=True)
            if exposures
            else None
        ),
        deadlines=(
            pd.concat(deadlines, ignore_index=True).sort_values(
                ["deadline", "claim_id"], kind="stable", ignore_index=True
            )
            if deadlines
            else None
        ),
    )


def _add_time(timings: dict[str, float], stage: str, started: float) -> None:
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


def warm_up() -> None:
    """Load Great Expectations, the suites and the ICD-10-CM code set while the
    source is read: seconds of imports and parsing that otherwise wait for the read.

    A failure here is left for the validation stage to meet and report.
    """
    from metaudit.errors import MetAuditError

    try:
        from metaudit.check.gx.runner import gx_context, load_suite
        from metaudit.spec.icd10 import billable_codes

        for family in FAMILIES:
            load_suite(family)
        gx_context()
        billable_codes()
    except (MetAuditError, ImportError, OSError, ValueError) as exc:
        log.debug("warm-up left for later: %s", exc)


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _iso(value: object) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value[:10]
    if isinstance(value, (pd.Timestamp, date)):
        return value.strftime("%Y-%m-%d")
    return str(value)[:10]
