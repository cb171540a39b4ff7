"""The answer to a records request: one signed packet with only the supporting documents.

A payer or an auditor asks a practice for the records behind some services: a list
of claims (all of one client), or a client and a range of service dates. The answer
is a zip under ``<packets_dir>/<practice_id>/requests/<request_id>.zip`` holding
``request.pdf``, read from its first page:

1. a cover letter: the practice's letterhead (name, NPI and address from the
   configuration's ``practices.<id>.letterhead``, the name and NPI defaulting to the
   source's practices table), the request's reference, and the services covered
   (each claim line, or each session of the range);
2. an index naming each document's page and why it is there;
3. only the documents that support those services (:func:`select_records` decides,
   record by record, with a reason, in or out);
4. the rule-by-rule compliance status of those services, and the findings on the
   records in the packet, by rule id;
5. the records considered and why each is in or out.

The packet is signed like every packet (``signing.sign_packet``: the manifest's HMAC
and, with the deployment's Ed25519 key, ``public_key.pem``, ``VERIFY.txt``,
``SHA256SUMS`` and the two ``.sig`` files); its manifest is of kind ``request`` and
adds the request (``request``: id, reference, claims, range, services). Everything
is read from the practice's typed records as of one date, through the same
material the client packets are made from (``build.prepare_material``).

What supports a service on date D (one rule each, in :func:`select_records`):

- the referral in force on D: dated on or before D and not expired on D (its
  ``expires_on``: valid_until, or the date plus the practice's validity days); of
  several in force, the latest;
- the intake: the latest intake form completed on or before D;
- the initial assessment and the latest reassessment on or before D;
- the plan of exercise in effect on D: started on or before D, not ended before D;
  of several, the latest started;
- the session notes of D (completed sessions);
- the progress reports sent within the request's period (first to last service date);
- the claims: those asked for (by claims), or those with a line in the range.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metaudit.check.derive import FAMILIES
from metaudit.check.outcomes import is_missing, rule_status
from metaudit.packets import records_pdf
from metaudit.packets.archive import zip_bytes
from metaudit.packets.content import (
    STATUS_LABELS,
    PracticeEvidence,
    PracticeMaterial,
    RecordDocument,
    Section,
    SuiteOutcomes,
    document_tables,
    suites_of,
    table_columns,
)
from metaudit.packets.errors import PacketError
from metaudit.packets.layout import Letterhead, letterhead_values
from metaudit.packets.signing import MANIFEST_NAME, sign_packet
from metaudit.paths import id_name, write_atomic
from metaudit.spec import rulebook
from metaudit.spec.findings import Finding, sort_findings

if TYPE_CHECKING:
    from metaudit.packets.keypair import SigningKey
    from metaudit.source.quality import TypedSource
    from metaudit.spec.settings import Settings

log = logging.getLogger(__name__)

KIND = "request"
PDF_NAME = "request.pdf"
REQUESTS_FOLDER = "requests"
REFERENCE_LENGTH = 200
# At most this many claims in one request (a request is an answer to a person, not a dump).
MAX_CLAIMS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class RequestError(PacketError):
    """A records request that cannot be answered as asked (names what is wrong)."""


# ---------------------------------------------------------------------------
# The request


@dataclass(frozen=True)
class RecordsRequest:
    """What was asked for: ``claim_ids`` (all of one client), or ``client_id`` with
    ``service_from`` and ``service_to`` (inclusive); ``reference`` is the requester's."""

    practice_id: str
    reference: str
    claim_ids: tuple[str, ...] = ()
    client_id: str | None = None
    service_from: date | None = None
    service_to: date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reference", check_reference(self.reference))
        if self.claim_ids:
            if self.client_id or self.service_from or self.service_to:
                raise RequestError(
                    "a request names either claims, or a client and a range of service dates, "
                    "not both"
                )
            claims = tuple(dict.fromkeys(c.strip() for c in self.claim_ids if c.strip()))
            if len(claims) > MAX_CLAIMS:
                raise RequestError(
                    f"a request names at most {MAX_CLAIMS} claims, not {len(claims)}"
                )
            object.__setattr__(self, "claim_ids", claims)
        if not self.claim_ids:
            if not self.client_id or self.service_from is None or self.service_to is None:
                raise RequestError(
                    "a request names claims, or a client with the first and last service date"
                )
            if self.service_from > self.service_to:
                raise RequestError(
                    f"the range of service dates is empty: {self.service_from.isoformat()} is "
                    f"after {self.service_to.isoformat()}"
                )
        for value, what in [(self.practice_id, "practice id"), (self.client_id, "client id")]:
            if value is not None and (not value or len(value) > 64 or _CONTROL.search(value)):
                raise RequestError(f"the {what} must be 1 to 64 printable characters")
        for claim in self.claim_ids:
            if len(claim) > 64 or _CONTROL.search(claim):
                raise RequestError("a claim id must be 1 to 64 printable characters")

    def describe(self) -> str:
        if self.claim_ids:
            return f"claims {', '.join(self.claim_ids)}"
        assert self.service_from is not None and self.service_to is not None
        return (
            f"client {self.client_id}, services from {self.service_from.isoformat()} to "
            f"{self.service_to.isoformat()}"
        )


