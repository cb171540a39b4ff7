"""Build, sign and store audit packets: per client and as-of date, per practice and month.

The content (``metaudit.packets.content``) and the file bytes
(``metaudit.packets.render``) are pure; this module adds the edges: reading the
check's evidence, the signing key, and atomic writes under

    <packets_dir>/<practice_id>/<as_of>/<client_id>.zip      one per client with activity
    <packets_dir>/<practice_id>/practice-<YYYY-MM>.zip       the month to date, per practice

Folder and file names hold ids only, never a name or a diagnosis.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from metaudit.check.derive import FAMILIES
from metaudit.errors import MetAuditError
from metaudit.packets import records_pdf, render
from metaudit.packets.archive import zip_bytes
from metaudit.packets.content import (
    DEFAULT_ACTIVITY_DAYS,
    FAIL,
    NOT_APPLICABLE,
    PASS,
    PracticeEvidence,
    PracticeMaterial,
    SuiteOutcomes,
    SuiteRef,
    audit_period,
    chart_series,
    clients_with_activity,
    cover_content,
    document_tables,
    evaluate_client,
    packet_id,
    practice_row,
    record_documents,
    suites_of,
)
from metaudit.packets.errors import PacketBuildError, PacketError
from metaudit.packets.evidence import (
    EVIDENCE_FORMAT,
    ClientEvidence,
    RecordHashes,
    client_evidence,
    practice_context,
)
from metaudit.packets.inforce import (
    InForce,
    index_dates,
    link_into_place,
    read_in_force,
    write_in_force,
)
from metaudit.packets.keypair import SigningKey, resolve_signing_key
from metaudit.packets.layout import (
    PACKETS_DIR_ENV as PACKETS_DIR_ENV,
)
from metaudit.packets.layout import (
    PacketOptions,
    client_packet_path,
    packet_options,
    practice_packet_path,
)
from metaudit.packets.retention import apply_retention
from metaudit.packets.signing import MANIFEST_NAME, resolve_key, sign_packet
from metaudit.paths import write_atomic
from metaudit.results.digest import FindingAcceptance
from metaudit.spec import rulebook
from metaudit.spec.findings import Finding, read_findings, sort_findings, to_csv

if TYPE_CHECKING:
    from metaudit.check.engine import CheckResult
    from metaudit.check.frames import Frame
    from metaudit.check.view import AuditView
    from metaudit.source.quality import TypedSource
    from metaudit.spec.settings import Settings

log = logging.getLogger(__name__)

# Errors one client's packet may raise without stopping the others' (each is
# logged with its traceback and reported in PacketBuildError at the end).
_CLIENT_ERRORS = (MetAuditError, ValueError, TypeError, LookupError, ArithmeticError, OSError)


# ---------------------------------------------------------------------------
# Evidence: from a check in memory, or from an audit's files on disk


def evidence_from_check(result: CheckResult, practice_id: str) -> PracticeEvidence:
    """The practice's findings and GX results from a check run in this process."""
    return PracticeEvidence(
        as_of=result.as_of,
        practice_id=practice_id,
        findings=tuple(f for f in result.findings if f.practice_id == practice_id),
        results={family: v.results for family, v in result.validations.items()},
    )


def evidence_from_audit_dir(audit_dir: Path, practice_id: str, as_of: str) -> PracticeEvidence:
    """The practice's findings and GX results as an audit wrote them
    (``findings.jsonl`` and ``validation/<family>.json``), without running GX again."""
    findings_path = audit_dir / "findings.jsonl"
    if not findings_path.is_file():
        raise PacketError(
            f"no findings for practice {practice_id} as of {as_of}: {findings_path} is missing"
        )
    findings = read_findings(findings_path)
    stale = sorted({f.as_of for f in findings} - {as_of})
    if stale:
        raise PacketError(f"{findings_path} holds findings as of {', '.join(stale)}, not {as_of}")
    results: dict[str, list[dict[str, Any]]] = {}
    for family in FAMILIES:
        path = audit_dir / "validation" / f"{family.lower()}.json"
        try:
            results[family] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PacketError(
                f"no validation results for family {family}: {path} is missing"
            ) from None
        except json.JSONDecodeError as exc:
            raise PacketError(f"validation results {path} are not valid JSON: {exc}") from exc
    return PracticeEvidence(
        as_of=as_of,
        practice_id=practice_id,
        findings=tuple(f for f in findings if f.practice_id == practice_id),
        results=results,
    )


def month_findings_from_results(audit_dir: Path, as_of: str) -> dict[str, list[Finding]]:
    """The practice's findings of every audit date of the month up to ``as_of``.

    The audit writes ``<results>/<as_of>/<practice>/findings.jsonl``; the
    practice's folder name is that of ``audit_dir``.
    """
    day = date.fromisoformat(as_of)
    results_root = audit_dir.parent.parent
    found: dict[str, list[Finding]] = {}
    for folder in sorted(results_root.glob(f"{day:%Y-%m}-*")):
        try:
            when = date.fromisoformat(folder.name)
        except ValueError:
            continue
        path = folder / audit_dir.name / "findings.jsonl"
        if when <= day and path.is_file():
            found[when.isoformat()] = read_findings(path)
    return found


# ---------------------------------------------------------------------------
# The practice's material


