"""What goes into an audit packet, as plain data: no files, no rendering.

Everything here is a pure function of the practice's as-of view, its derived
frames, and the practice-level evidence of the check (findings and Great
Expectations results). The renderers turn these objects into PDF, HTML, CSV and
SVG; the builder zips and signs them.

Definitions used by the packets (docs/packets.md explains them to readers):

- **Audit period** of a packet as of D: the ``activity_days`` days ending on D
  (default 31, so a packet built on a month's last day covers the whole month).
- **Activity**: a client has activity in the period when the view holds, dated
  within it, a completed session, a line of a live claim (its service date) or
  an assessment. Every client with activity gets a packet.
- **Rule status** of a client, per rule: ``fail`` when the check found the
  rule failing for one of the client's records; ``pass`` when at least one of
  the client's records was checked by the rule (a row of the rule's derived
  frame that the rule's expectation evaluates, i.e. does not skip as not
  applicable) and none failed; ``not_applicable`` otherwise. The data-quality
  rules (DQ) check every row of the source, so they pass or fail for every
  client. Which rows an expectation evaluates and which of a rule's
  expectations a failing record missed is ``metaudit.check.outcomes``'s to say.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metaudit.check.frames import Frame
from metaudit.check.outcomes import FAIL as FAIL
from metaudit.check.outcomes import NOT_APPLICABLE as NOT_APPLICABLE
from metaudit.check.outcomes import PASS as PASS
from metaudit.check.outcomes import ExpectationOutcome, outcomes_of, rule_status
from metaudit.check.outcomes import evaluated_mask as evaluated_mask
from metaudit.check.outcomes import is_missing as _missing
from metaudit.check.outcomes import row_fails as row_fails
from metaudit.packets.errors import PacketError
from metaudit.packets.layout import DEFAULT_ACTIVITY_DAYS as DEFAULT_ACTIVITY_DAYS
from metaudit.results.digest import FindingAcceptance
from metaudit.source.rows import SMALL_FRAME, positions_by
from metaudit.spec import rulebook
from metaudit.spec.contract import HIGHER_IS_BETTER, LOWER_IS_BETTER, TABLES
from metaudit.spec.findings import Finding

if TYPE_CHECKING:
    from metaudit.check.view import AuditView

# How many findings' sentences the cover shows for one rule; findings.csv has all.
COVER_MESSAGES_PER_RULE = 3

STATUS_LABELS = {PASS: "Pass", FAIL: "Fail", NOT_APPLICABLE: "Not applicable"}


# ---------------------------------------------------------------------------
# The practice's evidence and records


@dataclass(frozen=True)
class PracticeEvidence:
    """What the practice's check produced for one as-of date.

    ``findings`` are the practice's findings (any order); ``results`` maps a
    family (``REF``) to its Great Expectations results, one suite result per
    derived frame, as ``FamilyValidation.results`` holds them. ``acceptances``: the
    findings' acceptances covering the as-of date, by fingerprint (the results store's;
    the packets list them beside the findings).
    """

    as_of: str
    practice_id: str
    findings: tuple[Finding, ...]
    results: Mapping[str, Sequence[Mapping[str, Any]]]
    acceptances: Mapping[str, FindingAcceptance] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectationRef:
    """One expectation of a suite as the practice-level results name it."""

    family: str
    frame: str
    position: int
    config: Mapping[str, Any]
    practice_result: Mapping[str, Any]
    practice_success: bool

    @property
    def rule_id(self) -> str:
        return str(self.config.get("meta", {}).get("rule_id"))

    @property
    def part(self) -> str | None:
        part = self.config.get("meta", {}).get("part")
        return str(part) if part else None


@dataclass(frozen=True)
class SuiteRef:
    """One frame's suite result at practice level, with its expectations."""

    family: str
    frame: str
    entity_type: str
    suite_name: str
    practice_rows: int | None
    gx_version: str | None
    expectations: tuple[ExpectationRef, ...]


def suites_of(evidence: PracticeEvidence, families: Iterable[str]) -> list[SuiteRef]:
    """The practice-level suite results, in family and frame order; every family must be there."""
    suites: list[SuiteRef] = []
    for family in families:
        if family not in evidence.results:
            raise PacketError(
                f"no Great Expectations results for family {family} of practice "
                f"{evidence.practice_id} as of {evidence.as_of}: run the check first"
            )
        for result in evidence.results[family]:
            meta = result.get("meta", {}) or {}
            ours = meta.get("metaudit", {}) or {}
            frame = str(ours.get("frame") or str(result.get("suite_name", "")).split(".")[-1])
            refs = []
            for position, entry in enumerate(result.get("results", []) or []):
                config = entry.get("expectation_config", {}) or {}
                refs.append(
                    ExpectationRef(
                        family=family,
                        frame=str(config.get("meta", {}).get("frame") or frame),
                        position=position,
                        config=config,
                        practice_result=entry.get("result", {}) or {},
                        practice_success=bool(entry.get("success")),
                    )
                )
            # GX reports failed expectations first; the suite's own order reads better.
            refs.sort(key=lambda ref: (ref.rule_id, _index(ref.config), ref.position))
            suites.append(
                SuiteRef(
                    family=family,
                    frame=frame,
                    entity_type=str(ours.get("entity_type") or ""),
                    suite_name=str(result.get("suite_name") or frame),
                    practice_rows=ours.get("rows"),
                    gx_version=meta.get("great_expectations_version"),
                    expectations=tuple(refs),
                )
            )
    return suites


