"""The nightly run's stages: what each Airflow task calls, testable without a scheduler.

The nightly run, stage by stage:

1. :func:`plan_run`: the as-of date and the practices to audit (reads only the
   source's practices table); records the run in the results store.
2. :func:`extract`: reads and types the whole source once, writes one typed
   partition per practice (:mod:`metaudit.source.snapshot`) and the run-level findings
   that name no practice.
3. per practice, :func:`validate_practice` (the rulebook on the practice's
   partition; findings and GX results under ``results/<as_of>/<practice>/``),
   :func:`persist_practice` (the results store), then side by side
   :func:`notify_practice` (the morning email, :mod:`metaudit.mail`) and
   :func:`build_packets` (the audit packets, :mod:`metaudit.packets`).
4. :func:`finish_run`: stores the run-level findings, marks the run, and fails
   naming the practices that did not finish.

A practice "finished" when the results store says so: persist marks it a
success, and a notify or packets stage that fails for good marks it failed
again (:func:`practice_stage`, before Airflow hears of the failure, so the
run's last task never races the failure callback). :func:`alert_admins`, the
failure callback, records an alert and mails it to the admins on the morning
email's path.

Tasks pass only ids and paths (XCom is neither secret nor meant for data);
every function is idempotent and keyed by as-of date and practice, writing its
files atomically. Nothing here imports pandas, GX or SQLAlchemy at module level:
the DAG file imports this module's callback when Airflow parses it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaudit.config import run_url, snapshot_keep_days
from metaudit.errors import MetAuditError, SettingsError
from metaudit.lifetime import skip_final_collection
from metaudit.paths import (
    TIMINGS_FILE,
    data_dir,
    outbox_dir,
    results_dir,
    snapshot_dir,
    unattributed_path,
)
from metaudit.pipeline.alerts import describe_error, resend_pending_alerts, with_database_errors
from metaudit.pipeline.connections import airflow_base_url

if TYPE_CHECKING:
    from metaudit.check.engine import CheckResult
    from metaudit.check.frames import Frame
    from metaudit.check.view import AuditView
    from metaudit.results.digest import FindingAttribution, FindingExposure
    from metaudit.source.quality import TypedSource
    from metaudit.source.stream import StreamedSource
    from metaudit.spec.findings import Finding

log = logging.getLogger(__name__)


class RunIncompleteError(MetAuditError):
    """A run did not audit every practice it planned (retrying the last task won't help)."""


class RunNotPlannedError(RunIncompleteError):
    """The run never got past planning, so it audited nothing."""


class PracticesFailedError(RunIncompleteError):
    """Some practices of a run did not finish; the others did."""

    def __init__(
        self, run_id: str, failed: Sequence[str], stages: Mapping[str, str] | None = None
    ) -> None:
        self.failed = sorted(failed)
        self.stages = dict(stages or {})
        where = "; ".join(
            f"{practice_id} at {self.stages.get(practice_id, 'an unknown stage')}"
            for practice_id in self.failed
        )
        super().__init__(
            f"run {run_id}: audit failed for practice(s) {', '.join(self.failed)}; "
            f"the other practices finished. Failed: {where} (see the failed tasks' logs and "
            "the results store's alerts)"
        )


def resolve_as_of(param: str | None, run_date: date) -> date:
    """The as-of date of a run: the trigger form's value, else the run's date."""
    if param:
        try:
            return date.fromisoformat(str(param))
        except ValueError as exc:
            raise SettingsError(f"as_of must be a date YYYY-MM-DD, got {param!r}") from exc
    return run_date


def read_practices(source: str, statement_timeout_s: float | None = None) -> dict[str, str]:
    """Practice id -> name, as the source's practices table has them (each statement and
    lock wait bounded by ``statement_timeout_s``, default the setting's default)."""
    from metaudit.source.reader import DEFAULT_STATEMENT_TIMEOUT_S, read_tables

    timeout = statement_timeout_s or DEFAULT_STATEMENT_TIMEOUT_S
    raw = read_tables(source, ["practices"], timeout).tables["practices"]
    names: dict[str, str] = {}
    for practice_id, name in zip(raw["practice_id"], raw["name"], strict=True):
        key = str(practice_id).strip() if isinstance(practice_id, str) else ""
        if key and key not in names:
            names[key] = name.strip() if isinstance(name, str) and name.strip() else key
    return names


def list_practices(source: str, wanted: Sequence[str] | None = None) -> list[str]:
    """The practice ids to audit: all in the source, or the wanted ones (unknown ids refused)."""
    return _choose(sorted(read_practices(source)), wanted)


def _choose(present: list[str], wanted: Sequence[str] | None) -> list[str]:
    if not wanted:
        return present
    unknown = sorted(set(wanted) - set(present))
    if unknown:
        raise SettingsError(
            f"practice_ids not in the source: {', '.join(unknown)} "
            f"(the source has {', '.join(present) or 'no practices'})"
        )
    return sorted(set(wanted))


def plan_run(
    source: str,
    store_url: str,
    *,
    run_id: str,
    dag_id: str,
    as_of: date,
    wanted: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Resolve the practices of a run and record the run as running in the results store."""
    from metaudit.results import session

    # Each task's process (one for the whole run under `airflow dags test`) ends
    # without walking its heap once more (metaudit.lifetime).
    skip_final_collection()
    from metaudit.spec.settings import Settings

    names = read_practices(source, Settings.load(None).statement_timeout_s)
    practice_ids = _choose(sorted(names), wanted)
    with session(store_url) as store:
        store.start_run(
            run_id,
            dag_id,
            as_of,
            list(wanted or []),
            practice_ids,
            {p: names[p] for p in practice_ids},
        )
    log.info("run %s as of %s: %d practice(s) %s", run_id, as_of, len(practice_ids), practice_ids)
    return {"as_of": as_of.isoformat(), "practice_ids": practice_ids}


def extract(
    source: str,
    as_of: date,
    practice_ids: Sequence[str],
    *,
    store_url: str | None = None,
    run_id: str | None = None,
    processes: int = 1,
) -> list[dict[str, str]]:
    """Read and type the source once, streaming; write each practice's typed partition and
    the run-level findings that name no practice (:func:`unattributed_path`). Returns one
    work item per practice: its id, the as-of date and its partition's folder.

    Memory follows one practice group, not the network: the source is typed in one
    streaming pass into practice groups spooled beside the partitions
    (:func:`metaudit.check.engine.stream_typed`), then each group is read back and split
    into its practices' partitions, and the spool removed.

    ``processes`` > 1 (the audit tasks fork their parts, :mod:`metaudit.pipeline.workers`):
    a forked process does all that, writing the partitions in that many processes, while
    this one loads Great Expectations, the suites and the packets' fonts
    (:func:`warm_up`), for the audit tasks that run next
    in this same process (``airflow dags test``) and fork from it: seconds of imports on
    another core instead of before the first audit."""
    skip_final_collection()
    if processes <= 1:
        return _extract(source, as_of, practice_ids, store_url, run_id, writers=1)
    from metaudit.pipeline.workers import run_beside

    return run_beside(
        lambda: _extract(source, as_of, practice_ids, store_url, run_id, writers=processes),
        meanwhile=warm_up,
    )


def warm_up() -> None:
    """Load what auditing a practice loads once per process: Great Expectations and the
    suites, ReportLab and the packets' fonts. A task loads them before it forks its parts
    (and extract meanwhile, for the tasks after it in the same process)."""
    from metaudit.check.engine import warm_up as load_check
    from metaudit.packets.render import warm_up as load_packets

    load_check()
    try:
        load_packets()
    except Exception as exc:  # the packets stage meets it again, and reports it there
        log.debug("packets' warm-up left for later: %s", exc)


def _extract(
    source: str,
    as_of: date,
    practice_ids: Sequence[str],
    store_url: str | None,
    run_id: str | None,
    *,
    writers: int,
) -> list[dict[str, str]]:
    import shutil
    import uuid

    from metaudit.check.engine import stream_typed
    from metaudit.spec.settings import Settings

    timings: dict[str, float] = {}
    # The configuration (METAUDIT_CONFIG) bounds each statement and lock wait: a table
    # locked by a reload ends this try with SourceUnavailableError, which is retried.
    timeout = Settings.load(None).statement_timeout_s
    # The spool holds health records: a private folder beside the partitions, never /tmp.
    spool = snapshot_dir(as_of.isoformat()) / f".spool-{uuid.uuid4().hex[:8]}"
    try:
        streamed = stream_typed(source, as_of, timings, timeout, folder=spool)
        return write_snapshot(
            streamed,
            as_of,
            practice_ids,
            timings,
            store_url=store_url,
            run_id=run_id,
            processes=writers,
        )
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def write_snapshot(
    streamed: StreamedSource,
    as_of: date,
    practice_ids: Sequence[str],
    timings: dict[str, float],
    *,
    store_url: str | None = None,
    run_id: str | None = None,
    processes: int = 1,
) -> list[dict[str, str]]:
    """Extract's second half: split a streamed source into the practices' partitions of
    ``as_of`` and write the run-level findings that name no practice; returns extract's
    work items. The data-quality findings are stamped with ``as_of`` (the typing judges
    every row whatever the date, so one streamed source serves several dates: the
    backfill of earlier dates, :mod:`metaudit.pipeline.backfill`). ``processes`` > 1: a
    group's partitions are written by that many forked processes, each some of its
    practices."""
    from metaudit.check.engine import release_memory
    from metaudit.source.snapshot import write_unattributed

    day = as_of.isoformat()
    folder = snapshot_dir(day)
    partitions: dict[str, Path] = {}
    started = time.perf_counter()
    wanted = sorted(set(practice_ids))
    for number in range(len(streamed.groups)):
        members = [p for p in wanted if streamed.group_of(p) == number]
        if not members:
            continue
        typed = _dated(streamed.read_group(number), day)
        partitions.update(_write_group(typed, members, day, folder, processes))
        del typed
        release_memory()
    timings["partition"] = time.perf_counter() - started
    orphans = [replace(f, as_of=day) for f in streamed.findings if f.practice_id is None]
    unattributed = write_unattributed(orphans, unattributed_path(day))
    if orphans:
        log.warning(
            "%d finding(s) name no practice (rows whose parent is missing): %s",
            len(orphans),
            unattributed,
        )
    if store_url and run_id:
        from metaudit.results import session

        with session(store_url) as store:
            store.record_extract(run_id, timings)
    log.info("extract as of %s: %s", day, {k: round(v, 2) for k, v in timings.items()})
    return [
        {"practice_id": practice_id, "as_of": day, "partition": str(path)}
        for practice_id, path in sorted(partitions.items())
    ]


def _write_group(
    typed: TypedSource, members: Sequence[str], day: str, folder: Path, processes: int
) -> dict[str, Path]:
    from metaudit.source.snapshot import write_partitions

    if processes <= 1 or len(members) <= 1:
        return write_partitions(typed, members, day, folder)
    from metaudit.pipeline.workers import run_parts, split_by_size, values

    shares = split_by_size(members, processes, lambda practice_id: 1)
    written: dict[str, Path] = {}
    for done in values(
        run_parts(
            [(share, share) for share in shares],
            lambda share: write_partitions(typed, share, day, folder),
        )
    ):
        written.update(done)
    return written


def _dated(typed: TypedSource, day: str) -> TypedSource:
    """The typed source with its data-quality findings stamped as of ``day``."""
    if all(f.as_of == day for f in typed.findings):
        return typed
    return replace(typed, findings=[replace(f, as_of=day) for f in typed.findings])


def validate_practice(
    practice_id: str,
    partition: str,
    as_of: str,
    *,
    out_root: Path | None = None,
    config: str | None = None,
) -> dict[str, str]:
    """Run the rulebook on one practice's partition; write its results folder
    (:func:`write_practice_results`). Returns ids and paths only. (The nightly run
    checks a task's practices together: :mod:`metaudit.pipeline.chunk`.)"""
    from metaudit.check.engine import check_typed
    from metaudit.source.snapshot import read_partition
    from metaudit.spec.settings import Settings

    started_at = _now()
    timings: dict[str, float] = {}
    began = time.perf_counter()
    typed = read_partition(Path(partition), practice_id)
    timings["read_partition"] = time.perf_counter() - began
    settings = Settings.load(config)
    day = date.fromisoformat(as_of)
    result = check_typed(typed, day, [practice_id], settings, timings)
    strangers = sorted(
        {str(f.practice_id) for f in result.findings if f.practice_id != practice_id}
    )
    if strangers:
        raise ValueError(f"practice {practice_id}'s check reported findings of {strangers}")
    return write_practice_results(
        result, practice_id, partition, as_of, timings, started_at, out_root=out_root
    )


def write_practice_results(
    result: CheckResult,
    practice_id: str,
    partition: str,
    as_of: str,
    timings: dict[str, float],
    started_at: datetime,
    *,
    out_root: Path | None = None,
) -> dict[str, str]:
    """Write one practice's part of a check into ``results/<as_of>/<practice>/``: its
    findings (JSON Lines and CSV), their exposure beside them, the draft claims' filing
    deadlines, the GX validation results (its share of them when the check validated
    several practices together) and the stage timings. Returns ids and paths only."""
    from metaudit.check.deadlines import write_deadlines
    from metaudit.check.exposure import write_exposure
    from metaudit.paths import write_atomic
    from metaudit.spec.findings import write_findings

    timings = dict(timings)
    began = time.perf_counter()
    own = [f.practice_id == practice_id for f in result.findings]
    findings = [f for f, mine in zip(result.findings, own, strict=True) if mine]
    out_dir = results_dir(as_of, practice_id, out_root)
    jsonl, _ = write_findings(findings, out_dir)
    if result.exposure is not None:
        # One exposure row per finding, in the findings' order.
        write_exposure(result.exposure.loc[own].reset_index(drop=True), out_dir)
    if result.deadlines is not None:
        deadlines = result.deadlines
        write_deadlines(
            deadlines.loc[deadlines["practice_id"] == practice_id].reset_index(drop=True),
            out_dir,
        )
    for family, validation in result.validations.items():
        document = validation.shares.get(practice_id) if validation.shares else None
        write_atomic(
            out_dir / "validation" / f"{family.lower()}.json",
            json.dumps(
                validation.results if document is None else document,
                indent=1,
                sort_keys=True,
                allow_nan=False,
            ),
        )
    timings["write"] = time.perf_counter() - began
    timings_path = out_dir / TIMINGS_FILE
    write_atomic(
        timings_path,
        json.dumps({"started_at": started_at.isoformat(), "stages": timings}, indent=1),
    )
    log.info(
        "practice %s as of %s: %d findings; %s",
        practice_id,
        as_of,
        len(findings),
        {k: round(v, 2) for k, v in timings.items()},
    )
    return {
        "practice_id": practice_id,
        "as_of": as_of,
        "partition": str(partition),
        "out_dir": str(out_dir),
        "findings": str(jsonl),
        "timings": str(timings_path),
    }


def persist_practice(store_url: str, run_id: str, validated: Mapping[str, str]) -> dict[str, Any]:
    """Store one practice's findings of the as-of date (replacing that date's), their
    exposure (the ``exposure.jsonl`` beside them, when the validate stage wrote one), the
    draft claims' filing deadlines (``filing_deadlines.jsonl``, likewise), its
    status and stage timings, and recompute its findings history. Returns ids and paths
    for the stages after it (the partition and the audit's folder)."""
    from metaudit.paths import DEADLINES_FILE
    from metaudit.results import session
    from metaudit.results.digest import read_deadlines
    from metaudit.spec.findings import read_findings

    practice_id = validated["practice_id"]
    findings = read_findings(Path(validated["findings"]))
    exposure = stored_exposure(Path(validated["out_dir"]), Path(validated["partition"]))
    deadlines_path = Path(validated["out_dir"], DEADLINES_FILE)
    deadlines = read_deadlines(deadlines_path) if deadlines_path.exists() else []
    attribution = stored_attribution(findings, exposure, Path(validated["partition"]))
    recorded = json.loads(Path(validated["timings"]).read_text(encoding="utf-8"))
    with session(store_url) as store:
        stored = store.persist_practice(
            run_id,
            date.fromisoformat(validated["as_of"]),
            practice_id,
            findings,
            timings=recorded["stages"],
            results_dir=validated["out_dir"],
            started_at=datetime.fromisoformat(recorded["started_at"]),
            exposure=exposure,
            deadlines=deadlines,
            attribution=attribution,
        )
    return {
        "practice_id": practice_id,
        "as_of": stored.as_of,
        "findings": stored.findings,
        "partition": validated["partition"],
        "out_dir": validated["out_dir"],
    }


def stored_attribution(
    findings: Sequence[Finding], exposure: Mapping[str, FindingExposure], partition: Path
) -> dict[str, FindingAttribution]:
    """Per fingerprint, what the dashboard groups findings by: the staff member who
    delivered a session finding's session, and the payer of the finding's claim (its
    policy's payer_name), else of the client's policies when they name a single payer.
    A partition table that cannot be read leaves that part out (logged): the findings
    are still stored."""
    from metaudit.results.digest import FindingAttribution
    from metaudit.source.snapshot import PartitionError, read_partition_columns

    def columns(table: str, *names: str, among: set[str] | None = None) -> list[tuple[str, ...]]:
        """The rows of a few text columns of a partition table (rows with a gap left out);
        ``among``: only those whose first column is one of these (the findings' records,
        not every session of the practice turned into Python objects)."""
        try:
            frame = read_partition_columns(partition, table, list(names))
        except PartitionError as exc:
            log.warning("%s; the dashboard's staff or payers of the findings are left out", exc)
            return []
        if among is not None:
            frame = frame.loc[frame[names[0]].isin(list(among)).fillna(False).to_numpy(bool)]
        return [
            row
            for row in zip(*(frame[name].tolist() for name in names), strict=True)
            if all(isinstance(value, str) for value in row)
        ]

    if not findings:
        return {}
    sessions = {f.entity_id for f in findings if f.entity_type == "session"}
    claims = {money.claim_id for money in exposure.values() if money.claim_id}
    staff: dict[str, str] = {}
    if sessions:
        staff = {k: v for k, v in columns("sessions", "session_id", "staff_id", among=sessions)}
    policy_of_claim: dict[str, str] = {}
    if claims:
        policy_of_claim = {
            k: v for k, v in columns("claims", "claim_id", "policy_id", among=claims)
        }
    payer_of_policy: dict[str, str] = {}
    client_payers: dict[str, set[str]] = {}
    for policy, client, payer_name in columns(
        "insurance_policies", "policy_id", "client_id", "payer_name"
    ):
        payer_of_policy[policy] = payer_name
        client_payers.setdefault(client, set()).add(payer_name)
    out: dict[str, FindingAttribution] = {}
    for finding in findings:
        claim = exposure[finding.fingerprint].claim_id if finding.fingerprint in exposure else None
        payer = payer_of_policy.get(policy_of_claim.get(claim, "")) if claim else None
        if payer is None and finding.client_id is not None:
            names = client_payers.get(finding.client_id, set())
            payer = next(iter(names)) if len(names) == 1 else None
        staff_id = staff.get(finding.entity_id) if finding.entity_type == "session" else None
        if payer is not None or staff_id is not None:
            out[finding.fingerprint] = FindingAttribution(staff_id=staff_id, payer=payer)
    return out


def stored_exposure(out_dir: Path, partition: Path) -> dict[str, FindingExposure]:
    """The exposure of a practice's findings as the results store keeps it, by
    fingerprint: read from ``exposure.jsonl`` in its results folder (empty when there is
    none), each with the claim its record is (claim lines through the partition's
    claim_lines)."""
    from metaudit.check.exposure import claim_of_record, read_exposure
    from metaudit.results.digest import FindingExposure
    from metaudit.source.snapshot import PartitionError, read_partition_columns

    path = out_dir / "exposure.jsonl"
    if not path.exists():
        log.warning("%s is missing: the findings are stored without their exposure", path)
        return {}
    rows = read_exposure(path)
    claim_of_line: dict[str, str] = {}
    # The lines the findings name (a line's own id, or a data-quality row's of claim_lines).
    named = {row["entity_id"] for row in rows if row["entity_type"] == "claim_line"} | {
        row["entity_id"].partition(":")[2] for row in rows if row["entity_type"] == "row"
    }
    if named:
        try:
            lines = read_partition_columns(partition, "claim_lines", ["line_id", "claim_id"])
        except PartitionError as exc:
            # The money is all in exposure.jsonl; only the claims of line findings (for the
            # email's fix-before-billing block) are lost, so the findings are still stored.
            log.warning("%s; findings on claim lines are stored without their claim", exc)
        else:
            lines = lines.loc[lines["line_id"].isin(list(named)).fillna(False).to_numpy(bool)]
            claim_of_line = {
                line: claim
                for line, claim in zip(
                    lines["line_id"].tolist(), lines["claim_id"].tolist(), strict=True
                )
                if isinstance(line, str) and isinstance(claim, str)
            }
    return {
        row["fingerprint"]: FindingExposure(
            lines=row["lines"],
            fix_before_billing=row["fix_before_billing"],
            in_flight=row["in_flight"],
            recoupment_risk=row["recoupment_risk"],
            claim_id=claim_of_record(row["entity_type"], row["entity_id"], claim_of_line),
        )
        for row in rows
    }


def notify_practice(
    store_url: str,
    run_id: str,
    persisted: Mapping[str, Any],
    *,
    api_key: str | None = None,
    host: str | None = None,
    resend: bool = False,
    config: str | None = None,
) -> dict[str, Any]:
    """Deliver the practice's morning email of the as-of date, once (:mod:`metaudit.mail`).

    The content is the practice's digest from the results store (new, still open,
    resolved, due soon), with links to the run in the Airflow UI and to the
    practice's packets page. With no ``api_key`` the email is written to the
    outbox folder as an .eml file; with one it goes through SendGrid (``host``
    replaces the API address), and the outbox record keeps it from going twice
    unless ``resend``. Returns the delivery's ids and paths.
    """
    from metaudit import mail
    from metaudit.mail.content import packets_url
    from metaudit.results import session
    from metaudit.spec.settings import Settings

    practice_id = str(persisted["practice_id"])
    as_of = date.fromisoformat(str(persisted["as_of"]))
    settings = Settings.load(config)
    mail_config = mail.load_mail_config(settings)
    with session(store_url) as store:
        digest = store.digest(practice_id, as_of)
    base = airflow_base_url(settings, mail_config)
    digest = replace(
        digest,
        run_url=run_url(base, run_id),
        packets_url=packets_url(digest, mail_config.packets_base_url or base),
    )
    result = mail.notify_practice(
        digest,
        mail_config,
        api_key=api_key,
        host=host,
        outbox_dir=outbox_dir(),
        resend=resend,
        run_id=run_id,
    )
    log.info(
        "practice %s as of %s: email %s (%s)",
        practice_id,
        as_of,
        result.status,
        result.eml_path or result.record_path,
    )
    return result.to_dict()


def build_packets(
    persisted: Mapping[str, Any],
    *,
    key: str | None = None,
    signing_key: str | None = None,
    demo: bool = False,
    rebuild: bool = False,
    config: str | None = None,
    typed: TypedSource | None = None,
    view: AuditView | None = None,
    frames: Sequence[Frame] | None = None,
    store_url: str | None = None,
) -> dict[str, Any]:
    """Build the practice's audit packets of the as-of date (:mod:`metaudit.packets`): one per
    client with activity and the practice's month packet, from the practice's partition
    and the evidence its validate stage wrote (GX is not run again).

    ``key`` signs them (else METAUDIT_PACKET_KEY; without either only ``demo`` builds,
    with the published demo key), and ``signing_key``, the Ed25519 private key, for
    auditors (else METAUDIT_PACKET_SIGNING_KEY). A client whose evidence did not change keeps its
    packet in force (the same file for tonight's date), unless ``rebuild``; the
    ``packets.retention`` setting is applied at the end. ``typed``: the practice's
    partition when the caller has read it already; ``view`` and ``frames``: its as-of
    view and derived frames when the caller's check made them. With ``store_url``, the
    findings' acceptances covering the date (the results store's) go into the packets
    beside the findings. Returns counts and paths.
    """
    from metaudit.packets import build_practice_packets
    from metaudit.source.snapshot import read_partition

    practice_id = str(persisted["practice_id"])
    as_of = date.fromisoformat(str(persisted["as_of"]))
    acceptances = None
    if store_url is not None:
        from metaudit.results import session

        with session(store_url) as store:
            acceptances = store.acceptances(practice_id, as_of)
    if typed is None:
        typed = read_partition(Path(persisted["partition"]), practice_id)
    return build_practice_packets(
        None,
        practice_id,
        as_of,
        audit_dir=Path(persisted["out_dir"]),
        key=key,
        signing_key=signing_key,
        demo=demo,
        rebuild=rebuild,
        config=config,
        typed=typed,
        view=view,
        frames=frames,
        acceptances=acceptances,
    )


def finish_run(
    store_url: str,
    run_id: str,
    *,
    extracted_ok: bool,
    api_key: str | None = None,
    host: str | None = None,
) -> str:
    """Store the run-level findings that name no practice (when this run's extract wrote
    them), mark the run finished, post the admin alerts still pending (with a SendGrid
    ``api_key``), and return a per-practice summary; raise PracticesFailedError naming
    the practices that did not finish."""
    from metaudit.results import session
    from metaudit.spec.findings import read_findings

    skip_final_collection()

    with session(store_url) as store:
        if store.run(run_id) is None:
            raise RunNotPlannedError(
                f"run {run_id} never got past planning (see the plan task's log); "
                "no practice was audited"
            )
        outcome = store.run_outcome(run_id)
        orphans = None
        if extracted_ok:
            path = unattributed_path(outcome.as_of.isoformat())
            findings = read_findings(path)
            store.persist_practice(
                run_id, outcome.as_of, None, findings, results_dir=str(path.parent)
            )
            orphans = len(findings)
        store.finish_run(run_id, outcome.failed, orphans)
        stages = failed_stages(store, run_id, outcome.failed)
        rows = [
            r
            for r in store.practice_runs(outcome.as_of)
            if r["practice_id"] in outcome.practice_ids or r["practice_id"] is None
        ]
    summary = summarize(rows, run_id)
    if api_key:
        try:
            pending = resend_pending_alerts(store_url, outcome.as_of, api_key=api_key, host=host)
        except with_database_errors() as exc:
            # The run's own outcome must still be reported; the alerts stay in the outbox.
            log.exception("could not post the pending admin alerts")
            pending = [describe_error(exc)]
        if pending:
            summary += f"\n{len(pending)} admin alert mail(s) still pending in the outbox"
    log.info("run %s as of %s:\n%s", run_id, outcome.as_of, summary)
    retire_snapshots(outcome.as_of.isoformat(), keep_own=bool(outcome.failed))
    if outcome.failed:
        raise PracticesFailedError(run_id, outcome.failed, stages)
    return summary


def failed_stages(store: Any, run_id: str, failed: Sequence[str]) -> dict[str, str]:
    """Where each failed practice of the run failed: its task and the error's type (the
    type only: a foreign error's message may quote a record), from the run's alerts."""
    wanted = set(failed)
    stages: dict[str, str] = {}
    for alert in store.alerts(run_id):  # oldest first: the last failure wins
        practice_id = alert.get("practice_id")
        if practice_id in wanted:
            kind = str(alert.get("error") or "").split(":", 1)[0].strip() or "error"
            stages[practice_id] = f"{alert['task_id']} ({kind})"
    for practice_id in wanted - set(stages):
        stages[practice_id] = "no task of its own (it never ran: see the extract task's log)"
    return stages


def retire_snapshots(as_of: str, *, keep_own: bool, root: Path | None = None) -> list[Path]:
    """Remove the partitions of ``as_of`` (unless ``keep_own``) and every other date's
    partitions untouched for longer than :func:`snapshot_keep_days`; return what went."""
    import shutil

    base = root or data_dir() / "snapshots"
    cutoff = time.time() - snapshot_keep_days() * 86_400
    removed = []
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        own = folder.name == as_of
        if own and keep_own:
            log.info("partitions of %s kept for retries of the failed practices: %s", as_of, folder)
            continue
        if own or folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
                log.info("partitions removed (copies of health records): %s", folder)
            else:
                log.warning("partitions could not be removed: %s", folder)
    return removed


def summarize(rows: Sequence[Mapping[str, Any]], run_id: str | None = None) -> str:
    """A short per-practice summary of a run's status rows, for logs and the demo."""
    lines = []
    for row in sorted(rows, key=lambda r: (r["practice_id"] is None, r["practice_id"] or "")):
        name = row["practice_id"] or "(no practice)"
        if run_id is not None and row["run_id"] != run_id:
            lines.append(f"{name}: not audited by this run")
        elif row["status"] != "success":
            lines.append(f"{name}: FAILED: {row.get('error') or 'see the task log'}")
        else:
            lines.append(
                f"{name}: {row['findings']} findings ({row['critical']} critical, "
                f"{row['warning']} warning, {row['notice']} notice)"
            )
    return "\n".join(lines)


def _now() -> datetime:
    return datetime.now(UTC)
