"""Exposure: the claim lines each finding puts at risk, and their money.

Computed over the same as-of view the rules judged, so exposure is what the rules
saw: lines dated after D, void claims and their lines are not in it (void claims
carry no exposure). Each touched line's money sits in one class, by its claim's
status:

- ``fix_before_billing``: lines of draft claims, their charge;
- ``in_flight``: lines of submitted, denied and appealed claims, their charge;
- ``recoupment_risk``: lines of paid claims, the claim's paid_amount apportioned
  to its lines (in the view) by charge, largest remainder to the cent, so a
  claim's parts add up to its paid_amount exactly.

A line whose claim has no readable status, or whose claim row is missing, sits in
no class and is not counted. Money is in integer cents throughout; an unreadable
charge or paid_amount counts 0.

Which lines a finding touches depends on its entity type (:data:`TOUCHES`, the
table docs/rules.md shows). Everything is merges and group-bys over integer
codes: no Python loop over findings or lines.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from metaudit.source.quality import positions
from metaudit.spec.contract import TABLES
from metaudit.spec.findings import csv_cell, write_atomic

if TYPE_CHECKING:
    from metaudit.check.view import AuditView
    from metaudit.spec.findings import Finding
    from metaudit.spec.settings import Settings

EXPOSURE_FIELDS = (
    "fingerprint",
    "rule_id",
    "practice_id",
    "client_id",
    "entity_type",
    "entity_id",
    "lines",
    "fix_before_billing",
    "in_flight",
    "recoupment_risk",
    "total",
)
MONEY_CLASSES = ("fix_before_billing", "in_flight", "recoupment_risk")
MONEY_FIELDS = (*MONEY_CLASSES, "total")
# Claim status -> money class (position in MONEY_CLASSES); void is not in the view.
CLASS_OF_STATUS = {"draft": 0, "submitted": 1, "denied": 1, "appealed": 1, "paid": 2}

# What each class holds (rendered into docs/rules.md with TOUCHES and EXPOSURE_RULES).
CLASS_MEANINGS: dict[str, str] = {
    "fix_before_billing": "lines of draft claims: their charge",
    "in_flight": "lines of submitted, denied and appealed claims: their charge",
    "recoupment_risk": "lines of paid claims: the claim's paid_amount apportioned to its "
    "lines by charge",
}
EXPOSURE_RULES: tuple[str, ...] = (
    "Exposure is computed over the audit's own view of the records: lines dated after the "
    "audit date are not counted, and void claims, with their lines, carry no exposure.",
    "A paid claim's paid_amount is split over its lines (those in the view) in proportion "
    "to their charges, to the cent by largest remainder (ties: by line_no, then line_id), "
    "so the lines' shares add up to the paid amount exactly. Negative or unreadable "
    "charges weigh 0; when all of a claim's lines weigh 0 the amount is split evenly.",
    "An unreadable or missing charge or paid_amount counts 0. A line whose claim has no "
    "readable status, or whose claim row is missing, is in no class and is not counted.",
    "A line is counted once per finding, however many ways the finding reaches it; the "
    "same line may count for several findings, so exposures of different findings do not "
    "add up to the money billed.",
    "A finding that touches no line is still listed, with zero exposure.",
)

# The lines a finding touches, per entity type (rendered into docs/rules.md).
TOUCHES: dict[str, str] = {
    "claim_line": "the line itself",
    "claim": "the claim's lines",
    "claim_diagnosis": "the lines of the diagnosis's claim (a claim is judged with its diagnoses)",
    "session": "the client's lines with the session's date as service date",
    "client_date": "the client's lines on that service date",
    "referral": "the client's lines whose service date the referral covers: referral_date "
    "to its expiry (valid_until, else referral_date + `referral_validity_days`), both "
    "included",
    "policy": "the lines of claims on that policy",
    "authorization": "the lines of claims on the authorization's policy with a service date "
    "from start_date to end_date, both included",
    "client": "all the client's lines",
    "assessment": "an initial assessment or reassessment governs the client's lines from its "
    "date to the day before the client's next later assessment date (initial or "
    "reassessment), open-ended when none follows; a discharge assessment governs the lines "
    "of its own date only",
    "poe": "the plan governs the client's lines from its start_date to its end_date or the "
    "day before the client's next plan starts, whichever comes first (open-ended when "
    "neither); a plan without a start_date governs no line",
    "goal": "the lines its plan of exercise governs",
    "progress_report": "(a `progress_reports` row of a DQ finding) the lines the assessment "
    "it reports on governs; none without one",
    "row": "data-quality findings (DQ-*): the lines of the entity the row is, or belongs to "
    "(`claim_lines:L-1` as claim line L-1, `session_services:S-17` as session S-17, "
    "`insurance_policies:P-2` as policy P-2, ...); rows of practices, staff, providers, "
    "eligibility checks, rehab discharges, conditions, intake forms and outcome measures, "
    "and rows left out of the view (undated, or under a missing parent), touch none",
}

# A data-quality row's table -> the entity type its TABLE:KEY key names.
ROW_ENTITY = {
    "clients": "client",
    "sessions": "session",
    "session_exercises": "session",
    "session_services": "session",
    "referrals": "referral",
    "referral_diagnoses": "referral",
    "insurance_policies": "policy",
    "authorizations": "authorization",
    "claims": "claim",
    "claim_diagnoses": "claim",
    "claim_lines": "claim_line",
    "assessments": "assessment",
    "plans_of_exercise": "poe",
    "poe_exercises": "poe",
    "goals": "goal",
    "progress_reports": "progress_report",
}
# Typed dates are microsecond-based and reach 9999-12-31 (rulebook reading 21).
_OPEN_END = np.datetime64("9999-12-31", "us")
# Products of cents below this stay exact in int64; larger ones use Python integers.
_INT64_SAFE = 2**62


def finding_exposure(
    view: AuditView, findings: Sequence[Finding], settings: Settings
) -> pd.DataFrame:
    """One row per finding (in the findings' order): its touched lines and their money.

    Columns :data:`EXPOSURE_FIELDS`; ``lines`` is an int, the money columns integer
    cents. A finding that touches no line is listed with zeros.
    """
    frame = pd.DataFrame(
        {
            "fingerprint": [f.fingerprint for f in findings],
            "rule_id": [f.rule_id for f in findings],
            "practice_id": [f.practice_id for f in findings],
            "client_id": [f.client_id for f in findings],
            "entity_type": [f.entity_type for f in findings],
            "entity_id": [f.entity_id for f in findings],
        },
        dtype=object,
    )
    lines = line_money(view)
    touched = touched_lines(view, frame[["entity_type", "entity_id"]], lines, settings)
    cents = _money(lines)
    amount = cents[touched["line"].to_numpy()]
    classes = lines["money_class"].to_numpy()[touched["line"].to_numpy()]
    per = pd.DataFrame({"finding": touched["finding"].to_numpy(), "cls": classes})
    counts = per.groupby("finding").size()
    frame["lines"] = counts.reindex(range(len(frame)), fill_value=0).to_numpy(dtype=np.int64)
    total = np.zeros(len(frame), dtype=amount.dtype) if len(frame) else np.zeros(0, np.int64)
    for code, name in enumerate(MONEY_CLASSES):
        chosen = classes == code
        sums = _sum_by(touched["finding"].to_numpy()[chosen], amount[chosen], len(frame))
        frame[name] = sums
        total = total + sums
    frame["total"] = total
    return frame


def _sum_by(groups: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Sums of integer ``values`` per group 0..size-1 (zeros where none), exact."""
    if values.dtype != object:
        bound = float(np.abs(values).max()) * len(values) if len(values) else 0.0
        if bound < 2**53:
            # Float sums of integers below 2**53 are exact, and bincount is fast.
            sums = np.bincount(groups, weights=values.astype(np.float64), minlength=size)
            return np.rint(sums).astype(np.int64)
    out = np.zeros(size, dtype=object)
    np.add.at(out, groups, values.astype(object))
    return out


def line_money(view: AuditView) -> pd.DataFrame:
    """The view's claim lines with their claim's client, policy and money class.

    Columns: line_id, claim_id, client_id, policy_id, service_date, line_no,
    money_class (index into MONEY_CLASSES), charge_cents, paid_cents (the line's
    share of a paid claim's paid_amount, 0 elsewhere). Lines of claims missing
    from the view, or of a status outside the classes, are dropped.
    """
    claims = view.tables["claims"]
    lines = view.tables["claim_lines"]
    at = positions(claims["claim_id"], lines["claim_id"])
    class_of_claim = np.full(len(claims) + 1, -1, dtype=np.int8)  # last slot: no claim
    for status, code in CLASS_OF_STATUS.items():
        class_of_claim[:-1][claims["status"].eq(status).to_numpy(dtype=bool, na_value=False)] = code
    money_class = class_of_claim[at]
    keep = money_class >= 0
    at = at[keep]
    out = pd.DataFrame(
        {
            "line_id": lines["line_id"].array[keep],
            "claim_id": lines["claim_id"].array[keep],
            "client_id": claims["client_id"].astype("string").array.take(at),
            "policy_id": claims["policy_id"].astype("string").array.take(at),
            "service_date": lines["service_date"].array[keep],
            "line_no": lines["line_no"].array[keep],
            "money_class": money_class[keep],
        }
    )
    charge = to_cents(lines["charge"][keep])
    out["charge_cents"] = charge
    paid = np.zeros(len(out), dtype=charge.dtype)
    is_paid = out["money_class"].to_numpy() == CLASS_OF_STATUS["paid"]
    if is_paid.any():
        claim_paid = to_cents(claims["paid_amount"])[at[is_paid]]
        shares = apportion(
            at[is_paid],
            out["line_no"][is_paid],
            out["line_id"][is_paid],
            claim_paid,
            charge[is_paid],
        )
        if shares.dtype == object and paid.dtype != object:
            paid = paid.astype(object)
        paid[is_paid] = shares
    out["paid_cents"] = paid
    return out


def _money(lines: pd.DataFrame) -> np.ndarray:
    """Each line's money at risk in cents: the paid share on paid claims, else the charge."""
    paid = lines["money_class"].to_numpy() == CLASS_OF_STATUS["paid"]
    charge = lines["charge_cents"].to_numpy()
    share = lines["paid_cents"].to_numpy()
    if charge.dtype == object or share.dtype == object:
        charge, share = charge.astype(object), share.astype(object)
    return np.where(paid, share, charge)


def to_cents(values: pd.Series) -> np.ndarray:
    """Money as integer cents (int64, or Python ints past what int64 holds exactly);
    NA, unreadable or non-finite counts 0."""
    number = pd.Series(values).astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    cents = np.rint(number * 100)
    cents[~np.isfinite(cents)] = 0
    if not len(cents) or np.abs(cents).max() < 2**53:
        return cents.astype(np.int64)
    return np.array([int(c) for c in cents], dtype=object)


def apportion(
    claim: np.ndarray,
    line_no: pd.Series,
    line_id: pd.Series,
    totals: np.ndarray,
    charges: np.ndarray,
) -> np.ndarray:
    """Split each claim's total over its lines in proportion to their charges, in cents.

    One entry per line: ``claim`` a non-negative integer code of its claim, its line_no
    and line_id, ``totals`` the claim's total (the same on every line of a claim) and
    ``charges`` the line's charge. Largest remainder: every line gets the floor of its
    exact share, and the cents left over go one each to the lines with the largest
    remainders (ties: by line_no, then line_id), so the shares add up to the total
    exactly. Negative or unknown charges weigh 0; a claim whose lines all weigh 0 is
    split equally.
    """
    if not len(claim):
        return np.zeros(0, dtype=np.int64)
    size = int(claim.max()) + 1
    weight = np.where(charges > 0, charges, 0)
    claim_weight = _sum_by(claim, weight, size)
    weight = np.where(claim_weight[claim] == 0, 1, weight)
    claim_weight = _sum_by(claim, weight, size)
    if (
        totals.dtype == object
        or weight.dtype == object
        or int(np.abs(totals).max()) * int(weight.max()) >= _INT64_SAFE
    ):
        totals, weight, claim_weight = (
            totals.astype(object),
            weight.astype(object),
            claim_weight.astype(object),
        )
    product = totals * weight
    denominator = claim_weight[claim]
    base = product // denominator  # floors, also for a negative total
    remainder = (product - base * denominator).astype(np.float64) / denominator.astype(np.float64)
    left = totals - _sum_by(claim, base, size)[claim]
    number = pd.to_numeric(line_no, errors="coerce").to_numpy(dtype="float64", na_value=np.inf)
    # Arrow sorts the line ids in native code; their ranks break the last ties.
    by_id = np.asarray(pc.sort_indices(pa.array(line_id.astype("string").array)))
    id_rank = np.empty(len(by_id), dtype=np.int64)
    id_rank[by_id] = np.arange(len(by_id))
    order = np.lexsort((id_rank, number, -remainder, claim))
    ordered_claim = claim[order]
    starts = np.flatnonzero(np.r_[True, ordered_claim[1:] != ordered_claim[:-1]])
    run = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = run
    return base + (rank < left).astype(np.int64)


# ---------------------------------------------------------------------------
# Which lines each finding touches


def touched_lines(
    view: AuditView, findings: pd.DataFrame, lines: pd.DataFrame, settings: Settings
) -> pd.DataFrame:
    """Pairs (finding, line): positions in ``findings`` and in ``lines``, each pair once.

    ``findings`` has entity_type and entity_id; ``lines`` is :func:`line_money`.
    """
    types = findings["entity_type"].astype(str).to_numpy()
    ids = findings["entity_id"].astype(str).to_numpy()
    rows = types == "row"
    if rows.any():
        # A data-quality row is judged as the entity it is, or belongs to.
        table, _, key = pd.Series(ids[rows]).str.partition(":").T.to_numpy()
        types = types.copy()
        ids = ids.copy()
        types[rows] = pd.Series(table).map(ROW_ENTITY).fillna("").to_numpy()
        ids[rows] = key
    lines_of = _LineIndex(lines)
    parts = []
    for entity_type, mapper in _MAPPERS.items():
        chosen = np.flatnonzero(types == entity_type)
        if len(chosen):
            finding, line = mapper(view, settings, pd.Series(ids[chosen], dtype="string"), lines_of)
            parts.append(pd.DataFrame({"finding": chosen[finding], "line": line}))
    if not parts:
        return pd.DataFrame({"finding": np.zeros(0, np.int64), "line": np.zeros(0, np.int64)})
    return pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)