def check_reference(text: str | None) -> str:
    """The request's reference as given (trimmed): 1 to 200 printable characters."""
    value = (text or "").strip()
    if not value:
        raise RequestError(
            "the request's reference is required (the requester's own, e.g. 'Payer X audit 123')"
        )
    if len(value) > REFERENCE_LENGTH:
        raise RequestError(
            f"the request's reference is {len(value)} characters long; at most {REFERENCE_LENGTH}"
        )
    if _CONTROL.search(value) or not value.isprintable():
        raise RequestError("the request's reference must be printable text on one line")
    return value


def parse_claim_ids(text: str) -> tuple[str, ...]:
    """Claim ids written as a list: separated by commas, blanks or line breaks."""
    return tuple(part for part in re.split(r"[\s,;]+", text or "") if part)


# ---------------------------------------------------------------------------
# Letterhead


def letterhead(settings: Settings, practice_id: str, practice: Mapping[str, Any]) -> Letterhead:
    """The practice's letterhead (``layout.letterhead_values``); the name and NPI default to
    the source's practices table (name, organization_npi). A missing address is no error:
    the letter says it is not configured."""
    values = letterhead_values(settings, practice_id)
    return Letterhead(
        name=values["name"] or _text(practice.get("name")) or practice_id,
        npi=values["npi"] or _text(practice.get("organization_npi")),
        address=values["address"],
    )


# ---------------------------------------------------------------------------
# Services and the records that support them


@dataclass(frozen=True)
class Service:
    """One requested service: a claim line, or (by range) a completed session without one."""

    day: date
    claim_id: str | None
    line_id: str | None
    line_no: Any
    cpt_code: str | None
    units: Any
    session_id: str | None = None


@dataclass(frozen=True)
class Decision:
    """Whether one record of the client goes into the packet, and why."""

    table: str
    record_id: str
    included: bool
    reason: str
    kind: str = ""  # what the document is called: "Referral", "Initial assessment" ...
    day: date | None = None  # the record's own date


@dataclass
class Selection:
    """The client, its requested services and every decision on its records."""

    client_id: str
    claim_ids: tuple[str, ...]
    services: list[Service]
    decisions: list[Decision] = field(default_factory=list)

    @property
    def dates(self) -> list[date]:
        return sorted({s.day for s in self.services})

    def included(self, table: str) -> list[Decision]:
        return [d for d in self.decisions if d.table == table and d.included]


def _day(value: Any) -> date | None:
    if is_missing(value):
        return None
    return pd.Timestamp(value).date()


def _text(value: Any) -> str | None:
    return None if is_missing(value) or str(value).strip() == "" else str(value).strip()


def _dates(days: Iterable[date]) -> str:
    """Dates as the index shows them: a few by name, many as a range."""
    days = sorted(set(days))
    if len(days) <= 3:
        return ", ".join(d.isoformat() for d in days)
    return f"{len(days)} service dates from {days[0].isoformat()} to {days[-1].isoformat()}"


def resolve_services(material: PracticeMaterial, request: RecordsRequest) -> Selection:
    """The request's client and services in the practice's records, or RequestError
    naming what is wrong: unknown claims, claims of another practice or of several
    clients, a range without services."""
    claims = material.tables["claims"]
    practice = material.practice_id
    if request.claim_ids:
        known = {
            str(c): str(k) for c, k in zip(claims["claim_id"], claims["client_id"], strict=True)
        }
        unknown = [c for c in request.claim_ids if c not in known]
        if unknown:
            raise RequestError(
                f"claim(s) not among practice {practice}'s live claims as of "
                f"{material.view.as_of_iso}: {', '.join(unknown)} (unknown, of another practice, "
                "void, or later than the as-of date)"
            )
        clients = sorted({known[c] for c in request.claim_ids})
        if len(clients) > 1:
            by_client = {c: [k for k in request.claim_ids if known[k] == c] for c in clients}
            listing = "; ".join(f"client {c}: {', '.join(ks)}" for c, ks in by_client.items())
            raise RequestError(
                "a request's claims must all be of one client (one cover letter, one client's "
                f"records); these are of {len(clients)}: {listing}"
            )
        client_id = clients[0]
        wanted = set(request.claim_ids)
        services = [
            _service(row)
            for row in material.rows("claim_lines", client_id)
            if str(row["claim_id"]) in wanted and _day(row["service_date"]) is not None
        ]
        if not services:
            raise RequestError(
                f"claim(s) {', '.join(request.claim_ids)} have no dated lines: nothing to support"
            )
        return Selection(client_id, request.claim_ids, sorted(services, key=_service_order))
    client_id = str(request.client_id)
    if client_id not in set(material.client_ids()):
        raise RequestError(
            f"client {client_id} is not a client of practice {practice} as of "
            f"{material.view.as_of_iso}"
        )
    start, end = request.service_from, request.service_to
    assert start is not None and end is not None

    def within(value: Any) -> bool:
        day = _day(value)
        return day is not None and start <= day <= end

    services = [
        _service(r) for r in material.rows("claim_lines", client_id) if within(r["service_date"])
    ]
    billed = {s.day for s in services}
    for session in material.rows("sessions", client_id):
        held = _day(session["session_date"])
        # A completed session of the range that no claim line bills: a service all the same.
        if (
            held is not None
            and session["status"] == "completed"
            and within(held)
            and held not in billed
        ):
            services.append(Service(held, None, None, None, None, None, str(session["session_id"])))
    if not services:
        raise RequestError(
            f"client {client_id} has no services from {start.isoformat()} to {end.isoformat()} "
            f"(no claim line and no completed session in the range, as of "
            f"{material.view.as_of_iso})"
        )
    claim_ids = tuple(sorted({s.claim_id for s in services if s.claim_id}))
    return Selection(client_id, claim_ids, sorted(services, key=_service_order))