def prepare_material(
    typed: TypedSource,
    as_of: date,
    practice_id: str,
    settings: Settings,
    view: AuditView | None = None,
    frames: Sequence[Frame] | None = None,
    clients: Collection[str] | None = None,
) -> PracticeMaterial:
    """The practice's as-of view and derived frames (the derivations only; no GX); the
    ``view`` and ``frames`` given are used as they are (a check made them already).

    ``clients``: only these clients' packets will be built from it, so only their rows
    are prepared (a night that rebuilds 2 of 60 clients sorts, groups and formats 2
    clients' records, not the practice's). A client's packet shows its own records, the
    practice's reference tables and its own rows of the derived frames (every
    expectation is judged row by row), so it comes out the same either way."""
    from metaudit.check.derive.common import referral_expiry
    from metaudit.check.engine import derive_family

    if view is None:
        view = _practice_view(typed, as_of, practice_id, settings)
    if frames is None:
        frames = [f for family in FAMILIES for f in derive_family(family, view, settings)]
    if clients is not None:
        from metaudit.check.view import client_share, frames_share

        wanted = set(clients)
        view, frames = client_share(view, wanted), frames_share(frames, "client_id", wanted)
    return PracticeMaterial(view, frames, referral_expiry(view, settings))


def _practice_view(
    typed: TypedSource, as_of: date, practice_id: str, settings: Settings
) -> AuditView:
    """The practice's as-of view alone (what deciding "unchanged" needs)."""
    from metaudit.check.view import build_view

    view = build_view(
        typed, pd.Timestamp(as_of).normalize(), [practice_id], settings.default_timezone
    )
    if not len(view.practices):
        raise PacketError(f"practice {practice_id} is not in the source")
    return view


# ---------------------------------------------------------------------------
# One client's packet: pure


@dataclass(frozen=True)
class ClientPacketSummary:
    """What the practice packet lists about one client packet."""

    client_id: str
    packet: str  # path relative to the practice folder: <as_of>/<client_id>.zip
    size: int
    sha256: str
    rules_passed: int
    rules_failed: int
    rules_not_applicable: int
    critical: int
    warning: int
    notice: int
    state: str = "built"  # built, unchanged, kept


def client_packet_files(
    material: PracticeMaterial,
    evidence: PracticeEvidence,
    suites: Sequence[SuiteRef],
    client_id: str,
    *,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
    activity_days: int = DEFAULT_ACTIVITY_DAYS,
    provenance: Mapping[str, Any] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, bytes]:
    """Every file of a client's packet, manifest included (path -> bytes).

    ``provenance`` (from :func:`evidence_record`) goes into the manifest as ``evidence``
    and its ``records_unchanged_since`` onto the cover. ``timings``, when given,
    accumulates the seconds spent per step (content, cover_pdf, records, records_pdf,
    charts, validation, manifest), for bench/bench_packets.py.
    """
    step = _Steps(timings)
    with step("content"):
        outcomes, text, cells = _prepared(material, suites)
        records = material.client_rows(client_id)
        client_findings = sort_findings(f for f in evidence.findings if f.client_id == client_id)
        evaluation = evaluate_client(client_id, evidence, outcomes, client_findings)
        cover = cover_content(
            material, client_id, records, evaluation, client_findings, activity_days, demo_key
        )
        if provenance is not None:
            cover = replace(
                cover, records_unchanged_since=provenance.get("records_unchanged_since")
            )
        if signer is not None:
            cover = replace(cover, signing_key=_signing_line(signer))
        documents = record_documents(material, client_id)
        all_series = chart_series(records)
    who = f"Client {client_id}, practice {cover.practice_id}, records as of {cover.as_of}"
    with step("cover_pdf"):
        files: dict[str, bytes] = {"cover.pdf": render.render_cover_pdf(cover)}

    with step("records"):
        for document in documents:
            files[f"records/{document.slug}.html"] = render.render_document_html(
                document, who, text
            )
            for section in document.sections:
                files[f"records/{section.csv_name}"] = render.section_csv(section, text)
    charts = []
    with step("charts"):
        for number, series in enumerate(all_series, start=1):
            # Instrument names come from the source: the file is numbered, the image titled.
            path = f"charts/outcome-{number:02d}.svg"
            files[path] = render.render_chart_svg(render.chart_plot(series))
            charts.append((path, series))
    with step("records"):
        files["records/index.html"] = render.render_records_index_html(documents, charts, who)
    with step("records_pdf"):
        files["records.pdf"] = records_pdf.render_records_pdf(
            cover,
            packet_id(evidence.practice_id, evidence.as_of, client_id),
            documents,
            all_series,
            cells,
        )

    with step("validation"):
        files["validation/client_validation.json"] = render.render_json(evaluation.validation)
        files["validation/data_docs.html"] = render.render_data_docs_html(
            evaluation.validation, who
        )
        files["findings.csv"] = to_csv(client_findings).encode("utf-8")
        # Most clients have no accepted finding: no frame made for them.
        if _any_accepted(client_findings, evidence.acceptances):
            accepted = acceptances_table(client_findings, evidence.acceptances)
            files[ACCEPTANCES_FILE] = render.render_csv(accepted, list(ACCEPTANCE_COLUMNS))

    counts = evaluation.counts()
    severities = cover.findings_by_severity
    summary = {
        "rules_passed": counts[PASS],
        "rules_failed": counts[FAIL],
        "rules_not_applicable": counts[NOT_APPLICABLE],
        "findings": {s: int(severities.get(s, 0)) for s in rulebook.SEVERITY_ORDER},
        "audit_period": {"start": cover.period_start, "end": cover.period_end},
    }
    with step("manifest"):
        return sign_packet(
            files,
            kind="client",
            as_of=evidence.as_of,
            practice_id=evidence.practice_id,
            client_id=client_id,
            key=key,
            demo_key=demo_key,
            signer=signer,
            extra={"summary": summary, **({"evidence": dict(provenance)} if provenance else {})},
        )


