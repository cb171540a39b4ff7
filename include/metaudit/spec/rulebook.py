"""The rulebook: every rule of the audit, defined once.

Each :class:`Rule` carries its id, family, severity, the kind of record it
flags, a short title, its meaning in plain words, how to fix it, and the
template of the one-sentence message a finding carries. The GX suites, the
findings, the morning email, the audit packets and ``docs/rules.md`` all read
the rules from here (``metaudit.docs_gen`` renders the docs).

Meanings state the rulebook's default numbers and code lists; every one of
them is a setting (``Rule.settings`` names them, ``metaudit.spec.settings`` holds
the values), so a practice may run with other numbers. The texts name such a
default by its setting, e.g. ``{reassessment_interval_days}``, and
:func:`fill_defaults` writes in the setting's default when the rulebook is
built: each number lives in the settings only. Messages never state a number
that a setting controls.

Message templates use three placeholders only:

- ``{entity}``: the record, e.g. "Referral R-12", "Client C-1 on 2026-03-02";
- ``{missing}``: the parts the failing record lacks, joined with ", " (when a
  finding names none, the rule's ``missing_default`` phrase stands in);
- ``{due}``: "on YYYY-MM-DD" for a notice with a due date, "soon" without one.

A message never carries a client's name, a diagnosis or a note's text: only
record ids, dates and the static phrases of this module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from metaudit.spec import settings as rule_settings

SEVERITY_ORDER: tuple[str, ...] = ("critical", "warning", "notice")

SEVERITY_MEANINGS: dict[str, str] = {
    "critical": (
        "The claim is likely to be denied, or paid now and taken back at audit. Fix before billing."
    ),
    "warning": "Weakens the proof of medical necessity or the defence at an audit.",
    "notice": "Something falls due soon; nothing is wrong yet.",
}

FAMILIES: dict[str, str] = {
    "REF": "Referral validity",
    "ELG": "Coverage and medical necessity",
    "DOC": "Documentation completeness",
    "REA": "Reassessment due dates",
    "COD": "Code linkage",
    "CLM": "Claim follow-up",
    "DQ": "The source itself",
}

# The word that names each kind of record in a finding's message.
ENTITY_LABELS: dict[str, str] = {
    "client": "Client",
    "session": "Session",
    "referral": "Referral",
    "policy": "Policy",
    "claim": "Claim",
    "claim_line": "Claim line",
    "claim_diagnosis": "Claim diagnosis",
    "assessment": "Assessment",
    "poe": "Plan of exercise",
    "goal": "Goal",
    "authorization": "Authorization",
    "client_date": "Client",
    "row": "Row",
}

PLACEHOLDERS = frozenset({"entity", "missing", "due"})


@dataclass(frozen=True)
class Rule:
    """One rule of the rulebook.

    ``message`` is the template of a finding's sentence (see the module
    docstring for its placeholders). ``missing_default`` is the phrase that
    fills ``{missing}`` when a finding names no part. ``settings`` lists the
    settings (``metaudit.spec.settings``) whose values the rule reads.
    """

    id: str
    family: str
    severity: str
    entity_types: tuple[str, ...]
    title: str
    meaning: str
    fix: str
    message: str
    missing_default: str = ""
    settings: tuple[str, ...] = ()
    # An illustration for the documentation (docs/rules.md) only: never mailed, since an
    # example code can match a client's own diagnosis. Emails carry no ICD-10 code at all.
    example: str = ""

    @property
    def entity_type(self) -> str:
        """The rule's main entity (the first; only DOC-011 has two)."""
        return self.entity_types[0]

    @property
    def uses_parts(self) -> bool:
        """Whether the message names the parts a failing record lacks."""
        return "{missing}" in self.message

    @property
    def has_due_date(self) -> bool:
        """Whether a finding of this rule carries a due date."""
        return "{due}" in self.message