def _service(row: Mapping[str, Any]) -> Service:
    """A claim line as a service (its service date is known: the callers keep only those)."""
    day = _day(row["service_date"])
    assert day is not None
    return Service(
        day=day,
        claim_id=str(row["claim_id"]),
        line_id=_text(row["line_id"]),
        line_no=row["line_no"],
        cpt_code=_text(row["cpt_code"]),
        units=row["units"],
    )


def _service_order(service: Service) -> tuple[Any, ...]:
    return (service.day, service.claim_id or "", str(service.line_no), service.session_id or "")


def select_records(material: PracticeMaterial, selection: Selection) -> list[Decision]:
    """Every record of the client that could support the services, each in or out with
    its reason (the module's docstring states the rules); in document order."""
    client = selection.client_id
    days = selection.dates
    first, last = days[0], days[-1]
    decisions: list[Decision] = []

    # The referral in force on each date (the latest dated, of several).
    referrals = material.rows("referrals", client)
    chosen: dict[str, list[date]] = {}
    superseded: dict[str, list[date]] = {}
    for day in days:
        in_force = [
            r for r in referrals if _covers(_day(r["referral_date"]), _day(r["expires_on"]), day)
        ]
        if in_force:
            best = max(in_force, key=lambda r: (_day(r["referral_date"]), str(r["referral_id"])))
            chosen.setdefault(str(best["referral_id"]), []).append(day)
            for other in in_force:
                if other is not best:
                    superseded.setdefault(str(other["referral_id"]), []).append(day)
    for r in referrals:
        rid, dated, ends = str(r["referral_id"]), _day(r["referral_date"]), _day(r["expires_on"])
        if rid in chosen:
            reason = f"referral in force on {_dates(chosen[rid])}"
        elif rid in superseded:
            reason = (
                f"in force, but a later referral is the one in force on {_dates(superseded[rid])}"
            )
        else:
            span = f"dated {_iso(dated)}, expires {_iso(ends) or 'never'}"
            reason = f"not in force on any requested date ({span})"
        decisions.append(Decision("referrals", rid, rid in chosen, reason, "Referral", dated))

    # The intake: the latest completed on or before each date.
    decisions += _latest_before(
        material.rows("intake_forms", client),
        "intake_forms",
        "intake_id",
        "completed_on",
        days,
        "Intake",
        "the intake on record",
        "intake",
    )

    # The initial assessment and the latest reassessment before each date.
    assessments = material.rows("assessments", client)
    for kind, label in (("initial", "Initial assessment"), ("reassessment", "Reassessment")):
        decisions += _latest_before(
            [a for a in assessments if a["kind"] == kind],
            "assessments",
            "assessment_id",
            "assessed_on",
            days,
            label,
            f"the latest {label.lower()}",
            label.lower(),
        )
    for a in assessments:
        if a["kind"] not in ("initial", "reassessment"):
            decisions.append(
                Decision(
                    "assessments",
                    str(a["assessment_id"]),
                    False,
                    f"a {a['kind']} assessment: not among what supports a service",
                    "Assessment",
                    _day(a["assessed_on"]),
                )
            )

    # The plan of exercise in effect on each date (the latest started, of several).
    plans = material.rows("plans_of_exercise", client)
    in_effect: dict[str, list[date]] = {}
    for day in days:
        effective = [p for p in plans if _covers(_day(p["start_date"]), _day(p["end_date"]), day)]
        if effective:
            best = max(effective, key=lambda p: (_day(p["start_date"]), str(p["poe_id"])))
            in_effect.setdefault(str(best["poe_id"]), []).append(day)
    for p in plans:
        pid = str(p["poe_id"])
        start, end = _day(p["start_date"]), _day(p["end_date"])
        reason = (
            f"plan of exercise in effect on {_dates(in_effect[pid])}"
            if pid in in_effect
            else f"not the plan in effect on any requested date (from {_iso(start)} to "
            f"{_iso(end) or 'open'})"
        )
        decisions.append(
            Decision("plans_of_exercise", pid, pid in in_effect, reason, "Plan of exercise", start)
        )

    # The session notes of the dates.
    wanted = set(days)
    for s in material.rows("sessions", client):
        held = _day(s["session_date"])
        sid = str(s["session_id"])
        if held in wanted and s["status"] == "completed":
            decisions.append(
                Decision(
                    "sessions", sid, True, f"session note of {_iso(held)}", "Session note", held
                )
            )
        elif held in wanted:
            decisions.append(
                Decision(
                    "sessions",
                    sid,
                    False,
                    f"a {s['status']} session on {_iso(held)}: no service",
                    "Session note",
                    held,
                )
            )
        else:
            decisions.append(
                Decision(
                    "sessions",
                    sid,
                    False,
                    f"{_iso(held)} is not a requested service date",
                    "Session note",
                    held,
                )
            )

    # The progress reports sent in the period.
    for p in material.rows("progress_reports", client):
        sent = _day(p["sent_on"])
        inside = sent is not None and first <= sent <= last
        reason = (
            f"progress report sent on {_iso(sent)}, within the requested period"
            if inside
            else f"sent {('on ' + _iso(sent)) if sent else 'never'}: outside the requested period "
            f"{first.isoformat()} to {last.isoformat()}"
        )
        decisions.append(
            Decision(
                "progress_reports", str(p["report_id"]), inside, reason, "Progress report", sent
            )
        )

    # The claims asked for (or with a line in the range).
    requested = set(selection.claim_ids)
    for c in material.rows("claims", client):
        cid = str(c["claim_id"])
        decisions.append(
            Decision(
                "claims",
                cid,
                cid in requested,
                "claim requested" if cid in requested else "claim not requested",
                "Claim",
                _day(c["submitted_on"]),
            )
        )
    return decisions