def _signing_line(signer: SigningKey) -> str:
    """What a cover says of the Ed25519 key (its fingerprint, for the auditor to compare)."""
    public = signer.public
    return f"Ed25519 key {public.key_id}, fingerprint SHA-256 {public.grouped_fingerprint}"


def _prepared(
    material: PracticeMaterial, suites: Sequence[SuiteRef]
) -> tuple[SuiteOutcomes, render.RecordsText, records_pdf.RecordsCells]:
    """What every client packet of the practice shares, made for its first client:
    the rows each expectation evaluates and the record tables as text (HTML and CSV,
    and the records PDF's cells)."""
    kept = material.prepared.get("packets")
    # build_client_packets hands every client the same list of suites.
    if kept is None or kept[0] is not suites:
        tables = document_tables(material)
        kept = (
            suites,
            SuiteOutcomes(material, suites),
            render.RecordsText(tables),
            records_pdf.RecordsCells(tables),
        )
        material.prepared["packets"] = kept
    return kept[1], kept[2], kept[3]


class _Steps:
    """``with step("name"):`` adds the block's seconds to ``timings[name]`` (when kept)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self._name = ""
        self._started = 0.0

    def __call__(self, name: str) -> _Steps:
        self._name = name
        return self

    def __enter__(self) -> None:
        if self.timings is not None:
            self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.timings is not None:
            elapsed = time.perf_counter() - self._started
            self.timings[self._name] = self.timings.get(self._name, 0.0) + elapsed


def evidence_record(found: ClientEvidence, records_unchanged_since: str) -> dict[str, Any]:
    """The manifest's ``evidence``: the digests the packet was built from, and the first
    as-of date from which the client's records stood as they are in it."""
    return {
        "format": EVIDENCE_FORMAT,
        "digest": found.digest,
        "records_digest": found.records,
        "records_unchanged_since": records_unchanged_since,
    }


def _summary_of(
    client_id: str, relative: str, data: bytes, manifest: Mapping[str, Any], state: str
) -> ClientPacketSummary:
    import hashlib

    summary = manifest.get("summary", {})
    findings = summary.get("findings", {})
    return ClientPacketSummary(
        client_id=client_id,
        packet=relative,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        rules_passed=int(summary.get("rules_passed", 0)),
        rules_failed=int(summary.get("rules_failed", 0)),
        rules_not_applicable=int(summary.get("rules_not_applicable", 0)),
        critical=int(findings.get("critical", 0)),
        warning=int(findings.get("warning", 0)),
        notice=int(findings.get("notice", 0)),
        state=state,
    )


# ---------------------------------------------------------------------------
# Writing client packets