def _rules() -> tuple[Rule, ...]:
    # Wording: meanings speak of "the audit date" (the as-of date of a run,
    # normally today) and of an "active client" (a completed session within the last
    # active_client_days days), the words a compliance lead uses. Titles,
    # meanings, fixes and examples name settings' defaults by placeholder (see
    # fill_defaults); a literal brace there would have to be doubled.
    return (
        # ---------------------------------------------------------------- REF
        Rule(
            id="REF-001",
            family="REF",
            severity="critical",
            entity_types=("client",),
            title="No referral on file",
            meaning=(
                "The client has had at least one completed session, yet not a single "
                "referral is recorded for them."
            ),
            fix=(
                "Obtain a written referral from the client's MD, DO, DPM or supervised "
                "NP/PA and record it; hold billing until it is on file."
            ),
            message="{entity} has completed sessions but no referral on file",
        ),
        Rule(
            id="REF-002",
            family="REF",
            severity="critical",
            entity_types=("session",),
            title="Session not covered by a referral",
            meaning=(
                "A completed session falls on a date that none of the client's referrals "
                "covers. A referral covers the days from its referral date through its "
                "expiry: its valid-until date, or {referral_validity_days} days after the "
                "referral date when valid-until is empty. Not reported for a client with no "
                "referral at all (REF-001 reports that)."
            ),
            fix=(
                "Get a renewed referral that covers the session date, or correct the "
                "referral's dates if they were entered wrong; do not bill the session "
                "until it is covered."
            ),
            message="{entity} took place on a date that none of the client's referrals covers",
            settings=("referral_validity_days",),
        ),
        Rule(
            id="REF-003",
            family="REF",
            severity="critical",
            entity_types=("referral",),
            title="Referring provider not qualified",
            meaning=(
                "The referring provider's credential is not one of MD, DO, DPM, NP or PA, "
                "or the provider the referral names is not in the provider records (an "
                "unknown credential counts as not qualified)."
            ),
            fix=(
                "Get the referral from a qualified provider, or correct the provider's "
                "credential or the referral's provider link if it was recorded wrong."
            ),
            message=(
                "{entity} comes from a provider whose credential does not qualify them to "
                "refer, or who is not on file"
            ),
            settings=("referrer_credentials",),
        ),
        Rule(
            id="REF-004",
            family="REF",
            severity="critical",
            entity_types=("referral",),
            title="NP or PA referral without MD/DO supervisor",
            meaning=(
                "The referral comes from a nurse practitioner or physician assistant, and "
                "either it names no supervising provider or the supervisor it names is "
                "not an MD or DO (a supervisor missing from the provider records does not "
                "count as an MD or DO)."
            ),
            fix=(
                "Record the supervising MD or DO on the referral, or have the referral "
                "co-signed by one."
            ),
            message="{entity} is from an NP or PA with no supervising MD or DO on record",
            settings=("supervised_credentials", "supervisor_credentials"),
        ),
        Rule(
            id="REF-005",
            family="REF",
            severity="critical",
            entity_types=("referral",),
            title="Referring provider's NPI missing or invalid",
            meaning=(
                "The referring provider has no NPI, or the NPI is not valid: a valid NPI "
                "has 10 digits, starts with 1 or 2, and ends with the correct check digit. "
                "A provider missing from the records counts as having no NPI."
            ),
            fix=(
                "Look the provider up in the national NPI registry (NPPES) and record "
                "the correct 10-digit NPI."
            ),
            message="{entity} names a referring provider whose NPI is missing or invalid",
        ),
        Rule(
            id="REF-006",
            family="REF",
            severity="critical",
            entity_types=("referral",),
            title="Referral not signed",
            meaning=(
                "No signature date is recorded on the referral, so nothing shows that the "
                "provider signed it."
            ),
            fix=("Obtain the referring provider's signature and record the date it was signed."),
            message="{entity} is not signed",
        ),
        Rule(
            id="REF-007",
            family="REF",
            severity="warning",
            entity_types=("referral",),
            title="Referral does not name medical exercise",
            meaning=(
                "The services requested on the referral do not mention medical exercise: "
                "none of the patterns `medical\\s+exercise`, `\\bMET\\b` or `\\bMES\\b` matches "
                "the text (upper or lower case alike)."
            ),
            fix=(
                "Ask the referring provider to state medical exercise (MET by a Medical "
                "Exercise Specialist) in the services requested."
            ),
            message="{entity} does not name medical exercise among the services requested",
            settings=("medical_exercise_patterns",),
        ),
        Rule(
            id="REF-008",
            family="REF",
            severity="critical",
            entity_types=("referral",),
            title="Referral lists no diagnosis",
            meaning="No diagnosis is recorded with the referral.",
            fix=(
                "Record the diagnosis code the referring provider gave, or ask the provider "
                "for a referral that states one."
            ),
            message="{entity} lists no diagnosis",
        ),
        Rule(
            id="REF-009",
            family="REF",
            severity="notice",
            entity_types=("referral",),
            title="Referral expiring soon",
            meaning=(
                "For an active client, the referral that covers the audit date expires "
                "within the next {referral_expiry_notice_days} days (on the audit date or up to "
                "{referral_expiry_notice_days} days after it), and "
                "no referral covers the day after it expires. The due date is the expiry "
                "date."
            ),
            fix=(
                "Ask the referring provider for a renewed referral before this one expires "
                "so that sessions stay covered."
            ),
            message="{entity} expires {due} and no referral covers the days after it",
            settings=(
                "referral_validity_days",
                "referral_expiry_notice_days",
                "active_client_days",
            ),
        ),
        # ---------------------------------------------------------------- ELG
        Rule(
            id="ELG-001",
            family="ELG",
            severity="critical",
            entity_types=("claim",),
            title="Claim to a Medicare or Medicaid plan",
            meaning=(
                "A claim that is not void is billed to a plan of type Medicare, Medicare "
                "Advantage, Medicaid or managed Medicaid. These programs do not recognise "
                "medical exercise professionals, so they will not pay."
            ),
            fix=(
                "Do not bill this plan for medical exercise: void the claim and agree "
                "private payment or other coverage with the client."
            ),
            message=(
                "{entity} is billed to a plan type that does not pay for medical exercise, "
                "such as Medicare or Medicaid"
            ),
            settings=("excluded_plan_types",),
        ),
        Rule(
            id="ELG-002",
            family="ELG",
            severity="critical",
            entity_types=("policy",),
            title="Insurance not verified before services",
            meaning=(
                "Claims (not void) were billed to the policy, but no eligibility check "
                "with result active is dated on or before the earliest service date billed "
                "to it."
            ),
            fix=(
                "Record the eligibility check made before the first billed visit; if none "
                "was made, verify coverage with the payer now and review the claims before "
                "billing more."
            ),
            message=(
                "{entity} was billed without an active eligibility check on or before "
                "the first service date"
            ),
        ),
        Rule(
            id="ELG-003",
            family="ELG",
            severity="critical",
            entity_types=("claim",),
            title="Out of network without out-of-network benefits",
            meaning=(
                "A claim that is not void is billed out of network to a plan that has no "
                "out-of-network benefits."
            ),
            fix=(
                "Confirm the client's out-of-network benefits with the payer; without "
                "them, do not bill this plan (join its network or agree private payment)."
            ),
            message="{entity} is billed out of network to a plan without out-of-network benefits",
        ),
        Rule(
            id="ELG-004",
            family="ELG",
            severity="critical",
            entity_types=("claim_line",),
            title="No prior authorization for the service date",
            meaning=(
                "The line's policy requires prior authorization, and none of that policy's "
                "authorizations covers the line's service date (from its start date through "
                "its end date)."
            ),
            fix=(
                "Obtain an authorization covering the date (a retroactive one if the payer "
                "allows it) and record its dates before submitting the line."
            ),
            message=(
                "{entity} is for a date that no prior authorization covers, though the plan "
                "requires one"
            ),
        ),
        Rule(
            id="ELG-005",
            family="ELG",
            severity="critical",
            entity_types=("claim_line",),
            title="Visit beyond the authorized number",
            meaning=(
                "The line's date lies inside an authorization's window, but the visits "
                "approved are already used up by then: counting the distinct service dates "
                "billed on claims (not void) of that policy within the window, this date "
                "comes after the last approved one. Every line on such a date is reported."
            ),
            fix=(
                "Ask the payer to approve more visits before billing this date, or hold the line."
            ),
            message="{entity} is for a visit beyond the number the authorization approved",
        ),
        Rule(
            id="ELG-006",
            family="ELG",
            severity="notice",
            entity_types=("authorization",),
            title="Authorization running out",
            meaning=(
                "For an active client, an authorization that covers the audit date has "
                "{auth_visits_left_notice} visits or fewer left, or ends within the next "
                "{auth_end_notice_days} days (on the audit date or up to {auth_end_notice_days} "
                "days after it). The due date is the authorization's end date."
            ),
            fix=(
                "Request an extension or a new authorization from the payer before the "
                "visits or the dates run out."
            ),
            message="{entity} is running out: few visits are left or it ends {due}",
            settings=("auth_visits_left_notice", "auth_end_notice_days", "active_client_days"),
        ),
        Rule(
            id="ELG-007",
            family="ELG",
            severity="critical",
            entity_types=("client",),
            title="No proof that prior rehab is complete",
            meaning=(
                "No discharge from physical therapy, occupational therapy or chiropractic "
                "care is recorded with a date on or before the client's first session."
            ),
            fix=(
                "Obtain the discharge summary from the client's physical therapist, "
                "occupational therapist or chiropractor and record it with its date."
            ),
            message=(
                "{entity} has no discharge from PT, OT or chiropractic care dated on or "
                "before the first session"
            ),
            settings=("prior_rehab_disciplines",),
        ),
        Rule(
            id="ELG-008",
            family="ELG",
            severity="critical",
            entity_types=("client",),
            title="No qualifying condition",
            meaning=(
                "None of the client's recorded conditions is of a qualifying category: "
                "post-surgical, trauma or chronic."
            ),
            fix=(
                "Record the client's qualifying condition from the referral or medical "
                "records, or confirm that the client qualifies before billing."
            ),
            message="{entity} has no qualifying condition on record",
            settings=("qualifying_condition_categories",),
        ),
        Rule(
            id="ELG-009",
            family="ELG",
            severity="critical",
            entity_types=("assessment",),
            title="Functional deficits not documented",
            meaning=(
                "The client's initial assessment leaves the residual functional deficits "
                "empty, so nothing shows what the client still cannot do after rehab."
            ),
            fix=(
                "Add the functional deficits found at the initial assessment (walking, "
                "stairs, lifting and the like) to the assessment record."
            ),
            message="{entity} does not document the client's residual functional deficits",
        ),
        # ---------------------------------------------------------------- DOC
        Rule(
            id="DOC-001",
            family="DOC",
            severity="critical",
            entity_types=("client",),
            title="No complete intake before the first session",
            meaning=(
                "There is no single intake form, completed on or before the client's first "
                "session, that has all of: health history marked complete, an emergency "
                "contact's name and phone, and dates for the signed consent and the signed "
                "waiver."
            ),
            fix=(
                "Complete the intake with the client (health history, emergency contact, "
                "signed consent and waiver) and record it."
            ),
            message="{entity} has no complete intake form dated on or before the first session",
        ),
        Rule(
            id="DOC-002",
            family="DOC",
            severity="critical",
            entity_types=("client",),
            title="No initial assessment before the first session",
            meaning=(
                "The client has had a completed session, but no initial assessment is dated "
                "on or before the first session."
            ),
            fix=(
                "Record the initial assessment made before the first session; if none was "
                "made, assess the client before any further sessions."
            ),
            message=(
                "{entity} has completed sessions but no initial assessment on or before the "
                "first session"
            ),
        ),
        Rule(
            id="DOC-003",
            family="DOC",
            severity="warning",
            entity_types=("assessment",),
            title="Initial assessment incomplete",
            meaning=(
                "The initial assessment does not record range of motion, strength and "
                "posture, or it has no outcome measure."
            ),
            fix=(
                "Complete the assessment record with range of motion, strength, posture and "
                "at least one outcome measure (Timed Up and Go, grip strength, a pain scale)."
            ),
            message="{entity} lacks {missing}",
            missing_default=(
                "part of the baseline: range of motion, strength, posture or an outcome measure"
            ),
        ),
        Rule(
            id="DOC-004",
            family="DOC",
            severity="critical",
            entity_types=("session",),
            title="No plan of exercise in effect",
            meaning=(
                "On the date of a completed session, no plan of exercise of the client is "
                "in effect: none starts on or before that date and has no end date or ends "
                "on or after it."
            ),
            fix=(
                "Write and sign a plan of exercise that covers the session date, or correct "
                "the plan's dates if they were entered wrong."
            ),
            message="{entity} has no plan of exercise in effect on its date",
        ),
        Rule(
            id="DOC-005",
            family="DOC",
            severity="warning",
            entity_types=("poe",),
            title="Plan of exercise incomplete",
            meaning=(
                "The plan of exercise lacks one or more of: frequency per week, duration in "
                "weeks, intensity, progression, at least one exercise, a signature."
            ),
            fix="Complete the missing elements of the plan and have it signed.",
            message="{entity} lacks {missing}",
            missing_default=(
                "required elements: frequency, duration, intensity, progression, exercises "
                "or a signature"
            ),
        ),
        Rule(
            id="DOC-006",
            family="DOC",
            severity="critical",
            entity_types=("poe",),
            title="Plan of exercise lacks a short- or long-term goal",
            meaning="The plan of exercise has no short-term goal, or no long-term goal.",
            fix="Add the missing goal to the plan, stated so that it can be measured.",
            message="{entity} lacks {missing}",
            missing_default="a short-term or a long-term goal",
        ),
        Rule(
            id="DOC-007",
            family="DOC",
            severity="warning",
            entity_types=("goal",),
            title="Goal not measurable",
            meaning=(
                "The goal cannot be measured: its instrument, target value or target date "
                "is missing."
            ),
            fix=(
                "Give the goal an instrument (for example Timed Up and Go), a target value "
                "and a target date."
            ),
            message="{entity} is not measurable: it lacks {missing}",
            missing_default="an instrument, a target value or a target date",
        ),
        Rule(
            id="DOC-008",
            family="DOC",
            severity="critical",
            entity_types=("session",),
            title="Session log incomplete",
            meaning=(
                "The log of a completed session is incomplete: no exercise is logged, an "
                "exercise lacks sets, reps or intensity, the client's response is empty, or "
                "the timed minutes are missing."
            ),
            fix=(
                "Complete the session log from the specialist's notes: every exercise with "
                "sets, reps and intensity, the client's response, and the timed minutes."
            ),
            message="{entity} has an incomplete log: it lacks {missing}",
            missing_default=(
                "exercises, sets, reps, intensity, the client's response or the timed minutes"
            ),
        ),
        Rule(
            id="DOC-009",
            family="DOC",
            severity="warning",
            entity_types=("session",),
            title="Session note signed late",
            meaning=(
                "The note of a completed session was signed more than {note_signature_days} days "
                "after the "
                "session (the signing day is taken in the practice's time zone), or it is "
                "still unsigned more than {note_signature_days} days after the session."
            ),
            fix=(
                "Have the specialist sign the note now, and sign notes within "
                "{note_signature_days} days of the "
                "session from now on."
            ),
            message="{entity} has a note that was signed late or is still unsigned",
            settings=("note_signature_days", "default_timezone"),
        ),
        Rule(
            id="DOC-010",
            family="DOC",
            severity="critical",
            entity_types=("session",),
            title="Session delivered by uncertified staff",
            meaning=(
                "The staff member who delivered a completed session does not hold the MES or "
                "AMES credential, or the certification's expiry date is missing or before "
                "the session date. A staff member missing from the records counts as "
                "uncertified; whether the staff member is still active does not matter."
            ),
            fix=(
                "Record the specialist's credential and certification expiry date; renew "
                "lapsed certifications, and have sessions delivered by currently certified "
                "specialists."
            ),
            message=(
                "{entity} was delivered by a staff member without a current MES or AMES "
                "certification"
            ),
            settings=("specialist_credentials",),
        ),
        Rule(
            id="DOC-011",
            family="DOC",
            severity="warning",
            entity_types=("session", "assessment"),
            title="Notes outside the scope of practice",
            meaning=(
                "A session's notes, or an assessment's notes or functional deficits, use "
                "words of diagnosing, prescribing, medication or treating: one of the "
                "patterns `\\bdiagnos\\w*`, `\\bprescri\\w*`, `\\bmedications?\\b`, "
                "`\\btreat(s|ed|ing)?\\b` or `\\btreatment\\b` matches (upper or lower case "
                "alike, patterns applied as written). Sessions and assessments of any status "
                "or kind are read."
            ),
            fix=(
                "Reword the note in exercise terms (what was observed, measured and "
                "practised); diagnosis, prescriptions and treatment belong to the referring "
                "provider."
            ),
            message=(
                "{entity} has notes worded outside a medical exercise specialist's scope of "
                "practice"
            ),
            settings=("scope_of_practice_patterns",),
        ),
        Rule(
            id="DOC-012",
            family="DOC",
            severity="warning",
            entity_types=("assessment",),
            title="No progress report after a reassessment",
            meaning=(
                "No progress report of the client was sent within {progress_report_days} days "
                "after a reassessment (on the reassessment date or up to "
                "{progress_report_days} days after it). Reported only once more than "
                "{progress_report_days} days have passed since the reassessment."
            ),
            fix=(
                "Send the progress report to the referring provider and record the date it "
                "was sent."
            ),
            message="{entity} was not followed by a progress report in time",
            settings=("progress_report_days",),
        ),
        # ---------------------------------------------------------------- REA
        Rule(
            id="REA-001",
            family="REA",
            severity="critical",
            entity_types=("session",),
            title="Session while the reassessment was overdue",
            meaning=(
                "A completed session took place more than {reassessment_interval_days} days "
                "after the latest "
                "assessment (initial or reassessment) dated on or before it. Not reported "
                "when no assessment precedes the session."
            ),
            fix=(
                "Reassess the client before billing further sessions; review the sessions "
                "delivered while the reassessment was overdue before billing them."
            ),
            message="{entity} took place while the client's reassessment was overdue",
            settings=("reassessment_interval_days",),
        ),
        Rule(
            id="REA-002",
            family="REA",
            severity="warning",
            entity_types=("client",),
            title="Reassessment overdue",
            meaning=(
                "An active client's latest assessment (initial or reassessment) is dated "
                "more than {reassessment_interval_days} days before the audit date."
            ),
            fix="Schedule the reassessment at the client's next visit, before more sessions.",
            message="{entity} is overdue for a reassessment",
            settings=("reassessment_interval_days", "active_client_days"),
        ),
        Rule(
            id="REA-003",
            family="REA",
            severity="notice",
            entity_types=("client",),
            title="Reassessment due soon",
            meaning=(
                "An active client's next reassessment, {reassessment_interval_days} days after "
                "the latest assessment, falls within the next {reassessment_notice_days} days "
                "(on the audit date or up to {reassessment_notice_days} days after it). "
                "The due date is that day."
            ),
            fix="Book the reassessment on or before the due date.",
            message="{entity} is due for a reassessment {due}",
            settings=(
                "reassessment_interval_days",
                "reassessment_notice_days",
                "active_client_days",
            ),
        ),
        Rule(
            id="REA-004",
            family="REA",
            severity="warning",
            entity_types=("assessment",),
            title="Reassessment without an outcome measure",
            meaning="A reassessment records no outcome measure.",
            fix=(
                "Record the outcome measures taken at the reassessment, using the same "
                "instruments as at the initial assessment."
            ),
            message="{entity} records no outcome measure",
        ),
        Rule(
            id="REA-005",
            family="REA",
            severity="warning",
            entity_types=("client",),
            title="No measured improvement",
            meaning=(
                "At the client's latest reassessment, no catalogue instrument that was also "
                "measured at the initial assessment shows a strict improvement (lower is "
                "better for Timed Up and Go, pain and ODI; higher is better for grip, chair "
                "stands, six-minute walk, Berg and LEFS). Repeated measures of one instrument "
                "at one assessment are averaged. Not reported when the two assessments share "
                "no instrument."
            ),
            fix=(
                "Review the plan of exercise with the client and the referring provider: "
                "adjust goals, intensity or progression, and document why continuing is "
                "necessary."
            ),
            message="{entity} shows no measured improvement at the latest reassessment",
        ),
        # ---------------------------------------------------------------- COD
        Rule(
            id="COD-001",
            family="COD",
            severity="critical",
            entity_types=("claim_line",),
            title="CPT code outside the medical exercise codes",
            meaning=(
                "The line's CPT code is not one of the practice's medical exercise codes "
                "({medical_exercise_cpt_codes})."
            ),
            fix=(
                "Correct the CPT code to the medical exercise service actually delivered, "
                "or remove the line."
            ),
            message="{entity} bills a CPT code outside the medical exercise code set",
            settings=("medical_exercise_cpt_codes",),
        ),
        Rule(
            id="COD-002",
            family="COD",
            severity="critical",
            entity_types=("claim_line",),
            title="Diagnosis pointers invalid",
            meaning=(
                "The line's diagnosis pointers are empty, name more than "
                "{max_diagnosis_pointers} letters, or name "
                "a letter for which the claim has no diagnosis. Blanks and commas separate "
                "pointers; every other character counts as a letter."
            ),
            fix=(
                "Point the line at up to {max_diagnosis_pointers} of the claim's diagnosis "
                "letters that support the service."
            ),
            message="{entity} has invalid diagnosis pointers: {missing}",
            missing_default=(
                "they are empty, too many, or name a letter with no diagnosis on the claim"
            ),
            settings=("max_diagnosis_pointers",),
        ),
        Rule(
            id="COD-003",
            family="COD",
            severity="critical",
            entity_types=("claim_diagnosis",),
            title="Diagnosis code not billable",
            meaning=(
                "The ICD-10-CM code is not a valid billable code on the claim's earliest "
                "service date: it is malformed, unknown, or a category that needs more "
                "characters."
            ),
            # Docs only: an email citing a code would let a reader guess a client's diagnosis.
            example="M54.5 has not been billable since 2021-10-01, while M54.50 is.",
            fix=(
                "Replace the code with the complete, billable ICD-10-CM code that matches the "
                "referral's diagnosis."
            ),
            message="{entity} is not a valid billable ICD-10-CM code on the service date",
        ),
        Rule(
            id="COD-004",
            family="COD",
            severity="warning",
            entity_types=("claim_diagnosis",),
            title="Diagnosis not supported by referral or conditions",
            meaning=(
                "The claim's diagnosis appears on none of the client's referrals and none "
                "of the client's recorded conditions."
            ),
            fix=(
                "Check the diagnosis against the referral; correct the claim, or record the "
                "condition together with the document it comes from."
            ),
            message="{entity} is on none of the client's referrals or recorded conditions",
        ),
        Rule(
            id="COD-005",
            family="COD",
            severity="critical",
            entity_types=("client_date",),
            title="Units exceed the documented minutes",
            meaning=(
                "On a day when the client had a completed session, the units of timed codes "
                "billed on claims (not void) exceed what the minutes recorded for that day's "
                "session services support. Under the CMS rule the day's timed minutes are "
                "added up first: (total minutes + 7) // 15 units. Under the AMA rule each "
                "code counts on its own: the sum over codes of (that code's minutes + 7) "
                "// 15. The policy's unit rule applies, else CMS. Days without a completed "
                "session are reported by COD-006 instead."
            ),
            fix=(
                "Bill only the units the documented minutes support, or correct the minutes "
                "recorded for the session's services if they were entered wrong."
            ),
            message="{entity} has more timed units billed than the documented minutes support",
            settings=("timed_cpt_codes", "unit_rule"),
        ),
        Rule(
            id="COD-006",
            family="COD",
            severity="critical",
            entity_types=("claim_line",),
            title="No session on the service date",
            meaning="The client has no completed session on the line's service date.",
            fix=(
                "Correct the service date to the day of the session, record the missing "
                "session, or remove the line."
            ),
            message="{entity} is for a date on which the client has no completed session",
        ),
        Rule(
            id="COD-007",
            family="COD",
            severity="critical",
            entity_types=("claim_line",),
            title="Duplicate claim line",
            meaning=(
                "The same client, service date and CPT code appear on more than one line of "
                "claims that are not void. Every such line except the first (by claim id, "
                "then line number) is reported."
            ),
            fix=(
                "Remove the duplicate line, or combine the units on a single line when the "
                "service was really delivered once."
            ),
            message="{entity} repeats an earlier line for the same client, date and CPT code",
        ),
        Rule(
            id="COD-008",
            family="COD",
            severity="critical",
            entity_types=("claim",),
            title="Billing or rendering NPI missing or invalid",
            meaning=(
                "The claim's billing NPI, or the NPI of the staff member who rendered the "
                "service, is missing or not a valid NPI. A rendering staff member missing "
                "from the records counts as a missing NPI."
            ),
            fix=(
                "Record the practice's billing NPI on the claim and the specialist's own NPI "
                "in the staff record (check both in the NPPES registry)."
            ),
            message="{entity} has a missing or invalid {missing}",
            missing_default="billing or rendering NPI",
        ),
        Rule(
            id="COD-009",
            family="COD",
            severity="warning",
            entity_types=("claim",),
            title="Filed after the timely filing limit",
            meaning=(
                "The claim was submitted more days after its earliest service date than the "
                "timely filing limit allows: the policy's own limit, else the payer setting "
                "({timely_filing_days} days)."
            ),
            fix=(
                "Ask the payer whether a late-filing exception applies and keep proof of "
                "any earlier submission; file claims sooner from now on."
            ),
            message="{entity} was submitted after the timely filing limit",
            settings=("timely_filing_days",),
        ),
        Rule(
            id="COD-010",
            family="COD",
            severity="warning",
            entity_types=("claim_line",),
            title="CPT code not documented for the day",
            meaning=(
                "The client had a completed session on the line's date, but none of the "
                "services recorded for that day's sessions has the CPT code billed."
            ),
            fix=(
                "Bill the CPT code the session log records, or add the service and its "
                "minutes to the log if it was delivered and left out."
            ),
            message=("{entity} bills a CPT code that no service of that day's sessions records"),
        ),
        # ---------------------------------------------------------------- CLM
        Rule(
            id="CLM-001",
            family="CLM",
            severity="warning",
            entity_types=("claim",),
            title="Denied claim not appealed",
            meaning=(
                "The claim is denied, no appeal is recorded, and more than "
                "{denied_appeal_days} days have "
                "passed since the denial."
            ),
            fix=(
                "Review the denial reason and file an appeal or a corrected claim, then "
                "record the appeal date."
            ),
            message="{entity} was denied and has not been appealed in time",
            settings=("denied_appeal_days",),
        ),
        Rule(
            id="CLM-002",
            family="CLM",
            severity="notice",
            entity_types=("claim",),
            title="No answer from the payer",
            meaning=(
                "The claim is still in status submitted more than "
                "{unanswered_claim_days} days after it was "
                "submitted: the payer has not answered."
            ),
            fix="Call the payer or check the clearinghouse for the claim's status.",
            message="{entity} has had no answer from the payer since it was submitted",
            settings=("unanswered_claim_days",),
        ),
        # ----------------------------------------------------------------- DQ
        Rule(
            id="DQ-001",
            family="DQ",
            severity="critical",
            entity_types=("row",),
            title="Duplicate record key",
            meaning=(
                "The same primary key value appears on more than one row of a table. The "
                "audit keeps only the first row it reads; the others are ignored."
            ),
            fix=(
                "Merge or delete the duplicate records in the practice system so that each "
                "id is used once."
            ),
            message="{entity} has a key that appears more than once in its table",
        ),
        Rule(
            id="DQ-002",
            family="DQ",
            severity="warning",
            entity_types=("row",),
            title="Link to a missing record",
            meaning=(
                "A reference to another record names a record that does not exist, or is "
                "empty although it is required."
            ),
            fix=("Link the record to the right existing record, or add the missing record."),
            message="{entity} has a link to a missing record in {missing}",
            missing_default="one of its reference columns",
        ),
        Rule(
            id="DQ-003",
            family="DQ",
            severity="warning",
            entity_types=("row",),
            title="Unreadable or missing value",
            meaning=(
                "A value cannot be read as its type (date, whole number, number, yes/no), "
                "is not one of its column's listed values, or is empty where a value is "
                "required. Every other rule then treats the value as missing; a record "
                "whose key or own date is unreadable is left out of the audit."
            ),
            fix="Correct the value in the practice system.",
            message="{entity} has unreadable or missing values in {missing}",
            missing_default="one or more columns",
        ),
    )