def _covers(start: date | None, end: date | None, day: date) -> bool:
    return start is not None and start <= day and (end is None or day <= end)


def _iso(day: date | None) -> str:
    return day.isoformat() if day is not None else ""


def _latest_before(
    rows: Sequence[Mapping[str, Any]],
    table: str,
    key: str,
    dated: str,
    days: Sequence[date],
    label: str,
    what: str,
    noun: str,
) -> list[Decision]:
    """The latest of ``rows`` dated on or before each of ``days``: in, the others out."""
    chosen: dict[str, list[date]] = {}
    for day in days:
        before = [r for r in rows if (d := _day(r[dated])) is not None and d <= day]
        if before:
            best = max(before, key=lambda r: (_day(r[dated]), str(r[key])))
            chosen.setdefault(str(best[key]), []).append(day)
    out = []
    for r in rows:
        rid, dated_on = str(r[key]), _day(r[dated])
        if rid in chosen:
            reason = f"{what} on or before {_dates(chosen[rid])}"
        elif dated_on is None:
            reason = f"no date ({dated} is empty)"
        elif dated_on > days[-1]:
            reason = f"dated {dated_on.isoformat()}, after the last requested date"
        else:
            reason = f"dated {dated_on.isoformat()}: a later {noun} is the one before every date"
        out.append(Decision(table, rid, rid in chosen, reason, label, dated_on))
    return out


# ---------------------------------------------------------------------------
# The documents


# Each included record's document: its own table and the child tables that follow it
# (table, the child's column naming the parent).
_CHILDREN: dict[str, tuple[tuple[str, str], ...]] = {
    "referrals": (("referral_diagnoses", "referral_id"),),
    "intake_forms": (),
    "assessments": (("outcome_measures", "assessment_id"),),
    "plans_of_exercise": (("poe_exercises", "poe_id"), ("goals", "poe_id")),
    "sessions": (("session_exercises", "session_id"), ("session_services", "session_id")),
    "progress_reports": (),
    "claims": (
        ("claim_lines", "claim_id"),
        ("claim_diagnoses", "claim_id"),
        ("claim_linkage", "claim_id"),
    ),
}
_KEYS = {
    "referrals": "referral_id",
    "intake_forms": "intake_id",
    "assessments": "assessment_id",
    "plans_of_exercise": "poe_id",
    "sessions": "session_id",
    "progress_reports": "report_id",
    "claims": "claim_id",
}
# The order of the documents: as the request lists them.
DOCUMENT_ORDER = tuple(_KEYS)
_TITLES = {
    "referral_diagnoses": "Referral diagnoses",
    "outcome_measures": "Outcome measures",
    "poe_exercises": "Exercises of the plan",
    "goals": "Goals",
    "session_exercises": "Exercises logged",
    "session_services": "Minutes per CPT code",
    "claim_lines": "Claim lines",
    "claim_diagnoses": "Claim diagnoses",
    "claim_linkage": "CPT-to-ICD-10-CM linkage",
    "providers": "Referring provider",
}