class _LineIndex:
    """The lines grouped by claim, client and policy id, to join keys to lines.

    Each column is encoded once (the lines sorted by code, with each code's start and
    count), so a join costs the keys and the pairs found, not a pass over every line.
    """

    def __init__(self, lines: pd.DataFrame) -> None:
        self.lines = lines
        self.service_date = lines["service_date"].to_numpy(dtype="datetime64[us]")
        self._groups: dict[str, tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]] = {}

    def _grouped(self, column: str) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
        if column not in self._groups:
            codes, uniques = pd.factorize(self.lines[column].astype("string"))
            order = np.argsort(codes, kind="stable")  # NA (-1) first
            counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
            starts = np.int64((codes < 0).sum()) + np.cumsum(counts) - counts
            self._groups[column] = (pd.Series(uniques, dtype="string"), order, starts, counts)
        return self._groups[column]

    def join(self, column: str, keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(key row, line row) pairs where ``keys`` equals the lines' ``column``."""
        uniques, order, starts, counts = self._grouped(column)
        at = positions(uniques, pd.Series(keys, dtype="string"))
        key_rows = np.flatnonzero(at >= 0)
        found = at[key_rows]
        many = counts[found]
        key = np.repeat(key_rows, many)
        first = np.cumsum(many) - many
        offset = (
            np.repeat(starts[found], many) + np.arange(int(many.sum())) - np.repeat(first, many)
        )
        return key, order[offset]

    def within(
        self, column: str, keys: pd.Series, start: pd.Series, end: pd.Series
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pairs where the key matches and start <= service_date <= end (NaT: none)."""
        key, line = self.join(column, keys)
        first = pd.Series(start).to_numpy(dtype="datetime64[us]")[key]
        last = pd.Series(end).to_numpy(dtype="datetime64[us]")[key]
        day = self.service_date[line]
        inside = (first <= day) & (day <= last)  # NaT compares False
        return key[inside], line[inside]


def _rows(view: AuditView, table: str, ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(finding row, table row) of the ids found in the view's table by its key."""
    frame = view.tables[table]
    key = TABLES[table].key
    assert key is not None, table
    at = positions(frame[key], ids)
    found = np.flatnonzero(at >= 0)
    return found, at[found]


def _by_line(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    at = positions(lines.lines["line_id"], ids)
    found = np.flatnonzero(at >= 0)
    return found, at[found]


def _by_claim(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    return lines.join("claim_id", ids)


def _by_claim_diagnosis(
    view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex
) -> Any:
    # CLAIM_ID:POINTER; a claim id may itself hold a colon, the pointer never does.
    return lines.join("claim_id", ids.str.rsplit(":", n=1).str[0])


def _by_client(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    return lines.join("client_id", ids)


def _by_policy(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    return lines.join("policy_id", ids)


def _by_session(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    found, row = _rows(view, "sessions", ids)
    sessions = view.tables["sessions"]
    day = sessions["session_date"].to_numpy(dtype="datetime64[us]")[row]
    client = pd.Series(sessions["client_id"].astype("string").array.take(row))
    key, line = lines.within("client_id", client, pd.Series(day), pd.Series(day))
    return found[key], line


def _by_client_date(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    # CLIENT_ID:YYYY-MM-DD; the date never holds a colon.
    split = ids.str.rsplit(":", n=1)
    day = pd.to_datetime(split.str[1], format="%Y-%m-%d", errors="coerce")
    return lines.within("client_id", split.str[0], day, day)


def _by_referral(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    from metaudit.check.derive.common import referral_expiry

    found, row = _rows(view, "referrals", ids)
    referrals = view.tables["referrals"]
    expiry = referral_expiry(view, settings).to_numpy(dtype="datetime64[us]")[row]
    start = referrals["referral_date"].to_numpy(dtype="datetime64[us]")[row]
    client = pd.Series(referrals["client_id"].astype("string").array.take(row))
    key, line = lines.within("client_id", client, pd.Series(start), pd.Series(expiry))
    return found[key], line


def _by_authorization(
    view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex
) -> Any:
    found, row = _rows(view, "authorizations", ids)
    auths = view.tables["authorizations"]
    policy = pd.Series(auths["policy_id"].astype("string").array.take(row))
    start = auths["start_date"].to_numpy(dtype="datetime64[us]")[row]
    end = auths["end_date"].to_numpy(dtype="datetime64[us]")[row]
    key, line = lines.within("policy_id", policy, pd.Series(start), pd.Series(end))
    return found[key], line


def _governed(frame: pd.DataFrame, start: np.ndarray, own_end: np.ndarray | None) -> np.ndarray:
    """The last day each record governs: the day before the client's next later start
    (open-ended when none), or its own end when that comes first."""
    starts = pd.DataFrame(
        {"client": frame["client_id"].astype("string").to_numpy(dtype=object), "start": start}
    )
    distinct = starts.dropna().drop_duplicates().sort_values(["client", "start"])
    distinct["next"] = distinct.groupby("client")["start"].shift(-1)
    merged = starts.merge(distinct, on=["client", "start"], how="left")
    following = merged["next"].to_numpy(dtype="datetime64[us]")
    last = np.where(np.isnat(following), _OPEN_END, following - np.timedelta64(1, "D"))
    if own_end is not None:
        last = np.where(np.isnat(own_end), last, np.minimum(last, own_end))
    return last


def poe_periods(view: AuditView) -> pd.DataFrame:
    """Each plan of exercise's client and the days it governs (start, last)."""
    if "exposure_poe_periods" not in view.cache:
        plans = view.tables["plans_of_exercise"]
        start = plans["start_date"].to_numpy(dtype="datetime64[us]")
        end = plans["end_date"].to_numpy(dtype="datetime64[us]")
        view.cache["exposure_poe_periods"] = pd.DataFrame(
            {
                "client_id": plans["client_id"].astype("string").array,
                "start": start,
                "last": _governed(plans, start, end),
            }
        )
    periods: pd.DataFrame = view.cache["exposure_poe_periods"]
    return periods


def assessment_periods(view: AuditView) -> pd.DataFrame:
    """Each assessment's client and the days it governs (start, last)."""
    if "exposure_assessment_periods" not in view.cache:
        assessments = view.tables["assessments"]
        day = assessments["assessed_on"].to_numpy(dtype="datetime64[us]")
        dated = assessments["kind"].isin(["initial", "reassessment"]).fillna(False)
        dated = dated.to_numpy(dtype=bool)
        # Only assessment dates (initial, reassessment) end a period; a discharge governs
        # its own day.
        start_of_dates = np.where(dated, day, np.datetime64("NaT"))
        last = _governed(assessments, start_of_dates, None)
        last = np.where(dated, last, day)
        view.cache["exposure_assessment_periods"] = pd.DataFrame(
            {
                "client_id": assessments["client_id"].astype("string").array,
                "start": day,
                "last": last,
            }
        )
    periods: pd.DataFrame = view.cache["exposure_assessment_periods"]
    return periods


def _by_period(
    periods: pd.DataFrame, found: np.ndarray, row: np.ndarray, lines: _LineIndex
) -> tuple[np.ndarray, np.ndarray]:
    picked = periods.iloc[row]
    key, line = lines.within(
        "client_id",
        pd.Series(picked["client_id"].array),
        picked["start"].reset_index(drop=True),
        picked["last"].reset_index(drop=True),
    )
    return found[key], line


def _by_poe(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    found, row = _rows(view, "plans_of_exercise", ids)
    return _by_period(poe_periods(view), found, row, lines)


def _by_goal(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    found, row = _rows(view, "goals", ids)
    poe_ids = pd.Series(view.tables["goals"]["poe_id"].astype("string").array.take(row))
    plan_found, plan_row = _rows(view, "plans_of_exercise", poe_ids)
    return _by_period(poe_periods(view), found[plan_found], plan_row, lines)


def _by_assessment(view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex) -> Any:
    found, row = _rows(view, "assessments", ids)
    return _by_period(assessment_periods(view), found, row, lines)


def _by_progress_report(
    view: AuditView, settings: Settings, ids: pd.Series, lines: _LineIndex
) -> Any:
    found, row = _rows(view, "progress_reports", ids)
    reports = view.tables["progress_reports"]
    assessment_ids = pd.Series(reports["assessment_id"].astype("string").array.take(row))
    sub_found, sub_row = _rows(view, "assessments", assessment_ids)
    return _by_period(assessment_periods(view), found[sub_found], sub_row, lines)


_MAPPERS = {
    "claim_line": _by_line,
    "claim": _by_claim,
    "claim_diagnosis": _by_claim_diagnosis,
    "session": _by_session,
    "client_date": _by_client_date,
    "referral": _by_referral,
    "policy": _by_policy,
    "authorization": _by_authorization,
    "client": _by_client,
    "assessment": _by_assessment,
    "poe": _by_poe,
    "goal": _by_goal,
    "progress_report": _by_progress_report,
}


# ---------------------------------------------------------------------------
# Files


def format_cents(cents: int) -> str:
    """Integer cents as a decimal with 2 places: 1205 -> "12.05", -5 -> "-0.05"."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{part:02d}"


def _decimal_text(cents: pd.Series) -> pd.Series:
    """:func:`format_cents` over a column (int64 or Python ints), without a Python loop
    per value in the common int64 case."""
    values = cents.to_numpy()
    if values.dtype == object:
        return pd.Series([format_cents(v) for v in values], index=cents.index, dtype=object)
    size = np.abs(values)
    whole = pd.Series(size // 100, index=cents.index).astype(str)
    part = pd.Series(size % 100, index=cents.index).astype(str).str.zfill(2)
    sign = pd.Series(np.where(values < 0, "-", ""), index=cents.index)
    return sign + whole + "." + part


def exposure_text_columns(exposure: pd.DataFrame) -> dict[str, pd.Series]:
    """Each field of the exposure files as text (None for a missing id): money as
    2-place decimals, ``lines`` as a whole number."""
    columns: dict[str, pd.Series] = {}
    for name in EXPOSURE_FIELDS:
        column = exposure[name]
        if name in MONEY_FIELDS:
            columns[name] = _decimal_text(column)
        elif name == "lines":
            columns[name] = column.astype(np.int64).astype(str)
        else:
            text = column.astype(object)
            columns[name] = text.where(text.notna(), None)
    return columns


def to_exposure_jsonl(exposure: pd.DataFrame) -> str:
    """JSON Lines; money as JSON numbers written with exactly 2 places (``150.00``)."""
    if not len(exposure):
        return ""
    columns = exposure_text_columns(exposure)
    line = pd.Series("{", index=exposure.index)
    for i, name in enumerate(EXPOSURE_FIELDS):
        value = columns[name]
        if name not in MONEY_FIELDS and name != "lines":
            value = value.map(lambda v: json.dumps(v, ensure_ascii=False))
        line = line + ("" if i == 0 else ", ") + json.dumps(name) + ": " + value
    return "".join((line + "}\n").tolist())


def csv_text(fieldnames: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The one CSV writer of the exposure file (header row, None as empty); its text
    cells come neutralised (:func:`metaudit.spec.findings.csv_cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fieldnames)
    writer.writerows(rows)
    return buffer.getvalue()


def to_exposure_csv(exposure: pd.DataFrame) -> str:
    columns = exposure_text_columns(exposure)
    # Ids are text a spreadsheet could take for a formula; counts and money are numbers.
    for name in EXPOSURE_FIELDS:
        if name not in MONEY_FIELDS and name != "lines":
            columns[name] = pd.Series([csv_cell(v) for v in columns[name].tolist()], dtype=object)
    rows = zip(*(columns[name].tolist() for name in EXPOSURE_FIELDS), strict=True)
    return csv_text(EXPOSURE_FIELDS, rows)


def write_exposure(exposure: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    """Write DIR/exposure.jsonl and DIR/exposure.csv (atomically), beside the findings."""
    jsonl_path = out_dir / "exposure.jsonl"
    csv_path = out_dir / "exposure.csv"
    write_atomic(jsonl_path, to_exposure_jsonl(exposure))
    write_atomic(csv_path, to_exposure_csv(exposure))
    return jsonl_path, csv_path


def read_exposure(path: Path) -> list[dict[str, Any]]:
    """Read an exposure.jsonl back: each row's fields, its money as integer cents and
    ``lines`` as an int (the JSON numbers are read as decimals, so cents stay exact)."""
    from decimal import Decimal

    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            data = json.loads(line, parse_float=Decimal)
            missing = [name for name in EXPOSURE_FIELDS if name not in data]
            if missing:
                raise ValueError(f"{path}:{number}: exposure row without {missing}")
            for name in MONEY_FIELDS:
                cents = Decimal(data[name]) * 100
                if cents != cents.to_integral_value():
                    raise ValueError(f"{path}:{number}: {name} {data[name]} is not whole cents")
                data[name] = int(cents)
            data["lines"] = int(data["lines"])
            rows.append(data)
    return rows


def claim_of_record(entity_type: str, entity_id: str, claim_of_line: dict[str, str]) -> str | None:
    """The claim a finding's record is or belongs to: a claim, a claim diagnosis
    (CLAIM_ID:POINTER), a claim line (through ``claim_of_line``), or a data-quality row
    of one of those tables; None for any other record."""
    if entity_type == "row":
        table, _, entity_id = entity_id.partition(":")
        entity_type = ROW_ENTITY.get(table, "")
    if entity_type == "claim":
        return entity_id
    if entity_type == "claim_diagnosis":
        return entity_id.rsplit(":", 1)[0]
    if entity_type == "claim_line":
        return claim_of_line.get(entity_id)
    return None