def _default_text(value: object) -> str:
    """A setting's default as the rule texts state it: a list reads "a, b, c"."""
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def fill_defaults(text: str, defaults: Mapping[str, object]) -> str:
    """``text`` with each ``{setting_name}`` replaced by that setting's default.

    ``defaults`` maps setting names to their default values; a text without
    placeholders comes back unchanged.
    """
    return text.format_map({name: _default_text(value) for name, value in defaults.items()})


def setting_defaults() -> dict[str, object]:
    """Every setting's default by name (``metaudit.spec.settings.SETTINGS``)."""
    return {name: spec.default for name, spec in rule_settings.SETTINGS.items()}


def with_defaults(rule: Rule, defaults: Mapping[str, object]) -> Rule:
    """``rule`` with the setting defaults written into its texts.

    The message template is left alone: its placeholders are filled per finding,
    and it never states a number.
    """
    return dataclasses.replace(
        rule,
        title=fill_defaults(rule.title, defaults),
        meaning=fill_defaults(rule.meaning, defaults),
        fix=fill_defaults(rule.fix, defaults),
        missing_default=fill_defaults(rule.missing_default, defaults),
        example=fill_defaults(rule.example, defaults),
    )


def _build_rules() -> dict[str, Rule]:
    defaults = setting_defaults()
    return {rule.id: with_defaults(rule, defaults) for rule in _rules()}