def request_documents(
    material: PracticeMaterial, selection: Selection
) -> list[tuple[RecordDocument, str]]:
    """One document per included record (its row and its child rows), with its reason."""
    tables = document_tables(material)
    client = selection.client_id
    linkage = material.prepared["linkage_groups"].get(client, np.array([], dtype=np.intp))
    documents = []
    for table in DOCUMENT_ORDER:
        own = material.positions(table, client)
        own_ids = tables[table][_KEYS[table]].astype("string").fillna("").to_numpy(dtype=object)
        for decision in selection.included(table):
            sections = [
                _section(
                    f"{decision.kind} {decision.record_id}",
                    table,
                    tables,
                    own[own_ids[own] == decision.record_id],
                )
            ]
            for child, column in _CHILDREN[table]:
                where = linkage if child == "claim_linkage" else material.positions(child, client)
                ids = tables[child][column].astype("string").fillna("").to_numpy(dtype=object)
                sections.append(
                    _section(_TITLES[child], child, tables, where[ids[where] == decision.record_id])
                )
            if table == "referrals":
                sections.append(_providers(material, tables, decision.record_id, client))
            when = f" of {decision.day.isoformat()}" if decision.day and table == "sessions" else ""
            documents.append(
                (
                    RecordDocument(
                        slug=f"{table}-{decision.record_id}",
                        title=f"{decision.kind} {decision.record_id}{when}",
                        intro=f"Why it is here: {decision.reason}.",
                        sections=tuple(sections),
                    ),
                    decision.reason,
                )
            )
    return documents


def _section(
    title: str, table: str, tables: Mapping[str, pd.DataFrame], positions: np.ndarray
) -> Section:
    return Section(
        title=title,
        csv_name=f"{table}.csv",
        table=table,
        positions=np.asarray(positions, dtype=np.intp),
        columns=table_columns(table, tables[table]),
    )


def _providers(
    material: PracticeMaterial, tables: Mapping[str, pd.DataFrame], referral_id: str, client: str
) -> Section:
    named = {
        str(v)
        for r in material.rows("referrals", client)
        if str(r["referral_id"]) == referral_id
        for v in (r["provider_id"], r["supervising_provider_id"])
        if not is_missing(v)
    }
    where = material.positions("providers", client)
    ids = tables["providers"]["provider_id"].astype("string").fillna("").to_numpy(dtype=object)
    keep = np.array([ids[i] in named for i in where], dtype=bool)
    return _section(_TITLES["providers"], "providers", tables, where[keep] if len(where) else where)


# ---------------------------------------------------------------------------
# Compliance of the requested services

_ENTITY_TYPES = {
    "referrals": "referral",
    "assessments": "assessment",
    "sessions": "session",
    "claims": "claim",
}


def relevant_entities(material: PracticeMaterial, selection: Selection) -> set[tuple[str, str]]:
    """The (entity type, entity id) pairs of the findings and rules the request concerns:
    the client, its service dates, and every record in the packet with its lines."""
    client = selection.client_id
    found: set[tuple[str, str]] = {("client", client)}
    found |= {("client_date", f"{client}:{d.isoformat()}") for d in selection.dates}
    for decision in selection.decisions:
        if not decision.included:
            continue
        found.add(("row", f"{decision.table}:{decision.record_id}"))
        entity = _ENTITY_TYPES.get(decision.table)
        if entity:
            found.add((entity, decision.record_id))
    claims = set(selection.claim_ids)
    for line in material.rows("claim_lines", client):
        if str(line["claim_id"]) in claims:
            found.add(("claim_line", str(line["line_id"])))
            found.add(("row", f"claim_lines:{line['line_id']}"))
    for dx in material.rows("claim_diagnoses", client):
        if str(dx["claim_id"]) in claims:
            found.add(("claim_diagnosis", f"{dx['claim_id']}:{dx['pointer']}"))
            found.add(("row", f"claim_diagnoses:{dx['claim_id']}"))
    for claim in material.rows("claims", client):
        if str(claim["claim_id"]) in claims and not is_missing(claim["policy_id"]):
            found.add(("policy", str(claim["policy_id"])))
    return found


@dataclass(frozen=True)
class RequestRule:
    rule_id: str
    title: str
    severity: str
    status: str
    checked: int
    findings: int