def _index(config: Mapping[str, Any]) -> int:
    value = config.get("meta", {}).get("metaudit_index")
    return int(value) if isinstance(value, int) else 0


def practice_row(view: AuditView) -> dict[str, Any]:
    """The practice's row of the practices table (empty when the view has none)."""
    practices = view.practices
    return practices.iloc[0].to_dict() if len(practices) else {}


class PracticeMaterial:
    """A practice's as-of view and derived frames, prepared once for all its clients.

    Every table is sorted once in document order and its rows grouped by client
    once, so a client's records are its group's positions, already in order
    (slicing and sorting 24 tables per client cost clients x rows). ``rows``
    gives a client's rows as plain dicts, converted once per table; ``prepared``
    keeps what the renderers and the evaluation derive once per practice.
    """

    def __init__(
        self, view: AuditView, frames: Sequence[Frame], referral_expiry: pd.Series
    ) -> None:
        self.view = view
        self.as_of: pd.Timestamp = view.as_of
        tables = dict(view.tables)
        referrals = tables["referrals"].copy()
        referrals["expires_on"] = referral_expiry.reindex(referrals.index)
        tables["referrals"] = referrals
        # Sorting the practice's table and then taking a client's rows gives the
        # order sorting the client's rows would (the sort is stable).
        self.tables = {name: _sorted(name, table) for name, table in tables.items()}
        self.frames = {frame.name: frame for frame in frames}
        self._table_groups = {
            name: positions_by(frame, "client_id")
            for name, frame in self.tables.items()
            if "client_id" in frame
        }
        self._frame_groups = {
            name: positions_by(frame.data, "client_id") for name, frame in self.frames.items()
        }
        self._by_id = {
            name: positions_by(self.tables[name], column)
            for name, column in (("staff", "staff_id"), ("providers", "provider_id"))
        }
        self._columns: dict[str, _Columns] = {}
        self.prepared: dict[str, Any] = {}
        self.practice = practice_row(view)

    @property
    def practice_id(self) -> str:
        return str(self.practice.get("practice_id", ""))

    def client_ids(self) -> list[str]:
        """Every client of the practice in the view."""
        clients = self.tables["clients"]
        return sorted(str(c) for c in clients["client_id"].dropna().unique())

    def record_tables(self) -> list[str]:
        """The tables of a client's records: those with a client id, the staff and providers."""
        return [name for name in self._table_groups if name != "practices"] + [
            "staff",
            "providers",
        ]

    def positions(self, name: str, client_id: str) -> np.ndarray:
        """The client's rows of a table (positions in ``tables[name]``, in document
        order); for the staff and providers, those the client's records name."""
        if name == "staff":
            named = _ids(
                [r["staff_id"] for r in self.rows("sessions", client_id)],
                [r["staff_id"] for r in self.rows("assessments", client_id)],
                [r["rendering_staff_id"] for r in self.rows("claims", client_id)],
            )
        elif name == "providers":
            named = _ids(
                [r["provider_id"] for r in self.rows("referrals", client_id)],
                [r["supervising_provider_id"] for r in self.rows("referrals", client_id)],
                [r["provider_id"] for r in self.rows("progress_reports", client_id)],
            )
        else:
            return self._table_groups[name].get(client_id, _EMPTY)
        at = self._by_id[name]
        found = [at[i] for i in named if i in at]
        return np.sort(np.concatenate(found)) if found else _EMPTY

    def rows(self, name: str, client_id: str) -> list[Row]:
        """The client's rows of a table as mappings of plain values (NA, NaT for missing)."""
        columns = self._columns.get(name)
        if columns is None:
            columns = self._columns[name] = _Columns(self.tables[name])
        return [Row(columns, i) for i in self.positions(name, client_id).tolist()]

    def client_rows(self, client_id: str) -> ClientRows:
        """The client's records as rows, table by table, taken when first asked for."""
        return ClientRows(self, client_id)

    def records(self, client_id: str) -> dict[str, pd.DataFrame]:
        """The client's records in the view, by contract table, plus the staff and
        providers its records name (sorted for stable output)."""
        return {
            name: self.tables[name].iloc[self.positions(name, client_id)].reset_index(drop=True)
            for name in self.record_tables()
        }

    def client_frames(self, client_id: str) -> dict[str, pd.DataFrame]:
        """The client's rows of every derived frame, by frame name."""
        return {
            name: self.frames[name].data.iloc[groups.get(client_id, _EMPTY)]
            for name, groups in self._frame_groups.items()
        }

    def frame_positions(self, frame_name: str, client_id: str) -> np.ndarray:
        """The client's rows of a derived frame (positions, in the frame's order)."""
        return self._frame_groups.get(frame_name, {}).get(client_id, _EMPTY)

    def entity_type(self, frame_name: str) -> str:
        frame = self.frames.get(frame_name)
        return frame.entity_type if frame is not None else ""


class _Columns(dict[str, list[Any]]):
    """A table's columns as lists of plain values, each converted when first read:
    column by column (a frame's to_dict costs several times more), and only the
    columns a packet reads (a table's signing times, a distinct time per row, cost
    more to box than the rest of its columns)."""

    def __init__(self, table: pd.DataFrame) -> None:
        super().__init__()
        self.table = table
        self.names: tuple[str, ...] = tuple(table.columns)

    def __missing__(self, column: str) -> list[Any]:
        if column not in self.table.columns:
            raise KeyError(column)
        values = self[column] = _plain_values(self.table[column])
        return values