def build_client_packets(
    material: PracticeMaterial,
    evidence: PracticeEvidence,
    options: PacketOptions,
    *,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
    client_ids: Iterable[str] | None = None,
    rebuild: bool = False,
    settings: Settings | None = None,
    judge: PacketJudge | None = None,
) -> list[ClientPacketSummary]:
    """Write the packet of every client with activity (or of ``client_ids``).

    A client whose evidence (:mod:`metaudit.packets.evidence`) is the one of its
    packet in force (tonight's, or the latest earlier date's, as the signed index
    says) keeps that packet: the date folder gets the same file (state ``kept``),
    nothing is rendered. Otherwise, or with ``rebuild``, the packet is built; each
    is written whole or not at all, and the date's index is signed at the end.
    ``settings`` are those that judged the evidence (part of the digest). When some
    clients fail, the others are still written and PacketBuildError names the
    failed ones. ``judge``: the practice's :class:`PacketJudge` of the night when the
    caller made one already (it hashes every record once, and knows the packets
    ``keep_unchanged_packets`` kept); then the clients come from the judge's view, and
    ``material`` may hold only those to build (``prepare_material(clients=...)``).
    """
    if evidence.practice_id != material.practice_id:
        raise PacketError(
            f"evidence of practice {evidence.practice_id} given for practice {material.practice_id}"
        )
    if evidence.as_of != material.view.as_of_iso:
        raise PacketError(
            f"evidence as of {evidence.as_of} given for a view as of {material.view.as_of_iso}"
        )
    suites = [
        suite
        if suite.entity_type
        else replace(suite, entity_type=material.entity_type(suite.frame))
        for suite in suites_of(evidence, FAMILIES)
    ]
    if judge is None:
        judge = PacketJudge(material.view, evidence, options, key, demo_key, settings, signer)
    known = set(judge.client_ids())
    if client_ids is None:
        wanted = judge.active
    else:
        wanted = sorted(set(client_ids))
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise PacketError(
                f"client(s) not in practice {evidence.practice_id}: {', '.join(unknown)}"
            )
    practice_id, as_of = evidence.practice_id, evidence.as_of
    stamp = date.fromisoformat(as_of)
    summaries: list[ClientPacketSummary] = []
    entries: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for client_id in wanted:
        path = client_packet_path(options.packets_dir, practice_id, as_of, client_id)
        relative = f"{path.parent.name}/{path.name}"
        try:
            found = judge.evidence_of(client_id)
            candidates = judge.candidates(client_id)
            if not rebuild:
                kept = judge.kept.get(client_id) or _keep_in_force(
                    options.packets_dir, client_id, candidates, found, path
                )
                if kept is not None:
                    entries[client_id] = kept
                    summaries.append(_summary_of_entry(client_id, relative, kept, "kept"))
                    continue
            since = next(
                (
                    str(entry["records_unchanged_since"])
                    for _, entry in candidates
                    if entry.get("records") == found.records
                    and isinstance(entry.get("records_unchanged_since"), str)
                ),
                as_of,
            )
            files = client_packet_files(
                material,
                evidence,
                suites,
                client_id,
                key=key,
                demo_key=demo_key,
                signer=signer,
                activity_days=options.activity_days,
                provenance=evidence_record(found, since),
            )
            data = zip_bytes(files, stamp)
            state = "unchanged" if path.exists() and path.read_bytes() == data else "built"
            if state == "built":
                write_atomic(path, data)
            manifest = json.loads(files[MANIFEST_NAME])
            summary = _summary_of(client_id, relative, data, manifest, state)
            summaries.append(summary)
            entries[client_id] = _entry_of(summary, manifest, found, as_of, since)
        except _CLIENT_ERRORS as exc:
            log.exception("packet of client %s (practice %s) failed", client_id, practice_id)
            failed[client_id] = f"{type(exc).__name__}: {exc}"
    tonight = judge.tonight
    if client_ids is not None and tonight is not None:
        # A build of some clients leaves the others' entries of the night as they were.
        entries = {**{c: dict(e) for c, e in tonight.packets.items()}, **entries}
    if rebuild and client_ids is None and not failed:
        _remove_stale(options.packets_dir, evidence, {s.client_id for s in summaries})
    # A build of some clients keeps the others' entries of the night, judged from records
    # that may since have changed: such an index names no records it was judged from.
    source = judge.source if client_ids is None else None
    try:
        write_in_force(
            options.packets_dir,
            practice_id,
            as_of,
            entries,
            key=key,
            demo_key=demo_key,
            source=source,
        )
    except OSError as exc:
        log.exception("index of the packets in force of practice %s as of %s", practice_id, as_of)
        failed["(index of the packets in force)"] = f"{type(exc).__name__}: {exc}"
    if failed:
        raise PacketBuildError(practice_id, as_of, failed)
    return summaries


class PacketJudge:
    """Tonight's evidence of a practice's clients, and the packets in force it is
    compared with: from the as-of view alone (no derived frame, nothing rendered).
    Made once a practice and night: hashing the records is its cost, unless the
    practice's records are those an index of the packets in force was judged from
    (``partition``, the digest of the partition the view was made from, and the
    view's row counts: the view of a partition only gains rows as the date moves on,
    so the same counts are the same rows); then the records digests are the index's."""

    def __init__(
        self,
        view: AuditView,
        evidence: PracticeEvidence,
        options: PacketOptions,
        key: bytes,
        demo_key: bool,
        settings: Settings | None,
        signer: SigningKey | None = None,
        partition: str | None = None,
    ) -> None:
        practice_id, as_of = evidence.practice_id, evidence.as_of
        self.view = view
        # The clients a night packs: those with activity in the period.
        self.active = clients_with_activity(view, options.activity_days)
        self.tonight = _index(options.packets_dir, practice_id, as_of, key)
        self.earlier = _latest_index_before(options.packets_dir, practice_id, as_of, key)
        records: dict[str, Any] | None = None
        if partition is not None:
            rows = {name: len(frame) for name, frame in sorted(view.tables.items())}
            records = {"partition": partition, "view_rows": rows}
        known, reference = self._known_digests(records)
        # The view's own tables: the referrals' expiry a packet shows follows from them
        # and the settings, both in the digest. The active clients' rows are hashed at
        # once (but for those whose digest is known); any other client's when asked.
        self.record_hashes = RecordHashes(
            view.tables, key, clients=self.active, known=known, reference=reference
        )
        # What tonight's index says its entries' records digests were taken from.
        self.source = (
            None if records is None else {**records, "reference": self.record_hashes.reference}
        )
        # The suites as the evidence states them (what judged), before the packet fills in
        # entity types from the derived frames.
        self.context = practice_context(
            settings,
            practice_id,
            suites_of(evidence, FAMILIES),
            key=key,
            demo_key=demo_key,
            signer=signer,
            activity_days=options.activity_days,
            reference=self.record_hashes.reference,
        )
        self._findings: dict[str | None, list[Finding]] = {}
        for finding in evidence.findings:
            self._findings.setdefault(finding.client_id, []).append(finding)
        self._acceptances = evidence.acceptances
        self._evidence: dict[str, ClientEvidence] = {}
        # What keep_unchanged_packets found: the entries of the packets it put in place,
        # and the clients whose packets must be built.
        self.kept: dict[str, dict[str, Any]] = {}
        self.to_build: list[str] = []

    def _known_digests(
        self, records: Mapping[str, Any] | None
    ) -> tuple[dict[str, str], str | None]:
        """The records digests (and the reference tables' digest) of the index, tonight's
        or the latest earlier one, judged from these records; none when no index was."""
        if records is None:
            return {}, None
        for index in (i for i in (self.tonight, self.earlier) if i is not None):
            source = index.source
            if source is None or {name: source.get(name) for name in records} != records:
                continue
            reference = source.get("reference")
            if not isinstance(reference, str):
                continue
            known = {
                client: entry["records"]
                for client, entry in index.packets.items()
                if isinstance(entry.get("records"), str)
            }
            return known, reference
        return {}, None

    def client_ids(self) -> list[str]:
        """Every client of the practice in the view."""
        clients = self.view.tables["clients"]
        return sorted(str(c) for c in clients["client_id"].dropna().unique())

    def evidence_of(self, client_id: str) -> ClientEvidence:
        found = self._evidence.get(client_id)
        if found is None:
            findings = sort_findings(self._findings.get(client_id, ()))
            found = client_evidence(
                self.record_hashes.client(client_id),
                findings,
                self.context,
                acceptances=acceptance_rows(findings, self._acceptances),
            )
            self._evidence[client_id] = found
        return found

    def candidates(self, client_id: str) -> list[tuple[InForce, Mapping[str, Any]]]:
        """Tonight's own entry first (a rerun of the same night), then the latest earlier
        date's: the packets in force the evidence is compared with."""
        return [
            (index, index.packets[client_id])
            for index in (self.tonight, self.earlier)
            if index is not None and client_id in index.packets
        ]