def request_compliance(
    material: PracticeMaterial,
    evidence: PracticeEvidence,
    selection: Selection,
) -> tuple[list[RequestRule], list[Finding]]:
    """Each rule's status on the request's records (fail: a finding on one of them; pass:
    the rule checked one of them; not applicable: it checked none), and those findings."""
    relevant = relevant_entities(material, selection)
    client = selection.client_id
    findings = sort_findings(
        f
        for f in evidence.findings
        if f.client_id == client and (f.entity_type, f.entity_id) in relevant
    )
    suites = [
        s if s.entity_type else replace(s, entity_type=material.entity_type(s.frame))
        for s in suites_of(evidence, FAMILIES)
    ]
    outcomes = SuiteOutcomes(material, suites)
    failing: dict[tuple[str, str], list[str]] = {}
    for f in evidence.findings:
        if f.client_id == client:
            failing.setdefault((f.rule_id, f.entity_type), []).append(f.entity_id)
    checked: dict[str, set[str]] = {}
    for number, suite in enumerate(suites):
        suite_failing = {
            ref.rule_id: failing.get((ref.rule_id, suite.entity_type), [])
            for ref in suite.expectations
        }
        _, share = outcomes.client(number, client, suite_failing)
        for ref in suite.expectations:
            hits = {e for e in share[ref.position].evaluated if (suite.entity_type, e) in relevant}
            checked.setdefault(ref.rule_id, set()).update(hits)
    by_rule: dict[str, int] = {}
    for f in findings:
        by_rule[f.rule_id] = by_rule.get(f.rule_id, 0) + 1
    rules = [
        RequestRule(
            rule_id=rule.id,
            title=rule.title,
            severity=rule.severity,
            status=rule_status(
                rule.family, bool(by_rule.get(rule.id)), len(checked.get(rule.id, ()))
            ),
            checked=len(checked.get(rule.id, ())),
            findings=by_rule.get(rule.id, 0),
        )
        for rule in rulebook.RULES.values()
    ]
    return rules, findings


# ---------------------------------------------------------------------------
# The packet


def request_id(request: RecordsRequest, as_of: str) -> str:
    """A request's id: its as-of date and a digest of what was asked (the same request
    on the same date is the same packet, replaced when asked again)."""
    asked = json.dumps(
        {
            "practice": request.practice_id,
            "reference": request.reference,
            "claims": list(request.claim_ids),
            "client": request.client_id,
            "from": request.service_from.isoformat() if request.service_from else None,
            "to": request.service_to.isoformat() if request.service_to else None,
            "as_of": as_of,
        },
        sort_keys=True,
    )
    return f"{as_of}-{hashlib.sha256(asked.encode('utf-8')).hexdigest()[:12]}"


def request_packet_path(packets_dir: Path, practice_id: str, rid: str) -> Path:
    """``<packets_dir>/<practice_id>/requests/<request_id>.zip``."""
    return (
        packets_dir
        / id_name(practice_id, "practice id", PacketError)
        / REQUESTS_FOLDER
        / f"{id_name(rid, 'request id', PacketError)}.zip"
    )


def _letter(
    head: Letterhead,
    request: RecordsRequest,
    selection: Selection,
    as_of: str,
    rid: str,
    practice_id: str,
) -> str:
    address = head.address or (
        f"(address not configured: set practices.{practice_id}.letterhead.address)"
    )
    npi = head.npi or f"(NPI not on record: set practices.{practice_id}.letterhead.npi)"
    days = selection.dates
    return "\n".join(
        [
            head.name,
            f"NPI {npi}",
            *address.splitlines(),
            "",
            f"Your reference: {request.reference}",
            f"Our request id: {rid}; records as of {as_of}.",
            "",
            f"In answer to your request ({request.describe()}), this packet holds the records "
            f"of client {selection.client_id} that support the {len(selection.services)} "
            f"service(s) listed below, from {days[0].isoformat()} to {days[-1].isoformat()}: "
            "the referral in force on each date, the intake, the initial assessment and the "
            "latest reassessment before each date, the plan of exercise in effect, the session "
            "notes of those dates, the progress reports of the period and the claims. The index "
            "that follows names each document's page and why it is here; the last pages give the "
            "compliance status of these services rule by rule, and every record considered with "
            "why it is in or out.",
            "",
            "The packet is signed by the practice: VERIFY.txt in the same zip tells how to check "
            "it with OpenSSL alone.",
        ]
    )