RULES: dict[str, Rule] = _build_rules()


def rules_by_family() -> dict[str, list[Rule]]:
    """The rules grouped by family, families and rules in rulebook order."""
    grouped: dict[str, list[Rule]] = {family: [] for family in FAMILIES}
    for rule in RULES.values():
        grouped[rule.family].append(rule)
    return grouped


def entity_label(entity_type: str, entity_id: str) -> str:
    """The human name of a record in a message, e.g. "Claim line L-9".

    A client_date id (``CLIENT_ID:YYYY-MM-DD``) reads "Client C-1 on 2026-03-02".
    """
    try:
        word = ENTITY_LABELS[entity_type]
    except KeyError:
        raise ValueError(f"unknown entity type {entity_type!r}") from None
    if entity_type == "client_date":
        client_id, sep, day = str(entity_id).rpartition(":")
        if sep:
            return f"{word} {client_id} on {day}"
    return f"{word} {entity_id}"


def _format_due(due_date: object) -> str:
    if due_date is None:
        return "soon"
    if isinstance(due_date, dt.datetime):
        text = str(due_date.date().isoformat())
    elif isinstance(due_date, dt.date):
        text = due_date.isoformat()
    else:
        text = str(due_date).strip()[:10]
    # NaT, NaN and blanks stand for "no due date known".
    if not text or text in {"NaT", "nan", "NaN", "None", "<NA>"}:
        return "soon"
    return f"on {text}"