def keep_unchanged_packets(
    view: AuditView,
    evidence: PracticeEvidence,
    options: PacketOptions,
    *,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
    settings: Settings | None = None,
    judge: PacketJudge | None = None,
) -> list[ClientPacketSummary] | None:
    """Put in place the packet in force of every client with activity whose evidence is
    tonight's (file intact), without deriving or rendering anything. When that is every
    client, sign the date's index and return their summaries; else None, and the
    ``judge`` (given, or made here) knows what was kept (``kept``) and which clients
    must be built (``to_build``) for build_client_packets."""
    practice_id, as_of = evidence.practice_id, evidence.as_of
    if judge is None:
        judge = PacketJudge(view, evidence, options, key, demo_key, settings, signer)
    wanted = judge.active
    kept = judge.kept
    for client_id in wanted:
        path = client_packet_path(options.packets_dir, practice_id, as_of, client_id)
        entry = _keep_in_force(
            options.packets_dir,
            client_id,
            judge.candidates(client_id),
            judge.evidence_of(client_id),
            path,
        )
        if entry is None:
            judge.to_build.append(client_id)
        else:
            kept[client_id] = entry
    if judge.to_build:
        return None
    write_in_force(
        options.packets_dir,
        practice_id,
        as_of,
        kept,
        key=key,
        demo_key=demo_key,
        source=judge.source,
    )
    summaries = []
    for client_id in wanted:
        path = client_packet_path(options.packets_dir, practice_id, as_of, client_id)
        relative = f"{path.parent.name}/{path.name}"
        summaries.append(_summary_of_entry(client_id, relative, kept[client_id], "kept"))
    return summaries


def _index(packets_dir: Path, practice_id: str, as_of: str, key: bytes) -> InForce | None:
    index, problem = read_in_force(packets_dir, practice_id, as_of, key)
    if problem:
        # Another key, or an edited index: its packets are rebuilt, not trusted.
        log.warning(
            "packets of practice %s: ignoring the index of %s: %s", practice_id, as_of, problem
        )
    return index


def _latest_index_before(
    packets_dir: Path, practice_id: str, as_of: str, key: bytes
) -> InForce | None:
    """The index of the latest earlier as-of date (the packets in force before tonight)."""
    earlier = [day for day in index_dates(packets_dir, practice_id) if day < as_of]
    return _index(packets_dir, practice_id, earlier[-1], key) if earlier else None


def _keep_in_force(
    packets_dir: Path,
    client_id: str,
    candidates: Sequence[tuple[InForce, Mapping[str, Any]]],
    found: ClientEvidence,
    path: Path,
) -> dict[str, Any] | None:
    """Put the packet in force at ``path`` when its evidence is tonight's, and return its
    entry; None when it must be built. The file must still be the one the signed index
    names (size and SHA-256: one read, no unzipping), else it is rebuilt."""
    import hashlib

    for index, entry in candidates:
        if entry.get("evidence") != found.digest:
            continue
        source = client_packet_path(packets_dir, index.practice_id, index.as_of, client_id)
        try:
            if source.is_symlink():
                # Only files the run wrote count; a link planted in the folder does not.
                raise ValueError("a symbolic link, not a packet file")
            if source.stat().st_size != entry.get("size"):
                raise ValueError("size differs from the index")
            if hashlib.sha256(source.read_bytes()).hexdigest() != entry.get("sha256"):
                raise ValueError("SHA-256 differs from the index")
        except (OSError, ValueError) as exc:
            log.warning("rebuilding %s: the packet in force at %s: %s", path, source, exc)
            continue
        link_into_place(source, path, sync=False)
        return dict(entry)
    return None