def request_packet_files(
    material: PracticeMaterial,
    evidence: PracticeEvidence,
    request: RecordsRequest,
    head: Letterhead,
    *,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
) -> tuple[str, dict[str, bytes], Selection]:
    """The request's id, every file of its packet (manifest included) and the selection."""
    practice_id, as_of = material.practice_id, material.view.as_of_iso
    if request.practice_id != practice_id:
        raise RequestError(
            f"a request of practice {request.practice_id} given practice {practice_id}'s records"
        )
    selection = resolve_services(material, request)
    selection.decisions = select_records(material, selection)
    rid = request_id(request, as_of)
    documents = request_documents(material, selection)
    rules, findings = request_compliance(material, evidence, selection)

    tables = dict(document_tables(material))
    services = pd.DataFrame(
        [
            {
                "service_date": s.day.isoformat(),
                "claim_id": s.claim_id or "",
                "line_no": "" if is_missing(s.line_no) else s.line_no,
                "cpt_code": s.cpt_code or "",
                "units": "" if is_missing(s.units) else s.units,
                "session_id": s.session_id or "",
            }
            for s in selection.services
        ],
        columns=["service_date", "claim_id", "line_no", "cpt_code", "units", "session_id"],
    )
    rule_table = pd.DataFrame(
        [
            {
                "rule_id": r.rule_id,
                "title": r.title,
                "severity": r.severity,
                "status": STATUS_LABELS[r.status],
                "records_checked": r.checked,
                "findings": r.findings,
            }
            for r in rules
        ],
        columns=["rule_id", "title", "severity", "status", "records_checked", "findings"],
    )
    finding_table = pd.DataFrame(
        [
            {
                "rule_id": f.rule_id,
                "severity": f.severity,
                "entity_type": f.entity_type,
                "entity_id": f.entity_id,
                "message": f.message,
            }
            for f in findings
        ],
        columns=["rule_id", "severity", "entity_type", "entity_id", "message"],
    )
    decision_table = pd.DataFrame(
        [
            {
                "document": d.kind,
                "record_id": d.record_id,
                "dated": _iso(d.day),
                "in_packet": "in" if d.included else "out",
                "reason": d.reason,
            }
            for d in selection.decisions
        ],
        columns=["document", "record_id", "dated", "in_packet", "reason"],
    )
    extra = {
        "request_services": services,
        "request_rules": rule_table,
        "request_findings": finding_table,
        "request_records": decision_table,
    }
    tables.update(extra)

    def whole(title: str, name: str) -> Section:
        frame = extra[name]
        return Section(
            title, f"{name}.csv", name, np.arange(len(frame), dtype=np.intp), tuple(frame.columns)
        )

    letter = RecordDocument(
        slug="letter",
        title=f"Records request: {request.reference}",
        intro=_letter(head, request, selection, as_of, rid, practice_id),
        sections=(whole("Services covered", "request_services"),),
    )
    counts = {s: sum(1 for r in rules if r.status == s) for s in STATUS_LABELS}
    compliance = RecordDocument(
        slug="compliance",
        title="Compliance status of the requested services",
        intro=(
            "Each rule of the rulebook on the records of this packet, as the practice's audit "
            f"as of {as_of} judged them: Fail when it found the rule failing for one of them, "
            "Pass when the rule checked at least one of them and none failed, Not applicable "
            f"when it checked none. {counts['pass']} pass, {counts['fail']} fail, "
            f"{counts['not_applicable']} not applicable."
        ),
        sections=(
            whole("Rules", "request_rules"),
            whole("Findings on these records, by rule id", "request_findings"),
        ),
    )
    considered = RecordDocument(
        slug="considered",
        title="Records considered",
        intro=(
            "Every record of the client that could support a service, and why it is in the "
            "packet or not."
        ),
        sections=(whole("Records", "request_records"),),
    )
    all_documents = [letter, *[d for d, _ in documents], compliance, considered]
    notes = [
        "cover letter",
        *[reason for _, reason in documents],
        "the rules on these records",
        "why each record is in or out",
    ]
    cells = records_pdf.RecordsCells(tables)
    footer = (
        f"{head.name} (practice {practice_id}), client {selection.client_id}, records request "
        f"{rid}, records as of {as_of}"
    )
    frame = records_pdf.PdfFrame(
        index_title=f"Records request {rid}: client {selection.client_id}",
        index_about=(
            f"{head.name} (practice {practice_id}); your reference {request.reference}; "
            f"records as of {as_of}. Only the documents that support the services covered."
        ),
        footer=footer,
        info={
            "Title": f"Records request {rid}",
            "Subject": f"Records of practice {practice_id} in answer to a request, as of {as_of}",
        },
    )
    pdf = records_pdf.render_documents_pdf(frame, all_documents, cells, lead=1, notes=notes)
    files = {
        PDF_NAME: pdf,
        "records.csv": decision_table.to_csv(index=False).encode("utf-8"),
        "compliance.csv": rule_table.to_csv(index=False).encode("utf-8"),
    }
    asked = {
        "id": rid,
        "reference": request.reference,
        "claims": list(request.claim_ids),
        "service_from": request.service_from.isoformat() if request.service_from else None,
        "service_to": request.service_to.isoformat() if request.service_to else None,
        "services": [
            {
                "service_date": s.day.isoformat(),
                "claim_id": s.claim_id,
                "line_id": s.line_id,
                "cpt_code": s.cpt_code,
                "session_id": s.session_id,
            }
            for s in selection.services
        ],
        "documents": [
            {"table": d.table, "record_id": d.record_id, "reason": d.reason}
            for d in selection.decisions
            if d.included
        ],
    }
    signed = sign_packet(
        files,
        kind=KIND,
        as_of=as_of,
        practice_id=practice_id,
        client_id=selection.client_id,
        key=key,
        demo_key=demo_key,
        signer=signer,
        extra={"request": asked},
        what=(
            f"the answer of practice {practice_id} to records request {rid} "
            f"(your reference: {request.reference}), client {selection.client_id}, "
            f"records as of {as_of}"
        ),
    )
    return rid, signed, selection