def _plain_values(column: pd.Series) -> list[Any]:
    """A column's values as Python objects (NA, NaT for missing), as ``astype(object)``
    gives them; a datetime column's distinct values boxed once each."""
    if isinstance(column.dtype, pd.DatetimeTZDtype) or column.dtype.kind == "M":
        codes, uniques = pd.factorize(column)
        boxed = [*pd.Series(uniques, dtype=column.dtype).astype(object).tolist(), pd.NaT]
        return [boxed[code] for code in codes.tolist()]
    values: list[Any] = column.astype(object).tolist()
    return values


class Row(Mapping[str, Any]):
    """One row of a practice's table (``PracticeMaterial.rows``): its values by column."""

    __slots__ = ("_at", "_columns")

    def __init__(self, columns: _Columns, at: int) -> None:
        self._columns = columns
        self._at = at

    def __getitem__(self, column: str) -> Any:
        return self._columns[column][self._at]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns.names)

    def __len__(self) -> int:
        return len(self._columns.names)


class ClientRows(Mapping[str, list[Row]]):
    """One client's records as rows (``PracticeMaterial.rows``), by table, on demand."""

    def __init__(self, material: PracticeMaterial, client_id: str) -> None:
        self._material = material
        self._client_id = client_id
        self._names = material.record_tables()
        self._taken: dict[str, list[Row]] = {}

    def __getitem__(self, name: str) -> list[Row]:
        if name not in self._taken:
            if name not in self._names:
                raise KeyError(name)
            self._taken[name] = self._material.rows(name, self._client_id)
        return self._taken[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


_EMPTY = np.array([], dtype=np.intp)

# Order of rows in the documents: by their own date, then id.
_ROW_ORDER: dict[str, tuple[str, ...]] = {
    "insurance_policies": ("effective_from", "policy_id"),
    "eligibility_checks": ("checked_on", "check_id"),
    "authorizations": ("start_date", "authorization_id"),
    "rehab_discharges": ("discharge_date", "discharge_id"),
    "conditions": ("condition_id",),
    "referrals": ("referral_date", "referral_id"),
    "referral_diagnoses": ("referral_id", "seq"),
    "intake_forms": ("completed_on", "intake_id"),
    "assessments": ("assessed_on", "assessment_id"),
    "outcome_measures": ("assessment_id", "instrument", "measure_id"),
    "plans_of_exercise": ("start_date", "poe_id"),
    "poe_exercises": ("poe_id",),
    "goals": ("poe_id", "term", "goal_id"),
    "sessions": ("session_date", "session_id"),
    "session_exercises": ("session_id",),
    "session_services": ("session_id", "cpt_code"),
    "progress_reports": ("sent_on", "report_id"),
    "claims": ("claim_id",),
    "claim_diagnoses": ("claim_id", "pointer"),
    "claim_lines": ("claim_id", "line_no", "line_id"),
    "staff": ("staff_id",),
    "providers": ("provider_id",),
    "clients": ("client_id",),
}


def _sorted(name: str, rows: pd.DataFrame) -> pd.DataFrame:
    order = [c for c in _ROW_ORDER.get(name, ()) if c in rows.columns]
    if order and len(rows) > 1:
        if len(rows) <= SMALL_FRAME:
            # A few clients' rows: Python's sort of the keys costs a fifth of pandas'.
            positions = _stable_order([rows[column].tolist() for column in order])
            if positions is not None:
                rows = rows.take(positions)
        else:
            rows = rows.sort_values(order, kind="stable", na_position="last")
    return rows.reset_index(drop=True)


def _stable_order(keys: Sequence[list[Any]]) -> list[int] | None:
    """The positions of the rows in the order ``sort_values(kind="stable",
    na_position="last")`` gives them (missing values last in each key), or None when
    they are in order already."""

    def key(position: int) -> tuple[tuple[int, Any], ...]:
        return tuple(
            (1, 0) if _missing(column[position]) else (0, column[position]) for column in keys
        )

    count = len(keys[0])
    positions = sorted(range(count), key=key)
    return None if positions == list(range(count)) else positions


def _ids(*columns: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for column in columns:
        found.update(str(v) for v in column if not _missing(v))
    return found


# ---------------------------------------------------------------------------
# Activity


def audit_period(as_of: pd.Timestamp, activity_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last day of the audit period ending on ``as_of`` (both included)."""
    if activity_days < 1:
        raise PacketError(f"activity_days must be at least 1, got {activity_days}")
    day = pd.Timestamp(as_of).normalize()
    return day - pd.Timedelta(days=activity_days - 1), day


def clients_with_activity(view: AuditView, activity_days: int = DEFAULT_ACTIVITY_DAYS) -> list[str]:
    """Clients with a completed session, a live claim line or an assessment in the period.

    Only clients whose own row is in the view count (a record whose client row
    is missing belongs to no practice, so to no packet).
    """
    start, end = audit_period(view.as_of, activity_days)
    tables = view.tables

    def within(frame: pd.DataFrame, column: str) -> set[str]:
        dates = frame[column]
        keep = ((dates >= start) & (dates <= end)).fillna(False).astype(bool)
        return {str(c) for c in frame.loc[keep, "client_id"].dropna().unique()}

    sessions = tables["sessions"]
    completed = sessions[sessions["status"].eq("completed").fillna(False).astype(bool)]
    # The view holds only live claims, and only lines of claims in the view.
    active = (
        within(completed, "session_date")
        | within(tables["claim_lines"], "service_date")
        | within(tables["assessments"], "assessed_on")
    )
    known = {str(c) for c in tables["clients"]["client_id"].dropna().unique()}
    return sorted(active & known)


# ---------------------------------------------------------------------------
# Rule statuses and the client's share of the validation results


@dataclass(frozen=True)
class RuleStatus:
    """One rule's status for one client, as the cover shows it."""

    rule_id: str
    family: str
    title: str
    severity: str
    status: str
    messages: tuple[str, ...] = ()
    checked: int = 0

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]


@dataclass
class ClientEvaluation:
    """A client's rule statuses and its Great Expectations report (JSON-ready)."""

    statuses: list[RuleStatus]
    validation: dict[str, Any]

    def counts(self) -> dict[str, int]:
        counts = {PASS: 0, FAIL: 0, NOT_APPLICABLE: 0}
        for status in self.statuses:
            counts[status.status] += 1
        return counts


class SuiteOutcomes:
    """The rows each expectation of the practice's suites evaluates, found once per
    practice; a client's outcomes are then its share (``client``)."""

    def __init__(self, material: PracticeMaterial, suites: Sequence[SuiteRef]) -> None:
        self.material = material
        self.suites = list(suites)
        self._plans: list[tuple[list[str], dict[int, np.ndarray]] | None] = []
        for suite in self.suites:
            frame = material.frames.get(suite.frame)
            if frame is None or not len(frame.data):
                self._plans.append(None)
                continue
            data = frame.data
            ids = data["entity_id"].astype(str).tolist()
            masks = {
                ref.position: evaluated_mask(ref.config, data).to_numpy(dtype=bool)
                for ref in suite.expectations
            }
            self._plans.append((ids, masks))

    def client(
        self, number: int, client_id: str, failing: Mapping[str, Collection[str]]
    ) -> tuple[int, dict[int, ExpectationOutcome]]:
        """The client's rows of suite ``number`` and each expectation's outcome on them."""
        suite = self.suites[number]
        expectations = [(ref.position, ref.config) for ref in suite.expectations]
        plan = self._plans[number]
        if plan is None:
            return 0, outcomes_of(
                expectations, {p: [] for p, _ in expectations}, failing, (), lambda e: {}
            )
        ids, masks = plan
        where = self.material.frame_positions(suite.frame, client_id)
        evaluated = {
            position: [ids[i] for i in where[mask[where]]] for position, mask in masks.items()
        }
        members = {ids[i]: int(i) for i in where}
        data = self.material.frames[suite.frame].data

        def row_of(entity: str) -> Mapping[str, Any]:
            return dict(data.iloc[members[entity]].to_dict())

        return len(where), outcomes_of(expectations, evaluated, failing, members, row_of)


def evaluate_client(
    client_id: str,
    evidence: PracticeEvidence,
    outcomes: SuiteOutcomes,
    client_findings: Sequence[Finding],
) -> ClientEvaluation:
    """The client's rule statuses and its share of the practice's validation results.

    Great Expectations is not run again per client: each expectation's client
    rows are the client's rows of the frame it validated, the rows it
    evaluated follow its skipping of missing values (found once per practice,
    ``SuiteOutcomes``), and its failing rows are the client's findings of its
    rule on that frame.
    """
    failing: dict[tuple[str, str], list[str]] = {}
    for finding in client_findings:
        failing.setdefault((finding.rule_id, finding.entity_type), []).append(finding.entity_id)

    suites = outcomes.suites
    checked: dict[str, set[str]] = {}
    suite_reports: list[dict[str, Any]] = []
    for number, suite in enumerate(suites):
        # The findings name their entity type, not their frame: a suite takes its
        # frame's entity type's findings of each of its rules.
        suite_failing = {
            ref.rule_id: failing.get((ref.rule_id, suite.entity_type), [])
            for ref in suite.expectations
        }
        client_rows, share = outcomes.client(number, client_id, suite_failing)
        for ref in suite.expectations:
            checked.setdefault(ref.rule_id, set()).update(share[ref.position].evaluated)
        suite_reports.append(_suite_report(suite, client_rows, share))

    by_rule: dict[str, list[Finding]] = {}
    for finding in client_findings:
        by_rule.setdefault(finding.rule_id, []).append(finding)
    statuses = []
    for rule in rulebook.RULES.values():
        found = sorted(by_rule.get(rule.id, []), key=lambda f: (f.entity_id, f.entity_type))
        count = len(checked.get(rule.id, set()))
        statuses.append(
            RuleStatus(
                rule_id=rule.id,
                family=rule.family,
                title=rule.title,
                severity=rule.severity,
                status=rule_status(rule.family, bool(found), count),
                messages=tuple(f.message for f in found),
                checked=count,
            )
        )

    evaluated = [r for s in suite_reports for r in s["results"] if r["result"]["evaluated_count"]]
    successful = sum(1 for r in evaluated if r["success"])
    validation = {
        "about": (
            "The Great Expectations results of the practice's audit on this as-of date, "
            "restricted to this client's rows: element_count counts the client's rows of the "
            "frame, evaluated_count those the expectation checked (the others are not "
            "applicable), unexpected_index_list names the failing records."
        ),
        "as_of": evidence.as_of,
        "practice_id": evidence.practice_id,
        "client_id": client_id,
        "great_expectations_version": next((s.gx_version for s in suites if s.gx_version), None),
        "success": all(r["success"] for s in suite_reports for r in s["results"]),
        "statistics": {
            "evaluated_expectations": len(evaluated),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(evaluated) - successful,
            "success_percent": _percent(successful, len(evaluated)),
        },
        "suites": suite_reports,
    }
    return ClientEvaluation(statuses=statuses, validation=validation)


def _suite_report(
    suite: SuiteRef, client_rows: int, outcomes: Mapping[int, ExpectationOutcome]
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for ref in suite.expectations:
        outcome = outcomes[ref.position]
        evaluated = len(outcome.evaluated)
        failed = list(outcome.unexpected)
        kwargs = {k: v for k, v in (ref.config.get("kwargs", {}) or {}).items() if k != "batch_id"}
        meta = {
            k: v for k, v in (ref.config.get("meta", {}) or {}).items() if k != "metaudit_index"
        }
        results.append(
            {
                "expectation_config": {
                    "type": ref.config.get("type"),
                    "kwargs": kwargs,
                    "meta": meta,
                },
                "success": not failed,
                "result": {
                    "element_count": client_rows,
                    "evaluated_count": evaluated,
                    "skipped_count": client_rows - evaluated,
                    "unexpected_count": len(failed),
                    "unexpected_percent": _percent(len(failed), evaluated),
                    "unexpected_index_list": failed,
                    "attribution": "rule" if outcome.by_rule else "expectation",
                },
                "practice_result": {
                    "success": ref.practice_success,
                    "element_count": ref.practice_result.get("element_count"),
                    "unexpected_count": ref.practice_result.get("unexpected_count"),
                },
            }
        )
    evaluated_results = [r for r in results if r["result"]["evaluated_count"]]
    successful = sum(1 for r in evaluated_results if r["success"])
    return {
        "suite_name": suite.suite_name,
        "family": suite.family,
        "frame": suite.frame,
        "entity_type": suite.entity_type,
        "client_rows": client_rows,
        "practice_rows": suite.practice_rows,
        "success": all(r["success"] for r in results),
        "statistics": {
            "evaluated_expectations": len(evaluated_results),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(evaluated_results) - successful,
            "success_percent": _percent(successful, len(evaluated_results)),
        },
        "results": results,
    }


def _percent(part: int, whole: int) -> float | None:
    return None if not whole else round(100.0 * part / whole, 4)


# ---------------------------------------------------------------------------
# Outcome-measure trends


@dataclass(frozen=True)
class MeasurePoint:
    """One instrument's value at one assessment (repeated measures averaged)."""

    assessed_on: str
    value: float
    assessment_id: str
    kind: str


@dataclass(frozen=True)
class GoalTarget:
    """A goal's target for an instrument."""

    goal_id: str
    term: str
    target_value: float | None
    target_date: str | None


@dataclass(frozen=True)
class ChartSeries:
    """The data of one instrument's trend chart: what the chart draws."""

    instrument: str
    unit: str | None
    direction: str  # "lower is better", "higher is better" or ""
    points: tuple[MeasurePoint, ...]
    targets: tuple[GoalTarget, ...]


Rows = Sequence[Mapping[str, Any]]


def chart_series(records: Mapping[str, pd.DataFrame | Rows]) -> list[ChartSeries]:
    """One series per instrument the client was measured on or has a goal for.

    Instruments are matched ignoring case and surrounding blanks (codes compare
    that way); a value measured several times at one assessment is averaged, as
    the reassessment rule does. ``records`` holds the client's ``assessments``,
    ``outcome_measures`` and ``goals``, as frames or as rows
    (``PracticeMaterial.client_rows``).
    """
    assessments: dict[Any, list[Mapping[str, Any]]] = {}
    for row in _as_rows(records["assessments"]):
        assessments.setdefault(_key(row["assessment_id"]), []).append(row)
    # (instrument, assessed_on, assessment_id) -> values, kinds; units by instrument.
    measured: dict[str, dict[tuple[Any, Any], tuple[list[float], list[Any]]]] = {}
    units: dict[str, list[str]] = {}
    for measure in _as_rows(records["outcome_measures"]):
        key = _instrument(measure["instrument"])
        for assessment in assessments.get(_key(measure["assessment_id"]), ()):
            if _missing(measure["value"]) or _missing(assessment["assessed_on"]):
                continue
            if key is None:
                continue
            values, kinds = measured.setdefault(key, {}).setdefault(
                (assessment["assessed_on"], _key(assessment["assessment_id"])), ([], [])
            )
            values.append(float(measure["value"]))
            kinds.append(assessment["kind"])
            if not _missing(measure["unit"]):
                unit = str(measure["unit"])
                if unit not in units.setdefault(key, []):
                    units[key].append(unit)
    goals: dict[str, list[Mapping[str, Any]]] = {}
    for goal in _as_rows(records["goals"]):
        key = _instrument(goal["instrument"])
        if key is not None:
            goals.setdefault(key, []).append(goal)

    series = []
    for key in sorted(set(measured) | set(goals)):
        points = tuple(
            MeasurePoint(
                assessed_on=_iso(assessed_on) or "",
                value=math.fsum(values) / len(values),
                assessment_id=str(assessment_id),
                kind=next((str(k) for k in kinds if not _missing(k)), ""),
            )
            for (assessed_on, assessment_id), (values, kinds) in sorted(
                measured.get(key, {}).items(), key=lambda item: _order(item[0])
            )
        )
        mine_goals = sorted(
            goals.get(key, []), key=lambda g: _order((g["target_date"], g["goal_id"]))
        )
        targets = tuple(
            GoalTarget(
                goal_id=str(goal["goal_id"]),
                term="" if _missing(goal["term"]) else str(goal["term"]),
                target_value=None
                if _missing(goal["target_value"])
                else float(goal["target_value"]),
                target_date=_iso(goal["target_date"]),
            )
            for goal in mine_goals
        )
        found_units = units.get(key, [])
        direction = (
            "lower is better"
            if key in LOWER_IS_BETTER
            else "higher is better"
            if key in HIGHER_IS_BETTER
            else ""
        )
        series.append(
            ChartSeries(
                instrument=key,
                unit=found_units[0] if len(found_units) == 1 else None,
                direction=direction,
                points=points,
                targets=targets,
            )
        )
    return series


def _as_rows(table: pd.DataFrame | Rows) -> Rows:
    if isinstance(table, pd.DataFrame):
        rows: Rows = table.astype(object).to_dict("records")
        return rows
    return table


def _key(value: Any) -> Any:
    """An id as a dict key: missing ids (None, NA, NaN) are one key, as a merge matches them."""
    return None if _missing(value) else value


def _instrument(value: Any) -> str | None:
    return None if _missing(value) else str(value).strip().upper()


def _order(values: Sequence[Any]) -> tuple[tuple[bool, Any], ...]:
    """A sort key: by each value, missing ones last."""
    return tuple((True, "") if _missing(v) else (False, v) for v in values)


# ---------------------------------------------------------------------------
# The client's records as documents


@dataclass(frozen=True)
class Section:
    """A table of a document: its title, the CSV it is also written to, and its rows:
    the client's ``positions`` in the practice's ``table`` (``document_tables``)."""

    title: str
    csv_name: str
    table: str
    positions: np.ndarray
    columns: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class RecordDocument:
    """One readable document of the client's records (referral, session logs ...)."""

    slug: str
    title: str
    intro: str
    sections: tuple[Section, ...]


# (slug, title, intro, tables): the documents an auditor asks for, in their order.
DOCUMENTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "client",
        "Client and coverage",
        "The client, the insurance policies, the eligibility checks made with the payer "
        "and the prior authorizations.",
        ("clients", "insurance_policies", "eligibility_checks", "authorizations"),
    ),
    (
        "referral",
        "Referrals",
        "The referrals for medical exercise, their diagnoses and the referring providers; "
        "expires_on is valid_until, or the referral date plus the practice's validity days.",
        ("referrals", "referral_diagnoses", "providers"),
    ),
    (
        "history",
        "Prior rehabilitation and qualifying conditions",
        "Discharges from physical therapy, occupational therapy or chiropractic care, and "
        "the client's conditions.",
        ("rehab_discharges", "conditions"),
    ),
    (
        "intake",
        "Intake",
        "Intake forms: health history, emergency contact, consent and waiver.",
        ("intake_forms",),
    ),
    (
        "assessments",
        "Assessments and outcome measures",
        "Initial assessments, reassessments and discharge assessments with their outcome measures.",
        ("assessments", "outcome_measures"),
    ),
    (
        "plan_of_exercise",
        "Plans of exercise and goals",
        "Each plan of exercise with its exercises and its short- and long-term goals.",
        ("plans_of_exercise", "poe_exercises", "goals"),
    ),
    (
        "sessions",
        "Session logs",
        "Every session on record: the exercises logged, the minutes per CPT code, the "
        "client's response and the signature; the staff who delivered them.",
        ("sessions", "session_exercises", "session_services", "staff"),
    ),
    (
        "progress_reports",
        "Progress reports",
        "Progress reports sent to the referring provider after reassessments.",
        ("progress_reports",),
    ),
    (
        "claims",
        "Claims and code linkage",
        "Live claims with their lines and diagnoses; the linkage table shows which "
        "ICD-10-CM diagnosis each CPT line points to.",
        ("claims", "claim_lines", "claim_diagnoses", "claim_linkage"),
    ),
)

_TABLE_TITLES = {
    "clients": "Client",
    "insurance_policies": "Insurance policies",
    "eligibility_checks": "Eligibility checks",
    "authorizations": "Prior authorizations",
    "referrals": "Referrals",
    "referral_diagnoses": "Referral diagnoses",
    "providers": "Referring providers",
    "rehab_discharges": "Rehabilitation discharges",
    "conditions": "Conditions",
    "intake_forms": "Intake forms",
    "assessments": "Assessments",
    "outcome_measures": "Outcome measures",
    "plans_of_exercise": "Plans of exercise",
    "poe_exercises": "Exercises of the plans",
    "goals": "Goals",
    "sessions": "Sessions",
    "session_exercises": "Exercises logged",
    "session_services": "Minutes per CPT code",
    "staff": "Staff",
    "progress_reports": "Progress reports",
    "claims": "Claims",
    "claim_lines": "Claim lines",
    "claim_diagnoses": "Claim diagnoses",
    "claim_linkage": "CPT-to-ICD-10-CM linkage",
}

LINKAGE_COLUMNS = (
    "claim_id",
    "line_id",
    "line_no",
    "service_date",
    "cpt_code",
    "units",
    "diagnosis_pointers",
    "pointer",
    "icd10_code",
)


def claim_linkage(records: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim line and pointer letter: the ICD-10-CM code the CPT line points to.

    Pointers are read as the rulebook reads them: blanks and commas separate,
    every other character is one pointer; a letter with no diagnosis on the
    claim shows an empty code.
    """
    lines = records["claim_lines"]
    diagnoses = records["claim_diagnoses"]
    # A practice's tables hold several clients: a pointer resolves within its client's claim.
    by_client = "client_id" in lines.columns and "client_id" in diagnoses.columns

    def clients(frame: pd.DataFrame) -> list[str | None]:
        if not by_client:
            return [None] * len(frame)
        return [None if _missing(c) else str(c) for c in _values(frame["client_id"])]

    codes = {
        (client, str(claim), str(pointer)): code
        for client, claim, pointer, code in zip(
            clients(diagnoses),
            _values(diagnoses["claim_id"]),
            _values(diagnoses["pointer"]),
            _values(diagnoses["icd10_code"]),
            strict=True,
        )
        if not _missing(pointer)
    }
    # Each row of the linkage is a line (by position) with one of its pointers.
    source: list[int] = []
    pointers_out: list[str | None] = []
    codes_out: list[Any] = []
    for position, (client, claim, text) in enumerate(
        zip(
            clients(lines),
            _values(lines["claim_id"]),
            _values(lines["diagnosis_pointers"]),
            strict=True,
        )
    ):
        letters = "" if _missing(text) else str(text)
        pointers: list[str | None] = [ch for ch in letters if ch not in " ,\t"] or [None]
        for pointer in pointers:
            source.append(position)
            pointers_out.append(pointer)
            codes_out.append(codes.get((client, str(claim), pointer.upper())) if pointer else None)
    taken = lines.iloc[source].reset_index(drop=True)
    columns = {"client_id": taken["client_id"]} if by_client else {}
    columns.update({c: taken[c] for c in LINKAGE_COLUMNS[:7]})
    columns["pointer"] = pd.Series(pointers_out, dtype=object)
    columns["icd10_code"] = pd.Series(codes_out, dtype=object)
    linkage = pd.DataFrame(columns)
    return linkage.reindex(columns=[*(["client_id"] if by_client else []), *LINKAGE_COLUMNS])


def _values(column: pd.Series) -> list[Any]:
    """A column's values as Python objects (NA, NaT for missing)."""
    values: list[Any] = column.astype(object).tolist()
    return values


def table_columns(name: str, rows: pd.DataFrame) -> tuple[str, ...]:
    """The columns a document shows for a table: the contract's, plus the client id
    for tables that reach the client through a parent, plus derived ones."""
    if name == "claim_linkage":
        return LINKAGE_COLUMNS
    table = TABLES[name]
    columns = list(table.column_names)
    if (
        "client_id" not in columns
        and "client_id" in rows.columns
        and name
        not in {
            "staff",
            "providers",
        }
    ):
        columns.insert(1, "client_id")
    if name == "referrals":
        columns.insert(columns.index("valid_until") + 1, "expires_on")
    return tuple(c for c in columns if c in rows.columns)


def document_tables(material: PracticeMaterial) -> dict[str, pd.DataFrame]:
    """The practice's tables the documents show, in document order, with the claim
    linkage of all its clients (made once per practice, kept in ``prepared``)."""
    tables: dict[str, pd.DataFrame] | None = material.prepared.get("document_tables")
    if tables is None:
        tables = dict(material.tables)
        tables["claim_linkage"] = claim_linkage(tables)
        material.prepared["document_tables"] = tables
        material.prepared["linkage_groups"] = positions_by(tables["claim_linkage"], "client_id")
    return tables


def record_documents(material: PracticeMaterial, client_id: str) -> list[RecordDocument]:
    """The client's records grouped into the documents an auditor reads."""
    tables = document_tables(material)
    linkage = material.prepared["linkage_groups"]
    documents = []
    for slug, title, intro, names in DOCUMENTS:
        sections = tuple(
            Section(
                title=_TABLE_TITLES[name],
                csv_name=f"{name}.csv",
                table=name,
                positions=linkage.get(client_id, _EMPTY)
                if name == "claim_linkage"
                else material.positions(name, client_id),
                columns=table_columns(name, tables[name]),
            )
            for name in names
        )
        documents.append(RecordDocument(slug=slug, title=title, intro=intro, sections=sections))
    return documents


def packet_id(practice_id: str, as_of: str, client_id: str) -> str:
    """A client packet's id, as its records' footer names it: practice, as-of date and
    client, the parts of its path under the packets folder (where ids are
    percent-encoded as file names need)."""
    return f"{practice_id}/{as_of}/{client_id}"


# ---------------------------------------------------------------------------
# The cover


@dataclass(frozen=True)
class Cover:
    """What the cover page states about the client, its episode and its status."""

    practice_id: str
    practice_name: str
    client_id: str
    client_name: str
    date_of_birth: str | None
    client_status: str | None
    as_of: str
    period_start: str
    period_end: str
    payers: tuple[str, ...]
    referrals: tuple[str, ...]
    episode: tuple[tuple[str, str], ...]
    statuses: tuple[RuleStatus, ...]
    findings_by_severity: Mapping[str, int] = field(default_factory=dict)
    demo_key: bool = False
    # The first as-of date from which the client's records stood as they are here
    # (metaudit.packets.evidence); None when not known.
    records_unchanged_since: str | None = None
    # The Ed25519 key that signs the packet for auditors (id and fingerprint), or None.
    signing_key: str | None = None

    def counts(self) -> dict[str, int]:
        counts = {PASS: 0, FAIL: 0, NOT_APPLICABLE: 0}
        for status in self.statuses:
            counts[status.status] += 1
        return counts


def cover_content(
    material: PracticeMaterial,
    client_id: str,
    records: Mapping[str, Rows],
    evaluation: ClientEvaluation,
    client_findings: Sequence[Finding],
    activity_days: int,
    demo_key: bool = False,
) -> Cover:
    """The cover of a client's packet; ``records`` are the client's rows by table
    (``PracticeMaterial.client_rows``)."""
    start, end = audit_period(material.as_of, activity_days)
    clients = records["clients"]
    client = dict(clients[0]) if len(clients) else {}
    name = " ".join(
        str(client[k]) for k in ("first_name", "last_name") if not _missing(client.get(k))
    )
    severities = {s: 0 for s in rulebook.SEVERITY_ORDER}
    for finding in client_findings:
        severities[finding.severity] = severities.get(finding.severity, 0) + 1
    return Cover(
        practice_id=material.practice_id,
        practice_name=_text(material.practice.get("name")) or material.practice_id,
        client_id=client_id,
        client_name=name,
        date_of_birth=_iso(client.get("date_of_birth")),
        client_status=_text(client.get("status")),
        as_of=_iso(material.as_of) or "",
        period_start=_iso(start) or "",
        period_end=_iso(end) or "",
        payers=_payer_lines(records, material.as_of),
        referrals=_referral_lines(records),
        episode=_episode(records),
        statuses=tuple(evaluation.statuses),
        findings_by_severity=severities,
        demo_key=demo_key,
    )


def _payer_lines(records: Mapping[str, Rows], as_of: pd.Timestamp) -> tuple[str, ...]:
    lines = []
    for row in records["insurance_policies"]:
        ended = not _missing(row["effective_to"]) and row["effective_to"] < as_of
        started = _missing(row["effective_from"]) or row["effective_from"] <= as_of
        state = "in force" if started and not ended else "not in force on the audit date"
        network = _text(row["network_status"]) or "network unknown"
        lines.append(
            f"{_text(row['payer_name']) or 'payer unknown'} "
            f"({_text(row['plan_type']) or 'plan type unknown'}, "
            f"{network.replace('_', ' ')}), policy {row['policy_id']}, member "
            f"{_text(row['member_id']) or 'not recorded'}, effective "
            f"{_iso(row['effective_from']) or '?'} to {_iso(row['effective_to']) or 'open'}: {state}"
        )
    return tuple(lines) or ("No insurance policy on record.",)


def _referral_lines(records: Mapping[str, Rows]) -> tuple[str, ...]:
    providers = {str(row["provider_id"]): row for row in records["providers"]}
    diagnoses: dict[str, list[str]] = {}
    for row in records["referral_diagnoses"]:
        if not _missing(row["icd10_code"]):
            diagnoses.setdefault(str(row["referral_id"]), []).append(str(row["icd10_code"]))
    lines = []
    for row in records["referrals"]:
        provider = providers.get(str(row["provider_id"]))
        who = (
            f"{_text(provider['full_name']) or 'name unknown'} "
            f"({_text(provider['credential']) or 'credential unknown'})"
            if provider is not None
            else f"provider {row['provider_id']} (no provider record)"
        )
        signed = (
            f"signed {_iso(row['signed_on'])}" if not _missing(row["signed_on"]) else "not signed"
        )
        codes = ", ".join(diagnoses.get(str(row["referral_id"]), [])) or "no diagnosis"
        lines.append(
            f"Referral {row['referral_id']} of {_iso(row['referral_date'])} by {who}, {signed}, "
            f"valid to {_iso(row['expires_on']) or 'unknown'}; diagnoses: {codes}"
        )
    return tuple(lines) or ("No referral on record.",)


def _is(value: Any, text: str) -> bool:
    return not _missing(value) and value == text


def _episode(records: Mapping[str, Rows]) -> tuple[tuple[str, str], ...]:
    completed = [row for row in records["sessions"] if _is(row["status"], "completed")]
    dates = [row["session_date"] for row in completed if not _missing(row["session_date"])]
    assessments = records["assessments"]

    def first_of(kind: str, latest: bool = False) -> str:
        days = [
            row["assessed_on"]
            for row in assessments
            if _is(row["kind"], kind) and not _missing(row["assessed_on"])
        ]
        if not days:
            return "none on record"
        return _iso(max(days) if latest else min(days)) or ""

    plans = records["plans_of_exercise"]
    plan_text = "none on record"
    if len(plans):
        first = plans[0]
        last = plans[-1]
        plan_text = (
            f"{len(plans)} plan(s), from {_iso(first['start_date']) or '?'} "
            f"(latest {last['poe_id']}, ends {_iso(last['end_date']) or 'open'})"
        )
    return (
        ("First completed session", (_iso(min(dates)) if dates else None) or "none"),
        ("Latest completed session", (_iso(max(dates)) if dates else None) or "none"),
        ("Completed sessions", str(len(completed))),
        ("Initial assessment", first_of("initial")),
        ("Latest reassessment", first_of("reassessment", latest=True)),
        ("Discharge assessment", first_of("discharge", latest=True)),
        ("Plans of exercise", plan_text),
    )


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _iso(value: Any) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())[:10]
    return str(value)[:10]