def _entry_of(
    summary: ClientPacketSummary,
    manifest: Mapping[str, Any],
    found: ClientEvidence,
    as_of: str,
    since: str,
) -> dict[str, Any]:
    """The index entry of a packet built tonight."""
    return {
        "built_as_of": as_of,
        "records_unchanged_since": since,
        "evidence": found.digest,
        "records": found.records,
        "manifest_signature": manifest["signature"],
        "sha256": summary.sha256,
        "size": summary.size,
        "summary": {
            name: getattr(summary, name)
            for name in (
                "rules_passed",
                "rules_failed",
                "rules_not_applicable",
                "critical",
                "warning",
                "notice",
            )
        },
    }


def _summary_of_entry(
    client_id: str, relative: str, entry: Mapping[str, Any], state: str
) -> ClientPacketSummary:
    counts = entry.get("summary", {}) or {}
    return ClientPacketSummary(
        client_id=client_id,
        packet=relative,
        size=int(entry["size"]),
        sha256=str(entry["sha256"]),
        rules_passed=int(counts.get("rules_passed", 0)),
        rules_failed=int(counts.get("rules_failed", 0)),
        rules_not_applicable=int(counts.get("rules_not_applicable", 0)),
        critical=int(counts.get("critical", 0)),
        warning=int(counts.get("warning", 0)),
        notice=int(counts.get("notice", 0)),
        state=state,
    )


def _remove_stale(packets_dir: Path, evidence: PracticeEvidence, current: set[str]) -> None:
    """After a full rebuild, drop packets of clients that no longer have activity that day."""
    folder = client_packet_path(packets_dir, evidence.practice_id, evidence.as_of, "x").parent
    wanted = {
        client_packet_path(packets_dir, evidence.practice_id, evidence.as_of, c).name
        for c in current
    }
    for stale in sorted(folder.glob("*.zip")):
        if stale.name not in wanted:
            log.info("removing stale packet %s", stale)
            stale.unlink()


# ---------------------------------------------------------------------------
# The practice packet (per practice and month)

MONTH_EXTRA_FIELDS = ("first_seen", "last_seen", "open_on_as_of")
# The accepted findings of a packet, beside findings.csv (whose columns the contract
# fixes): each finding's key and record, and its acceptance.
ACCEPTANCES_FILE = "acceptances.csv"
ACCEPTANCE_COLUMNS = (
    "fingerprint",
    "rule_id",
    "severity",
    "entity_type",
    "entity_id",
    "client_id",
    "accepted_by",
    "accepted_at",
    "until",
    "reason",
)


def acceptances_table(
    findings: Iterable[Finding], acceptances: Mapping[str, FindingAcceptance]
) -> pd.DataFrame:
    """The accepted findings among ``findings`` (sorted as the packet lists them), each
    with who accepted it, when, until when and why."""
    return pd.DataFrame(acceptance_rows(findings, acceptances), columns=list(ACCEPTANCE_COLUMNS))


def acceptance_rows(
    findings: Iterable[Finding], acceptances: Mapping[str, FindingAcceptance]
) -> list[dict[str, Any]]:
    """:func:`acceptances_table`'s rows (every value a string or None), without the
    frame: the evidence of each client of a practice needs only these."""
    if not acceptances:
        return []
    return [
        {
            "fingerprint": f.fingerprint,
            "rule_id": f.rule_id,
            "severity": f.severity,
            "entity_type": f.entity_type,
            "entity_id": f.entity_id,
            "client_id": f.client_id,
            "accepted_by": acceptance.accepted_by,
            "accepted_at": acceptance.accepted_at,
            "until": acceptance.until,
            "reason": acceptance.reason,
        }
        for f in sort_findings(findings)
        if (acceptance := acceptances.get(f.fingerprint)) is not None
    ]


def _any_accepted(
    findings: Iterable[Finding], acceptances: Mapping[str, FindingAcceptance]
) -> bool:
    """Whether :func:`acceptances_table` of ``findings`` has a row (without making it)."""
    return bool(acceptances) and any(acceptances.get(f.fingerprint) is not None for f in findings)


def month_findings_table(month: Mapping[str, Sequence[Finding]], as_of: str) -> pd.DataFrame:
    """Every finding seen on an audit date of the month: its latest form, first and
    last date seen, and whether it is still open on the as-of date."""
    latest: dict[tuple[str | None, str], Finding] = {}
    first: dict[tuple[str | None, str], str] = {}
    last: dict[tuple[str | None, str], str] = {}
    for day in sorted(month):
        for finding in month[day]:
            key = (finding.practice_id, finding.fingerprint)
            first.setdefault(key, day)
            last[key] = day
            latest[key] = finding
    rows = []
    for finding in sort_findings(latest.values()):
        key = (finding.practice_id, finding.fingerprint)
        row = finding.to_dict()
        row.update(first_seen=first[key], last_seen=last[key], open_on_as_of=last[key] == as_of)
        rows.append(row)
    from metaudit.spec.findings import FIELDS

    table = pd.DataFrame(rows, columns=[*FIELDS, *MONTH_EXTRA_FIELDS])
    # A month without findings gives an empty table of object columns; indexing by an
    # empty object column would select columns, not rows.
    return table.astype({"open_on_as_of": bool})