@dataclass(frozen=True)
class RequestPacket:
    """A written request packet: where, its id, its client and its SHA-256."""

    path: Path
    request_id: str
    practice_id: str
    client_id: str
    as_of: str
    sha256: str
    size: int
    documents: int


def write_request_packet(
    material: PracticeMaterial,
    evidence: PracticeEvidence,
    request: RecordsRequest,
    head: Letterhead,
    packets_dir: Path,
    *,
    key: bytes,
    demo_key: bool = False,
    signer: SigningKey | None = None,
) -> RequestPacket:
    """Build the request's packet and write it whole (or not at all)."""
    rid, files, selection = request_packet_files(
        material, evidence, request, head, key=key, demo_key=demo_key, signer=signer
    )
    path = request_packet_path(packets_dir, material.practice_id, rid)
    data = zip_bytes(files, date.fromisoformat(material.view.as_of_iso))
    write_atomic(path, data)
    manifest = json.loads(files[MANIFEST_NAME])
    log.info(
        "records request %s of practice %s answered: %d document(s), %s",
        rid,
        material.practice_id,
        len(manifest["request"]["documents"]),
        path,
    )
    return RequestPacket(
        path=path,
        request_id=rid,
        practice_id=material.practice_id,
        client_id=selection.client_id,
        as_of=material.view.as_of_iso,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        documents=len(manifest["request"]["documents"]),
    )


def latest_audit_date(practice_id: str, results_root: Path | None = None) -> str | None:
    """The latest as-of date with the practice's audit results on disk, or None."""
    from metaudit.paths import results_dir

    root = results_dir("2000-01-01", practice_id, results_root).parent.parent
    if not root.is_dir():
        return None
    found = []
    for folder in root.iterdir():
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if (folder / id_name(practice_id, "practice id") / "findings.jsonl").is_file():
            found.append(day.isoformat())
    return max(found) if found else None


def build_request_packet(
    source: str | Path | None,
    request: RecordsRequest,
    as_of: date,
    *,
    packets_dir: Path | str | None = None,
    results_root: Path | None = None,
    key: bytes | str | None = None,
    signing_key: str | bytes | None = None,
    demo: bool = False,
    config: str | Path | None = None,
    typed: TypedSource | None = None,
) -> RequestPacket:
    """Answer ``request`` from the practice's records as of ``as_of``: the audit's own
    evidence of that date when its results are on disk (``<results>/<as_of>/<practice>``),
    else the check runs here for the practice. Signed as every packet (HMAC key: ``key``
    or METAUDIT_PACKET_KEY; Ed25519: ``signing_key`` or METAUDIT_PACKET_SIGNING_KEY)."""
    from metaudit.check.engine import check_typed, load_source
    from metaudit.packets.build import (
        evidence_from_audit_dir,
        evidence_from_check,
        prepare_material,
    )
    from metaudit.packets.keypair import resolve_signing_key
    from metaudit.packets.layout import packet_options
    from metaudit.packets.signing import resolve_key
    from metaudit.paths import results_dir
    from metaudit.spec.settings import Settings

    secret, demo_key = resolve_key(key, demo=demo)
    signer = resolve_signing_key(signing_key, demo=demo)
    demo_key = demo_key or (signer is not None and signer.demo)
    settings = Settings.load(Path(config) if config else None)
    options = packet_options(settings, packets_dir)
    practice_id = request.practice_id
    if typed is None:
        if source is None:
            raise PacketError("a records request needs a source or a typed source")
        typed = load_source(source, as_of, statement_timeout_s=settings.statement_timeout_s)
    day = as_of.isoformat()
    audit = results_dir(day, practice_id, results_root)
    if (audit / "findings.jsonl").is_file():
        evidence = evidence_from_audit_dir(audit, practice_id, day)
        material = prepare_material(typed, as_of, practice_id, settings)
    else:
        result = check_typed(typed, as_of, [practice_id], settings, keep_material=True)
        evidence = evidence_from_check(result, practice_id)
        material = prepare_material(
            typed, as_of, practice_id, settings, view=result.view, frames=result.frames
        )
    if not len(material.view.practices):
        raise RequestError(f"practice {practice_id} is not in the source")
    head = letterhead(settings, practice_id, material.practice)
    return write_request_packet(
        material,
        evidence,
        request,
        head,
        options.packets_dir,
        key=secret,
        demo_key=demo_key,
        signer=signer,
    )