def _join_parts(parts: Iterable[str] | None) -> str:
    seen: list[str] = []
    for part in parts or ():
        text = str(part).strip().rstrip(".")
        if text and text not in seen:
            seen.append(text)
    return ", ".join(seen)


def message(
    rule_id: str,
    entity_type: str,
    entity_id: str,
    parts: Iterable[str] | None = None,
    due_date: object = None,
) -> str:
    """The one plain sentence of a finding, ending with a period.

    ``parts`` are static phrases naming what the record lacks (a suite's
    ``meta.part``); with none given the rule's ``missing_default`` stands in.
    For a rule whose sentence has no place for parts, given parts are added in
    parentheses. ``due_date`` (a date, a Timestamp or ``YYYY-MM-DD``) fills
    ``{due}``.
    """
    try:
        rule = RULES[rule_id]
    except KeyError:
        raise ValueError(f"unknown rule {rule_id!r}") from None
    if entity_type not in rule.entity_types:
        raise ValueError(
            f"{rule_id} reports on {', '.join(rule.entity_types)}, not {entity_type!r}"
        )
    joined = _join_parts(parts)
    sentence = rule.message.format(
        entity=entity_label(entity_type, entity_id),
        missing=joined or rule.missing_default,
        due=_format_due(due_date),
    )
    if joined and not rule.uses_parts:
        sentence = f"{sentence} ({joined})"
    sentence = sentence.rstrip().rstrip(".")
    return sentence[:1].upper() + sentence[1:] + "."


def template_fields(template: str) -> set[str]:
    """The placeholder names a template uses (for tests and the docs)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