def practice_packet_files(
    practice: Mapping[str, Any],
    evidence: PracticeEvidence,
    summaries: Sequence[ClientPacketSummary],
    month: Mapping[str, Sequence[Finding]],
    *,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
    activity_days: int = DEFAULT_ACTIVITY_DAYS,
) -> dict[str, bytes]:
    """Every file of the practice's packet for the month of the as-of date."""
    as_of = evidence.as_of
    period = date.fromisoformat(as_of).strftime("%Y-%m")
    month = dict(month)
    month[as_of] = list(evidence.findings)
    month = {day: rows for day, rows in month.items() if day[:7] == period and day <= as_of}
    clients = pd.DataFrame(
        [asdict(s) for s in sorted(summaries, key=lambda s: s.client_id)],
        columns=[f for f in ClientPacketSummary.__dataclass_fields__ if f != "state"],
    )
    month_table = month_findings_table(month, as_of)
    open_counts = month_table.loc[month_table["open_on_as_of"]].groupby("rule_id").size()
    seen_counts = month_table.groupby("rule_id").size()
    rule_counts = pd.DataFrame(
        [
            {
                "rule_id": rule.id,
                "title": rule.title,
                "severity": rule.severity,
                "open_on_as_of": int(open_counts.get(rule.id, 0)),
                "seen_in_month": int(seen_counts.get(rule.id, 0)),
            }
            for rule in rulebook.RULES.values()
        ]
    )
    cover = render.PracticeCover(
        practice_id=evidence.practice_id,
        practice_name=str(practice.get("name") or evidence.practice_id),
        period=period,
        as_of=as_of,
        clients=clients,
        rule_counts=rule_counts,
        demo_key=demo_key,
        signing_key=_signing_line(signer) if signer is not None else None,
    )
    start, end = audit_period(pd.Timestamp(as_of), activity_days)
    files = {
        "cover.pdf": render.render_practice_cover_pdf(cover),
        "clients.csv": render.render_csv(clients, list(clients.columns)),
        "rules.csv": render.render_csv(rule_counts, list(rule_counts.columns)),
        "findings.csv": to_csv(sort_findings(evidence.findings)).encode("utf-8"),
        "findings_month.csv": render.render_csv(month_table, list(month_table.columns)),
    }
    accepted = acceptances_table(evidence.findings, evidence.acceptances)
    if len(accepted):
        files[ACCEPTANCES_FILE] = render.render_csv(accepted, list(ACCEPTANCE_COLUMNS))
    return sign_packet(
        files,
        kind="practice",
        as_of=as_of,
        practice_id=evidence.practice_id,
        client_id=None,
        key=key,
        demo_key=demo_key,
        signer=signer,
        extra={
            "period": period,
            "audit_dates": sorted(month),
            "client_packets": len(clients),
            "client_audit_period": {
                "start": start.strftime("%Y-%m-%d"),
                "end": end.strftime("%Y-%m-%d"),
            },
        },
    )


def build_practice_packet(
    practice: Mapping[str, Any],
    evidence: PracticeEvidence,
    summaries: Sequence[ClientPacketSummary],
    options: PacketOptions,
    month: Mapping[str, Sequence[Finding]] | None = None,
    *,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
) -> Path:
    """Write the practice's month-to-date packet (replaced by each later as-of date of the
    month). ``practice``: its row of the practices table (the packet names it)."""
    files = practice_packet_files(
        practice,
        evidence,
        summaries,
        month or {},
        key=key,
        demo_key=demo_key,
        signer=signer,
        activity_days=options.activity_days,
    )
    path = practice_packet_path(options.packets_dir, evidence.practice_id, evidence.as_of)
    data = zip_bytes(files, date.fromisoformat(evidence.as_of))
    if not (path.exists() and path.read_bytes() == data):
        write_atomic(path, data)
    return path


# ---------------------------------------------------------------------------
# One call for the DAG and the command line


def write_practice_packets(
    typed: TypedSource,
    evidence: PracticeEvidence,
    month: Mapping[str, Sequence[Finding]],
    options: PacketOptions,
    settings: Settings,
    *,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
    rebuild: bool = False,
    client_ids: Iterable[str] | None = None,
    view: AuditView | None = None,
    frames: Sequence[Frame] | None = None,
) -> tuple[list[ClientPacketSummary], Path, list[str]]:
    """A practice's night of packets from its evidence: the client packets (kept when
    unchanged, else built), the month packet, then the retention. Returns the client
    summaries, the month packet's path and the as-of dates the retention removed.

    ``view`` and ``frames``: the practice's as-of view and derived frames when the
    caller's check made them already (the nightly run's), so they are not made again."""
    practice_id = evidence.practice_id
    as_of = date.fromisoformat(evidence.as_of)
    client_ids = None if client_ids is None else sorted(set(client_ids))
    kept = None
    if view is None:
        view = _practice_view(typed, as_of, practice_id, settings)
    judge = PacketJudge(
        view, evidence, options, key, demo_key, settings, signer, partition=typed.digest
    )
    if not rebuild and client_ids is None:
        # An unchanged night decides from the as-of view alone: no derivation, no render.
        kept = keep_unchanged_packets(
            view,
            evidence,
            options,
            key=key,
            demo_key=demo_key,
            signer=signer,
            settings=settings,
            judge=judge,
        )
    practice = practice_row(view)
    if kept is not None:
        # The month packet names the practice and lists the client packets: nothing more.
        summaries = kept
    else:
        # Only the clients the judge could not keep are built: only their rows prepared.
        clients = judge.to_build if not rebuild and client_ids is None else client_ids
        material = prepare_material(
            typed, as_of, practice_id, settings, view, frames, clients=clients
        )
        summaries = build_client_packets(
            material,
            evidence,
            options,
            key=key,
            demo_key=demo_key,
            signer=signer,
            client_ids=client_ids,
            rebuild=rebuild,
            settings=settings,
            judge=judge,
        )
    practice_path = build_practice_packet(
        practice, evidence, summaries, options, month, key=key, demo_key=demo_key, signer=signer
    )
    removed: list[str] = []
    if client_ids is None:
        # After the night's packets are in place: the packet in force is tonight's.
        removed = apply_retention(
            options.packets_dir, practice_id, options.retention, keep=[evidence.as_of]
        )
    return summaries, practice_path, removed


