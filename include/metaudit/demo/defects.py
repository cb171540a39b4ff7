"""The defect catalogue: one injector per defect, each on a host client of its own.

An injector takes a clean host (see ``cohort``), breaks one thing, and returns
every finding the audit must then report at D, collateral ones included. Its
docstring states the defect and each finding with the reason. Timeline of the
hosts (D = as-of date):

- past host: initial assessment D-200, sessions D-199, D-196, ... D-133 (twice a
  week), reassessments R1 = D-172 and R2 = D-144, discharge D-132, reports 3 days
  after each; the *middle* session is D-164 (its claim submitted D-161, paid).
- active host: initial D-34, sessions D-33 ... D-2 before D (then D+2 ...),
  reassessment R1 = D-6 (report D-3), R2 = D+22; referral valid until D+139.
- preauth hosts: 56-day authorizations of 20 visits from the initial assessment.

Every claim line of a host session is 97110 x2 (pointers AB) and 97530 x1 (A);
the day's minutes (32 + 18) allow 3 units under the cms rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from metaudit.demo import vocab
from metaudit.demo.cohort import (
    HOST_FEES,
    Cohort,
    Expected,
    Host,
    Row,
    add_line,
    day_of,
    iso,
    new_provider,
    new_staff,
)
from metaudit.demo.network import REASSESSMENT_INTERVAL_DAYS
from metaudit.errors import MetAuditError

Injector = Callable[[Cohort, Host], list[Expected]]


class UnknownDefectError(MetAuditError, ValueError):
    """A defect name (or rule id) that the catalogue does not hold."""


@dataclass(frozen=True)
class Defect:
    """A catalogue entry: the injector and what its host and schema need."""

    name: str
    rules: tuple[str, ...]  # the rule ids of the findings it causes
    inject: Injector
    active: bool = False  # host has sessions up to D (for notices)
    preauth: bool = False  # host's policy requires authorization
    unreadable: tuple[tuple[str, str], ...] = ()  # (table, column) given unreadable values
    duplicates_keys: bool = False  # writes a duplicated primary key (no key constraints)

    @property
    def summary(self) -> str:
        doc = (self.inject.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.name


DEFECTS: dict[str, Defect] = {}


def defect(
    *rules: str,
    active: bool = False,
    preauth: bool = False,
    unreadable: tuple[tuple[str, str], ...] = (),
    duplicates_keys: bool = False,
) -> Callable[[Injector], Injector]:
    """Register an injector under its function name."""

    def register(func: Injector) -> Injector:
        name = func.__name__
        DEFECTS[name] = Defect(name, rules, func, active, preauth, unreadable, duplicates_keys)
        return func

    return register


# --- helpers ---------------------------------------------------------------------------


def _session_line_findings(h: Host, rule_id: str, claim: Row) -> list[Expected]:
    return [h.expect(rule_id, "claim_line", line["line_id"]) for line in h.lines(claim["claim_id"])]


def _second_policy(c: Cohort, h: Host, *, payer: str, plan_type: str, network: str) -> str:
    """Add a policy (with an active eligibility check before e0) to the host; return its id."""
    policy_id = c.new_id("insurance_policies")
    c.add(
        "insurance_policies",
        {
            "policy_id": policy_id,
            "client_id": h.client_id,
            "payer_name": payer,
            "plan_type": plan_type,
            "member_id": f"Q{policy_id[2:]}",
            "network_status": network,
            "oon_benefits": 0,
            "requires_preauth": 0,
            "timely_filing_days": None,
            "unit_rule": "cms",
            "effective_from": iso(h.e0 - timedelta(days=400)),
            "effective_to": None,
        },
    )
    c.add(
        "eligibility_checks",
        {
            "check_id": c.new_id("eligibility_checks"),
            "policy_id": policy_id,
            "checked_on": iso(h.e0 - timedelta(days=3)),
            "status": "active",
            "reference_number": None,
        },
    )
    return policy_id


def _unused_id(c: Cohort, table: str) -> str:
    """An id of ``table`` that no row holds (consumed from the counter, never added)."""
    return c.new_id(table)


def _latest_assessment_before(h: Host, day: str) -> str | None:
    dated = [
        a["assessed_on"]
        for a in h.assessments()
        if a["kind"] in ("initial", "reassessment") and a["assessed_on"] <= day
    ]
    return max(dated) if dated else None


def _rea001_sessions(h: Host) -> list[Expected]:
    """REA-001 for every completed session in view that its reassessment was overdue for.

    Overdue: more than ``reassessment_interval_days`` (the default) after the latest
    assessment on or before the session.
    """
    found = []
    for s in h.sessions_in_view():
        if s["status"] != "completed":
            continue
        latest = _latest_assessment_before(h, s["session_date"])
        if (
            latest
            and (day_of(s["session_date"]) - day_of(latest)).days > REASSESSMENT_INTERVAL_DAYS
        ):
            found.append(h.expect("REA-001", "session", s["session_id"]))
    return found


def _move_report(h: Host, assessment: Row, days_after: int) -> None:
    for report in h.cohort.find("progress_reports", assessment_id=assessment["assessment_id"]):
        report["sent_on"] = iso(day_of(assessment["assessed_on"]) + timedelta(days=days_after))


# --- REF ---------------------------------------------------------------------------------


@defect("REF-001")
def ref001_no_referral(c: Cohort, h: Host) -> list[Expected]:
    """The client has sessions but no referral at all.

    The referral and its diagnoses are deleted. REF-001 on the client; REF-002 is
    not raised when REF-001 is; the claim diagnoses stay documented by the
    client's conditions (no COD-004).
    """
    referral = h.referral()
    c.remove("referrals", lambda r: r is referral)
    c.remove("referral_diagnoses", lambda r: r["referral_id"] == referral["referral_id"])
    return [h.expect("REF-001", "client", h.client_id)]


@defect("REF-002")
def ref002_referral_lapsed(c: Cohort, h: Host) -> list[Expected]:
    """The referral ends the day before the last session, which no referral then covers.

    valid_until = last session - 1 day. REF-002 on the last session only (every
    earlier session lies inside the referral's window).
    """
    last = h.sessions_in_view()[-1]
    h.referral()["valid_until"] = iso(day_of(last["session_date"]) - timedelta(days=1))
    return [h.expect("REF-002", "session", last["session_id"])]


@defect("REF-003")
def ref003_referrer_chiropractor(c: Cohort, h: Host) -> list[Expected]:
    """The referral comes from a chiropractor (credential DC), who cannot refer.

    A new DC provider (valid NPI) signs the referral and receives the reports.
    REF-003 on the referral; DC is not NP/PA, so no REF-004; the NPI is valid.
    """
    provider = new_provider(c, "DC")
    h.referral()["provider_id"] = provider
    for report in h.mine("progress_reports"):
        report["provider_id"] = provider
    return [h.expect("REF-003", "referral", h.referral()["referral_id"])]


@defect("REF-004")
def ref004_np_without_supervisor(c: Cohort, h: Host) -> list[Expected]:
    """A nurse practitioner refers and no supervising physician is named.

    A new NP provider (valid NPI) is the referrer, supervising_provider_id NULL.
    REF-004 on the referral.
    """
    h.referral()["provider_id"] = new_provider(c, "NP")
    h.referral()["supervising_provider_id"] = None
    return [h.expect("REF-004", "referral", h.referral()["referral_id"])]


@defect("REF-004")
def ref004_supervisor_not_physician(c: Cohort, h: Host) -> list[Expected]:
    """A physician assistant refers under a podiatrist (DPM), who is not an MD or DO.

    New PA referrer and new DPM supervisor, both with valid NPIs. REF-004 on the
    referral (the referrer's own credential and NPI are fine).
    """
    h.referral()["provider_id"] = new_provider(c, "PA")
    h.referral()["supervising_provider_id"] = new_provider(c, "DPM")
    return [h.expect("REF-004", "referral", h.referral()["referral_id"])]


@defect("REF-005")
def ref005_invalid_referrer_npi(c: Cohort, h: Host) -> list[Expected]:
    """The referring MD's NPI fails its check digit.

    A new MD provider whose NPI has its last digit changed. REF-005 on the referral.
    """
    h.referral()["provider_id"] = new_provider(c, "MD", valid_npi=False)
    return [h.expect("REF-005", "referral", h.referral()["referral_id"])]


@defect("REF-006")
def ref006_unsigned_referral(c: Cohort, h: Host) -> list[Expected]:
    """The referral carries no signature date. REF-006 on the referral."""
    h.referral()["signed_on"] = None
    return [h.expect("REF-006", "referral", h.referral()["referral_id"])]


@defect("REF-007")
def ref007_services_not_medical_exercise(c: Cohort, h: Host) -> list[Expected]:
    """The referral orders a conditioning program, not medical exercise. REF-007 on the referral."""
    h.referral()["services_requested"] = "Strength and conditioning program, 2x/week"
    return [h.expect("REF-007", "referral", h.referral()["referral_id"])]


@defect("REF-008")
def ref008_referral_without_diagnosis(c: Cohort, h: Host) -> list[Expected]:
    """The referral lists no diagnosis.

    Its referral_diagnoses rows are deleted. REF-008 on the referral; the claim
    diagnoses are still the client's condition codes (no COD-004).
    """
    referral_id = h.referral()["referral_id"]
    c.remove("referral_diagnoses", lambda r: r["referral_id"] == referral_id)
    return [h.expect("REF-008", "referral", referral_id)]


@defect("REF-009", active=True)
def ref009_referral_expiring(c: Cohort, h: Host) -> list[Expected]:
    """An active client's only referral expires in 10 days and nothing follows it.

    valid_until = D+10 (it still covers every session up to D). REF-009 on the
    referral, due D+10.
    """
    expiry = c.day(10)
    h.referral()["valid_until"] = iso(expiry)
    return [h.expect("REF-009", "referral", h.referral()["referral_id"], due=expiry)]


@defect("DQ-002", "REF-003", "REF-005")
def ref_missing_provider_row(c: Cohort, h: Host) -> list[Expected]:
    """The referral names a provider that is not in providers.

    DQ-002 on the referrals row (dangling provider_id); REF-003 (a missing
    provider row is a missing credential) and REF-005 (and a missing NPI) on the
    referral. REF-004 is not raised: nothing proves the referrer is an NP or PA
    (rulebook reading 2). The progress reports keep the original recipient.
    """
    referral = h.referral()
    referral["provider_id"] = _unused_id(c, "providers")
    rid = referral["referral_id"]
    return [
        h.expect_row("DQ-002", "referrals", rid),
        h.expect("REF-003", "referral", rid),
        h.expect("REF-005", "referral", rid),
    ]


# --- ELG ---------------------------------------------------------------------------------


@defect("ELG-001")
def elg001_billed_to_medicare_advantage(c: Cohort, h: Host) -> list[Expected]:
    """One claim goes to the client's Medicare Advantage plan.

    A second policy (medicare_advantage, in network, no preauth, active
    eligibility check before e0) is added and the middle session's claim is
    billed to it. ELG-001 on that claim only (its policy has a timely active
    check, so no ELG-002; the first policy keeps its earlier claims).
    """
    policy = _second_policy(
        c,
        h,
        payer="Humana Medicare Advantage",
        plan_type="medicare_advantage",
        network="in_network",
    )
    claim = h.claim_for(h.middle_session())
    claim["policy_id"] = policy
    return [h.expect("ELG-001", "claim", claim["claim_id"])]


@defect("ELG-002")
def elg002_eligibility_checked_late(c: Cohort, h: Host) -> list[Expected]:
    """Insurance was verified five days after the first billed session.

    The policy's only (active) check is moved to first session + 5 days.
    ELG-002 on the policy.
    """
    first = h.sessions_in_view()[0]
    (check,) = c.find("eligibility_checks", policy_id=h.policy_id)
    check["checked_on"] = iso(day_of(first["session_date"]) + timedelta(days=5))
    return [h.expect("ELG-002", "policy", h.policy_id)]


@defect("ELG-003")
def elg003_out_of_network_without_benefits(c: Cohort, h: Host) -> list[Expected]:
    """One claim goes to an out-of-network plan without out-of-network benefits.

    A second policy (commercial, out_of_network, oon_benefits false, active
    check before e0) takes the middle session's claim. ELG-003 on that claim.
    """
    policy = _second_policy(c, h, payer="Cigna", plan_type="commercial", network="out_of_network")
    claim = h.claim_for(h.middle_session())
    claim["policy_id"] = policy
    return [h.expect("ELG-003", "claim", claim["claim_id"])]


@defect("ELG-004", preauth=True)
def elg004_service_outside_authorization(c: Cohort, h: Host) -> list[Expected]:
    """The last authorization ends the day before the last session.

    The second 56-day authorization's end_date = last session - 1. ELG-004 on
    both lines of the last session's claim (no authorization covers that date,
    so ELG-005 does not count it).
    """
    last = h.sessions_in_view()[-1]
    auths = sorted(c.find("authorizations", policy_id=h.policy_id), key=lambda a: a["start_date"])
    auths[-1]["end_date"] = iso(day_of(last["session_date"]) - timedelta(days=1))
    return _session_line_findings(h, "ELG-004", h.claim_for(last))


@defect("ELG-005", preauth=True)
def elg005_visits_beyond_authorization(c: Cohort, h: Host) -> list[Expected]:
    """The first authorization approves two visits fewer than were billed in its window.

    The first window (D-200..D-145) holds 16 billed dates; approved_visits =
    16 - 2. ELG-005 on every line (2 each) of the two latest dates in the window.
    """
    auth = min(c.find("authorizations", policy_id=h.policy_id), key=lambda a: a["start_date"])
    d = iso(c.as_of)
    in_window = [
        (line["service_date"], line)
        for claim in h.claims()
        if claim["policy_id"] == h.policy_id and claim["status"] != "void"
        for line in h.lines(claim["claim_id"])
        if auth["start_date"] <= line["service_date"] <= auth["end_date"]
        and line["service_date"] <= d
    ]
    dates = sorted({day for day, _ in in_window})
    auth["approved_visits"] = len(dates) - 2
    beyond = set(dates[len(dates) - 2 :])
    return [
        h.expect("ELG-005", "claim_line", line["line_id"])
        for day, line in in_window
        if day in beyond
    ]


@defect("ELG-006", active=True, preauth=True)
def elg006_authorization_ending(c: Cohort, h: Host) -> list[Expected]:
    """An active client's authorization ends in 7 days.

    The authorization covering D (D-34..D+21) now ends D+7; every line up to D
    is still inside it. ELG-006 on the authorization, due D+7.
    """
    auth = _authorization_covering_d(c, h)
    end = c.day(7)
    auth["end_date"] = iso(end)
    return [h.expect("ELG-006", "authorization", auth["authorization_id"], due=end)]


@defect("ELG-006", active=True, preauth=True)
def elg006_visits_nearly_used(c: Cohort, h: Host) -> list[Expected]:
    """An active client's authorization has two visits left.

    10 dates are billed in the window covering D (D-33 ... D-2, drafts count as
    live claims); approved_visits = 12. ELG-006 on the authorization, due on its
    end date D+21; no visit is beyond it, so no ELG-005.
    """
    auth = _authorization_covering_d(c, h)
    d = iso(c.as_of)
    used = {
        line["service_date"]
        for claim in h.claims()
        if claim["status"] != "void"
        for line in h.lines(claim["claim_id"])
        if auth["start_date"] <= line["service_date"] <= min(auth["end_date"], d)
    }
    auth["approved_visits"] = len(used) + 2
    return [
        h.expect("ELG-006", "authorization", auth["authorization_id"], due=day_of(auth["end_date"]))
    ]


def _authorization_covering_d(c: Cohort, h: Host) -> Row:
    d = iso(c.as_of)
    (auth,) = [
        a
        for a in c.find("authorizations", policy_id=h.policy_id)
        if a["start_date"] <= d <= a["end_date"]
    ]
    return auth


@defect("ELG-007")
def elg007_rehab_discharge_after_start(c: Cohort, h: Host) -> list[Expected]:
    """The PT discharge is dated ten days after the first session. ELG-007 on the client."""
    first = h.sessions_in_view()[0]
    (discharge,) = h.mine("rehab_discharges")
    discharge["discharge_date"] = iso(day_of(first["session_date"]) + timedelta(days=10))
    return [h.expect("ELG-007", "client", h.client_id)]


@defect("ELG-008")
def elg008_no_qualifying_condition(c: Cohort, h: Host) -> list[Expected]:
    """Every condition of the client is of category 'other'.

    The codes stay, so the claim diagnoses remain documented. ELG-008 on the client.
    """
    for condition in h.mine("conditions"):
        condition["category"] = "other"
    return [h.expect("ELG-008", "client", h.client_id)]


@defect("ELG-009")
def elg009_no_functional_deficits(c: Cohort, h: Host) -> list[Expected]:
    """The initial assessment records no residual functional deficit. ELG-009 on it."""
    (initial,) = h.assessments("initial")
    initial["functional_deficits"] = None
    return [h.expect("ELG-009", "assessment", initial["assessment_id"])]


# --- DOC ---------------------------------------------------------------------------------


@defect("DOC-001")
def doc001_intake_missing_phone(c: Cohort, h: Host) -> list[Expected]:
    """The intake form has no emergency contact phone. DOC-001 on the client."""
    (intake,) = h.mine("intake_forms")
    intake["emergency_contact_phone"] = None
    return [h.expect("DOC-001", "client", h.client_id)]


@defect("DOC-002")
def doc002_initial_assessment_after_first_session(c: Cohort, h: Host) -> list[Expected]:
    """The initial assessment is dated two days after the first session.

    assessed_on = D-197 (first session D-199). DOC-002 on the client. The first
    session has no assessment before it, so REA-001 is not raised for it; the
    next sessions follow D-197 by less than 30 days.
    """
    (initial,) = h.assessments("initial")
    first = h.sessions_in_view()[0]
    initial["assessed_on"] = iso(day_of(first["session_date"]) + timedelta(days=2))
    initial["signed_on"] = initial["assessed_on"]
    return [h.expect("DOC-002", "client", h.client_id), *_rea001_sessions(h)]


@defect("DOC-003")
def doc003_posture_not_documented(c: Cohort, h: Host) -> list[Expected]:
    """The initial assessment does not document posture. DOC-003 on the assessment."""
    (initial,) = h.assessments("initial")
    initial["posture_documented"] = 0
    return [h.expect("DOC-003", "assessment", initial["assessment_id"])]


@defect("DOC-004")
def doc004_session_before_plan(c: Cohort, h: Host) -> list[Expected]:
    """The first plan of exercise starts the day after the first session.

    start_date = first session + 1. DOC-004 on the first session only.
    """
    first = h.sessions_in_view()[0]
    h.plans()[0]["start_date"] = iso(day_of(first["session_date"]) + timedelta(days=1))
    return [h.expect("DOC-004", "session", first["session_id"])]


@defect("DOC-005")
def doc005_plan_without_progression(c: Cohort, h: Host) -> list[Expected]:
    """The second plan of exercise has no progression. DOC-005 on that plan."""
    plan = h.plans()[1]
    plan["progression"] = None
    return [h.expect("DOC-005", "poe", plan["poe_id"])]


@defect("DOC-006")
def doc006_plan_without_long_term_goal(c: Cohort, h: Host) -> list[Expected]:
    """The second plan of exercise has no long-term goal (deleted). DOC-006 on that plan."""
    plan = h.plans()[1]
    c.remove("goals", lambda g: g["poe_id"] == plan["poe_id"] and g["term"] == "long")
    return [h.expect("DOC-006", "poe", plan["poe_id"])]


@defect("DOC-007")
def doc007_goal_without_target(c: Cohort, h: Host) -> list[Expected]:
    """The second plan's short-term goal has no target value. DOC-007 on the goal."""
    plan = h.plans()[1]
    (goal,) = c.find("goals", poe_id=plan["poe_id"], term="short")
    goal["target_value"] = None
    return [h.expect("DOC-007", "goal", goal["goal_id"])]


@defect("DOC-008")
def doc008_session_without_client_response(c: Cohort, h: Host) -> list[Expected]:
    """The middle session's log has no client response. DOC-008 on the session."""
    session = h.middle_session()
    session["client_response"] = None
    return [h.expect("DOC-008", "session", session["session_id"])]


@defect("DOC-009")
def doc009_note_signed_late(c: Cohort, h: Host) -> list[Expected]:
    """The middle session's note is signed five days after the session.

    signed_at = session date + 5 days, 17:00 in the practice's zone. DOC-009 on
    the session.
    """
    session = h.middle_session()
    session["signed_at"] = h.signed_at(day_of(session["session_date"]) + timedelta(days=5))
    return [h.expect("DOC-009", "session", session["session_id"])]


@defect("DOC-010")
def doc010_certification_expired(c: Cohort, h: Host) -> list[Expected]:
    """The middle session is delivered by an MES whose certification expired the day before.

    A new MES staff member (valid NPI) delivers and renders it. DOC-010 on the
    session; COD-008 is not raised (valid NPI).
    """
    session = h.middle_session()
    staff = new_staff(c, h, expires=day_of(session["session_date"]) - timedelta(days=1))
    session["staff_id"] = staff
    h.claim_for(session)["rendering_staff_id"] = staff
    return [h.expect("DOC-010", "session", session["session_id"])]


@defect("DOC-011")
def doc011_session_note_out_of_scope(c: Cohort, h: Host) -> list[Expected]:
    """The middle session's note talks about medication. DOC-011 on the session."""
    session = h.middle_session()
    session["notes"] = "Client started a new medication; kept intensity moderate"
    return [h.expect("DOC-011", "session", session["session_id"])]


@defect("DOC-011")
def doc011_assessment_note_out_of_scope(c: Cohort, h: Host) -> list[Expected]:
    """The first reassessment's note speaks of treatment. DOC-011 on the assessment."""
    first_reassessment = h.assessments("reassessment")[0]
    first_reassessment["notes"] = "Knee treatment by the surgeon continues"
    return [h.expect("DOC-011", "assessment", first_reassessment["assessment_id"])]


@defect("DOC-012")
def doc012_progress_report_not_sent(c: Cohort, h: Host) -> list[Expected]:
    """The progress report after the first reassessment was written but never sent.

    Its sent_on is NULL. DOC-012 on the first reassessment (D-172); no other
    report of the client falls within D-172..D-158.
    """
    first_reassessment = h.assessments("reassessment")[0]
    (report,) = c.find("progress_reports", assessment_id=first_reassessment["assessment_id"])
    report["sent_on"] = None
    return [h.expect("DOC-012", "assessment", first_reassessment["assessment_id"])]


# --- REA ---------------------------------------------------------------------------------


@defect("REA-001")
def rea001_reassessment_late(c: Cohort, h: Host) -> list[Expected]:
    """The first reassessment happens on day 36 instead of day 28.

    R1 moves from D-172 to D-164 (its report to D-161, so DOC-012 holds). The
    session of D-168 is 32 days after the initial assessment: REA-001 on it.
    """
    first_reassessment = h.assessments("reassessment")[0]
    first_reassessment["assessed_on"] = iso(h.e0 + timedelta(days=36))
    first_reassessment["signed_on"] = first_reassessment["assessed_on"]
    _move_report(h, first_reassessment, 3)
    return _rea001_sessions(h)


@defect("REA-002", "REA-001", active=True)
def rea002_reassessment_overdue(c: Cohort, h: Host) -> list[Expected]:
    """An active client's reassessment slipped past D: the last one in view is 34 days old.

    R1 moves from D-6 to D+3 (out of the view with its measures; its report to
    D+6). REA-002 on the client (latest assessment D-34); REA-001 on the session
    of D-2 (32 days after D-34). REA-003 is not raised (its day, D-4, is past).
    """
    first_reassessment = h.assessments("reassessment")[0]
    first_reassessment["assessed_on"] = iso(c.day(3))
    first_reassessment["signed_on"] = first_reassessment["assessed_on"]
    _move_report(h, first_reassessment, 3)
    return [h.expect("REA-002", "client", h.client_id), *_rea001_sessions(h)]


@defect("REA-003", active=True)
def rea003_reassessment_due_soon(c: Cohort, h: Host) -> list[Expected]:
    """An active client's reassessment falls due in 4 days.

    R1 moves from D-6 to D-26 (its report to D-23, inside 14 days). Latest
    assessment + 30 = D+4: REA-003 on the client, due D+4. No session is more
    than 30 days after its latest assessment.
    """
    first_reassessment = h.assessments("reassessment")[0]
    first_reassessment["assessed_on"] = iso(c.day(-26))
    first_reassessment["signed_on"] = first_reassessment["assessed_on"]
    _move_report(h, first_reassessment, 3)
    due = c.day(-26 + REASSESSMENT_INTERVAL_DAYS)
    return [h.expect("REA-003", "client", h.client_id, due=due), *_rea001_sessions(h)]


@defect("REA-004")
def rea004_reassessment_without_measures(c: Cohort, h: Host) -> list[Expected]:
    """The first reassessment records no outcome measure.

    Its measures are deleted. REA-004 on it; REA-005 compares the latest
    reassessment (R2), which still improves.
    """
    first_reassessment = h.assessments("reassessment")[0]
    c.remove(
        "outcome_measures", lambda m: m["assessment_id"] == first_reassessment["assessment_id"]
    )
    return [h.expect("REA-004", "assessment", first_reassessment["assessment_id"])]


@defect("REA-005")
def rea005_no_improvement(c: Cohort, h: Host) -> list[Expected]:
    """The latest reassessment measures exactly what the initial assessment did.

    R2's TUG, LEFS and PAIN_NRS are set to the initial values. REA-005 on the client.
    """
    (initial,) = h.assessments("initial")
    latest = h.assessments("reassessment")[-1]
    baseline = {
        m["instrument"]: m["value"]
        for m in c.find("outcome_measures", assessment_id=initial["assessment_id"])
    }
    for measure in c.find("outcome_measures", assessment_id=latest["assessment_id"]):
        measure["value"] = baseline[measure["instrument"]]
    return [h.expect("REA-005", "client", h.client_id)]


# --- COD ---------------------------------------------------------------------------------


@defect("COD-001")
def cod001_manual_therapy_billed(c: Cohort, h: Host) -> list[Expected]:
    """Manual therapy (97140) is delivered and billed; it is not a medical exercise code.

    The middle session gets a 15-minute 97140 service and its claim a 97140
    line (1 unit). COD-001 on that line. The service exists (no COD-010); 97140
    is not a timed code, so COD-005 does not count it.
    """
    session = h.middle_session()
    c.add(
        "session_services",
        {"session_id": session["session_id"], "cpt_code": "97140", "minutes": 15},
    )
    claim = h.claim_for(session)
    lines = h.lines(claim["claim_id"])
    line = add_line(
        c, claim["claim_id"], len(lines) + 1, day_of(session["session_date"]), "97140", 1, "A"
    )
    claim["total_charge"] = claim["total_charge"] + HOST_FEES["97140"]
    if claim["paid_amount"] is not None:
        claim["paid_amount"] = round(claim["total_charge"] * 0.7, 2)
    return [h.expect("COD-001", "claim_line", line["line_id"])]


@defect("COD-002")
def cod002_pointer_without_diagnosis(c: Cohort, h: Host) -> list[Expected]:
    """A line points to diagnosis C; the claim has only A and B. COD-002 on that line."""
    line = h.lines(h.claim_for(h.middle_session())["claim_id"])[1]
    line["diagnosis_pointers"] = "C"
    return [h.expect("COD-002", "claim_line", line["line_id"])]


@defect("COD-002")
def cod002_blank_pointer(c: Cohort, h: Host) -> list[Expected]:
    """A line points to no diagnosis (diagnosis_pointers NULL). COD-002 on that line."""
    line = h.lines(h.claim_for(h.middle_session())["claim_id"])[1]
    line["diagnosis_pointers"] = None
    return [h.expect("COD-002", "claim_line", line["line_id"])]


@defect("COD-003")
def cod003_header_code_billed(c: Cohort, h: Host) -> list[Expected]:
    """A claim bills M54.5, a category header not billable since 2021-10-01.

    The referring physician wrote M54.5 on the referral (added as diagnosis 3)
    and the middle claim's diagnosis B copies it. COD-003 on CLAIM:B; the code
    is on a referral, so no COD-004.
    """
    referral_id = h.referral()["referral_id"]
    c.add(
        "referral_diagnoses",
        {"referral_id": referral_id, "seq": 3, "icd10_code": vocab.HEADER_CODE},
    )
    claim = h.claim_for(h.middle_session())
    (diagnosis,) = c.find("claim_diagnoses", claim_id=claim["claim_id"], pointer="B")
    diagnosis["icd10_code"] = vocab.HEADER_CODE
    return [h.expect("COD-003", "claim_diagnosis", f"{claim['claim_id']}:B")]


@defect("COD-004")
def cod004_diagnosis_not_documented(c: Cohort, h: Host) -> list[Expected]:
    """A claim bills a valid code (M25.561) that no referral or condition of the client lists.

    Diagnosis B of the middle claim. COD-004 on CLAIM:B.
    """
    claim = h.claim_for(h.middle_session())
    (diagnosis,) = c.find("claim_diagnoses", claim_id=claim["claim_id"], pointer="B")
    diagnosis["icd10_code"] = vocab.UNDOCUMENTED_CODE
    return [h.expect("COD-004", "claim_diagnosis", f"{claim['claim_id']}:B")]


@defect("COD-005")
def cod005_units_exceed_minutes(c: Cohort, h: Host) -> list[Expected]:
    """The middle claim bills 4 units of 97110 instead of 2.

    Billed timed units 4 + 1 = 5; the day's 50 minutes allow (50 + 7) // 15 = 3
    (unit rule cms). COD-005 on CLIENT:DATE.
    """
    session = h.middle_session()
    line = h.lines(h.claim_for(session)["claim_id"])[0]
    line["units"] = 4
    line["charge"] = 4 * HOST_FEES[line["cpt_code"]]
    return [h.expect("COD-005", "client_date", f"{h.client_id}:{session['session_date']}")]


@defect("COD-006")
def cod006_billed_no_show(c: Cohort, h: Host) -> list[Expected]:
    """A no-show was billed: the middle session's status is no_show, its claim stands.

    COD-006 on both claim lines. The session is not completed, so the session
    rules (DOC-004/008/009/010, REF-002, REA-001) skip it, and COD-005/COD-010
    need a completed session that day.
    """
    session = h.middle_session()
    session["status"] = "no_show"
    return _session_line_findings(h, "COD-006", h.claim_for(session))


@defect("COD-007", "COD-005")
def cod007_double_billed_session(c: Cohort, h: Host) -> list[Expected]:
    """The middle session is billed twice: a second paid claim repeats its lines.

    COD-007 on both lines of the second claim (its id sorts after the first);
    COD-005 on CLIENT:DATE, since 6 timed units now stand against 3 allowed.
    """
    session = h.middle_session()
    original = h.claim_for(session)
    claim_id = c.new_id("claims")
    duplicate = dict(original)
    duplicate["claim_id"] = claim_id
    duplicate["submitted_on"] = iso(day_of(original["submitted_on"]) + timedelta(days=2))
    c.add("claims", duplicate)
    for dx in c.find("claim_diagnoses", claim_id=original["claim_id"]):
        c.add("claim_diagnoses", {**dx, "claim_id": claim_id})
    found = []
    for line in h.lines(original["claim_id"]):
        copy = add_line(
            c,
            claim_id,
            line["line_no"],
            day_of(line["service_date"]),
            line["cpt_code"],
            line["units"],
            line["diagnosis_pointers"],
        )
        found.append(h.expect("COD-007", "claim_line", copy["line_id"]))
    found.append(h.expect("COD-005", "client_date", f"{h.client_id}:{session['session_date']}"))
    return found


@defect("COD-008")
def cod008_invalid_billing_npi(c: Cohort, h: Host) -> list[Expected]:
    """The middle claim's billing NPI fails its check digit. COD-008 on the claim."""
    claim = h.claim_for(h.middle_session())
    npi = claim["billing_npi"]
    claim["billing_npi"] = npi[:9] + str((int(npi[9]) + 1) % 10)
    return [h.expect("COD-008", "claim", claim["claim_id"])]


@defect("COD-009")
def cod009_filed_late(c: Cohort, h: Host) -> list[Expected]:
    """The middle claim is submitted 100 days after the service (limit: 90, the default).

    submitted_on = D-64; the claim is paid, so no CLM-002. COD-009 on the claim.
    """
    session = h.middle_session()
    claim = h.claim_for(session)
    claim["submitted_on"] = iso(day_of(session["session_date"]) + timedelta(days=100))
    return [h.expect("COD-009", "claim", claim["claim_id"])]


@defect("COD-010")
def cod010_code_not_in_session(c: Cohort, h: Host) -> list[Expected]:
    """The middle claim's 97530 line is billed as 97112, which the session did not record.

    COD-010 on that line. Units are unchanged (COD-005 holds) and no other line
    of the day has 97112 (no COD-007).
    """
    line = h.lines(h.claim_for(h.middle_session())["claim_id"])[1]
    line["cpt_code"] = "97112"
    return [h.expect("COD-010", "claim_line", line["line_id"])]


# --- CLM ---------------------------------------------------------------------------------


@defect("CLM-001")
def clm001_denial_not_appealed(c: Cohort, h: Host) -> list[Expected]:
    """The middle claim was denied 20 days after submission (D-141) and never appealed.

    CLM-001 on the claim.
    """
    claim = h.claim_for(h.middle_session())
    claim["status"] = "denied"
    claim["denied_on"] = iso(day_of(claim["submitted_on"]) + timedelta(days=20))
    claim["paid_amount"] = None
    return [h.expect("CLM-001", "claim", claim["claim_id"])]


@defect("CLM-002")
def clm002_no_answer_from_payer(c: Cohort, h: Host) -> list[Expected]:
    """The middle claim (submitted D-161) is still 'submitted': no answer in 161 days.

    CLM-002 on the claim (a notice without due date).
    """
    claim = h.claim_for(h.middle_session())
    claim["status"] = "submitted"
    claim["paid_amount"] = None
    return [h.expect("CLM-002", "claim", claim["claim_id"])]


# --- DQ ----------------------------------------------------------------------------------


@defect("DQ-001", duplicates_keys=True)
def dq001_duplicate_eligibility_check(c: Cohort, h: Host) -> list[Expected]:
    """The eligibility check row is stored twice, identically. DQ-001 on the row."""
    (check,) = c.find("eligibility_checks", policy_id=h.policy_id)
    c.add("eligibility_checks", dict(check))
    return [h.expect_row("DQ-001", "eligibility_checks", check["check_id"])]


@defect("DQ-002")
def dq002_report_to_unknown_provider(c: Cohort, h: Host) -> list[Expected]:
    """A progress report names a recipient missing from providers.

    DQ-002 on the progress_reports row; no rule reads the recipient.
    """
    report = sorted(h.mine("progress_reports"), key=lambda r: r["report_id"])[0]
    report["provider_id"] = _unused_id(c, "providers")
    return [h.expect_row("DQ-002", "progress_reports", report["report_id"])]


@defect("DQ-002", "DOC-010")
def dq002_session_staff_missing(c: Cohort, h: Host) -> list[Expected]:
    """The middle session names a staff member missing from staff.

    DQ-002 on the sessions row; DOC-010 on the session (a missing staff row is a
    missing credential). Its claim keeps a valid rendering staff member.
    """
    session = h.middle_session()
    session["staff_id"] = _unused_id(c, "staff")
    return [
        h.expect_row("DQ-002", "sessions", session["session_id"]),
        h.expect("DOC-010", "session", session["session_id"]),
    ]


@defect("DQ-002", "COD-008")
def dq002_claim_rendering_staff_null(c: Cohort, h: Host) -> list[Expected]:
    """The middle claim has no rendering staff (NULL in a required link).

    DQ-002 on the claims row (a NULL required link is DQ-002, not DQ-003);
    COD-008 on the claim (no staff row, so no rendering NPI).
    """
    claim = h.claim_for(h.middle_session())
    claim["rendering_staff_id"] = None
    return [
        h.expect_row("DQ-002", "claims", claim["claim_id"]),
        h.expect("COD-008", "claim", claim["claim_id"]),
    ]


@defect("DQ-003", "COD-006", unreadable=(("sessions", "session_date"),))
def dq003_unreadable_session_date(c: Cohort, h: Host) -> list[Expected]:
    """The middle session's date is unreadable ('next Tuesday').

    DQ-003 on the sessions row; the session leaves the view with its logs and
    services, so both lines of its claim have no completed session that day:
    COD-006 on each (and no COD-005/COD-010, which need that session).
    """
    session = h.middle_session()
    claim = h.claim_for(session)
    session["session_date"] = "next Tuesday"
    return [
        h.expect_row("DQ-003", "sessions", session["session_id"]),
        *_session_line_findings(h, "COD-006", claim),
    ]


@defect("DQ-003")
def dq003_unlisted_client_status(c: Cohort, h: Host) -> list[Expected]:
    """The client's status is 'archived', not a listed value. DQ-003 on the clients row."""
    (client,) = c.find("clients", client_id=h.client_id)
    client["status"] = "archived"
    return [h.expect_row("DQ-003", "clients", h.client_id)]


@defect("DQ-003")
def dq003_missing_date_of_birth(c: Cohort, h: Host) -> list[Expected]:
    """The client's date of birth is NULL (a required column). DQ-003 on the clients row."""
    (client,) = c.find("clients", client_id=h.client_id)
    client["date_of_birth"] = None
    return [h.expect_row("DQ-003", "clients", h.client_id)]


@defect("DQ-003", unreadable=(("claim_lines", "units"),))
def dq003_unreadable_units(c: Cohort, h: Host) -> list[Expected]:
    """A claim line's units read 'two'.

    DQ-003 on the claim_lines row; unreadable units count as 0 for COD-005
    (reading 13), so nothing else fires.
    """
    line = h.lines(h.claim_for(h.middle_session())["claim_id"])[0]
    line["units"] = "two"
    return [h.expect_row("DQ-003", "claim_lines", line["line_id"])]


@defect("DQ-003", "DOC-001", unreadable=(("intake_forms", "health_history_complete"),))
def dq003_unreadable_health_history(c: Cohort, h: Host) -> list[Expected]:
    """The intake's health_history_complete reads 'yes', not a boolean of the contract.

    DQ-003 on the intake_forms row; DOC-001 on the client (the requirement is
    unknown, so it fails: reading 2).
    """
    (intake,) = h.mine("intake_forms")
    intake["health_history_complete"] = "yes"
    return [
        h.expect_row("DQ-003", "intake_forms", intake["intake_id"]),
        h.expect("DOC-001", "client", h.client_id),
    ]


@defect("DQ-003", "DOC-009", unreadable=(("sessions", "signed_at"),))
def dq003_unreadable_signature_time(c: Cohort, h: Host) -> list[Expected]:
    """The middle session's signed_at reads 'signed'.

    DQ-003 on the sessions row; the signature is then unknown, i.e. NULL
    (reading 1), and the session is more than 2 days old: DOC-009 on it.
    """
    session = h.middle_session()
    session["signed_at"] = "signed"
    return [
        h.expect_row("DQ-003", "sessions", session["session_id"]),
        h.expect("DOC-009", "session", session["session_id"]),
    ]


def select(defects: str | Iterable[str]) -> list[Defect]:
    """The catalogue entries named by ``defects``: 'all', 'none', names, or rule ids."""
    if isinstance(defects, str):
        tokens = [t.strip() for t in defects.split(",") if t.strip()]
    else:
        tokens = [str(t).strip() for t in defects]
    if not tokens or tokens == ["none"]:
        return []
    if "all" in tokens:
        return list(DEFECTS.values())
    chosen: dict[str, Defect] = {}
    unknown = []
    for token in tokens:
        if token in DEFECTS:
            chosen[token] = DEFECTS[token]
            continue
        by_rule = [d for d in DEFECTS.values() if token.upper() in d.rules]
        if not by_rule:
            unknown.append(token)
        for d in by_rule:
            chosen[d.name] = d
    if unknown:
        raise UnknownDefectError(
            f"unknown defect(s) {', '.join(unknown)}; choose from: all, none, a rule id, "
            + ", ".join(DEFECTS)
        )
    return [d for name, d in DEFECTS.items() if name in chosen]


def rules_covered() -> set[str]:
    """Every rule id some defect of the catalogue causes."""
    return {rule for d in DEFECTS.values() for rule in d.rules}


__all__ = ["DEFECTS", "Defect", "Expected", "UnknownDefectError", "rules_covered", "select"]