def build_practice_packets(
    source: str | Path | None,
    practice_id: str,
    as_of: date,
    *,
    audit_dir: Path | str | None = None,
    packets_dir: Path | str | None = None,
    key: bytes | str | None = None,
    signing_key: str | bytes | None = None,
    demo: bool = False,
    rebuild: bool = False,
    client_ids: Iterable[str] | None = None,
    config: str | Path | None = None,
    typed: TypedSource | None = None,
    view: AuditView | None = None,
    frames: Sequence[Frame] | None = None,
    acceptances: Mapping[str, FindingAcceptance] | None = None,
) -> dict[str, Any]:
    """Build a practice's client packets and its month packet for one as-of date.

    ``acceptances``: the practice's acceptances of findings (the results store's); those
    covering the date go into the packets beside the findings (``acceptances.csv``).

    ``view`` and ``frames``: the practice's as-of view and derived frames, when a check
    of this process made them (see :func:`write_practice_packets`).

    With ``audit_dir`` (the folder where the audit wrote ``findings.jsonl`` and
    ``validation/``), the audit's own evidence is packed and GX is not run
    again; without it, the check runs here once for the practice. ``typed`` (the
    typed source, or the practice's partition of it) saves reading ``source``,
    which may then be None. ``key``
    defaults to ``METAUDIT_PACKET_KEY``; without a key only ``demo`` builds
    (with the published demo key). ``signing_key``, the Ed25519 private key (PEM) that
    signs for auditors, defaults to ``METAUDIT_PACKET_SIGNING_KEY`` (the demo's
    published one in the demo; without one the packets carry the HMAC alone).
    Returns a JSON-ready summary (fit for XCom).
    """
    from metaudit.check.engine import check_typed, load_source
    from metaudit.spec.settings import Settings

    secret, demo_key = resolve_key(key, demo=demo)
    signer = resolve_signing_key(signing_key, demo=demo)
    if signer is None:
        log.warning(
            "packets of practice %s are signed with the HMAC only: auditors cannot check "
            "them without the deployment's secret; set the packet signing key (docs/packets.md)",
            practice_id,
        )
    # A packet any part of whose signature anybody can make is a demo packet.
    demo_key = demo_key or (signer is not None and signer.demo)
    settings = Settings.load(Path(config) if config else None)
    options = packet_options(settings, packets_dir)
    day_iso = as_of.isoformat()
    if typed is None:
        if source is None:
            raise PacketError("build_practice_packets needs a source or a typed source")
        typed = load_source(source, as_of)
    if audit_dir is not None:
        folder = Path(audit_dir)
        evidence = evidence_from_audit_dir(folder, practice_id, day_iso)
        month = month_findings_from_results(folder, day_iso)
    else:
        result = check_typed(typed, as_of, [practice_id], settings)
        evidence = evidence_from_check(result, practice_id)
        month = {day_iso: list(evidence.findings)}
    if acceptances:
        evidence = replace(
            evidence,
            acceptances={fp: a for fp, a in acceptances.items() if a.covers(day_iso)},
        )
    summaries, practice_path, removed = write_practice_packets(
        typed,
        evidence,
        month,
        options,
        settings,
        key=secret,
        demo_key=demo_key,
        signer=signer,
        rebuild=rebuild,
        client_ids=client_ids,
        view=view,
        frames=frames,
    )
    states: dict[str, int] = {}
    for summary in summaries:
        states[summary.state] = states.get(summary.state, 0) + 1
    folder_path = client_packet_path(options.packets_dir, practice_id, day_iso, "x").parent
    log.info(
        "packets of practice %s as of %s: %d client packet(s) %s in %s; practice packet %s",
        practice_id,
        day_iso,
        len(summaries),
        states,
        folder_path,
        practice_path,
    )
    return {
        "practice_id": practice_id,
        "as_of": day_iso,
        "client_packets": len(summaries),
        "states": states,
        "folder": str(folder_path),
        "practice_packet": str(practice_path),
        "demo_key": demo_key,
        "ed25519_key_id": signer.public.key_id if signer is not None else None,
        "retention": options.retention,
        "dates_removed": removed,
    }


def read_manifest(path: Path) -> dict[str, Any]:
    """A packet's manifest as stored (not verified: use verify_packet for that)."""
    from metaudit.packets.verify import MAX_MANIFEST_BYTES

    with zipfile.ZipFile(path) as archive:
        if archive.getinfo(MANIFEST_NAME).file_size > MAX_MANIFEST_BYTES:
            raise PacketError(f"{path}: {MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
        with archive.open(MANIFEST_NAME) as handle:
            data: dict[str, Any] = json.loads(handle.read(MAX_MANIFEST_BYTES + 1))
    return data
