"""The source data contract (v1) in code: every table, column, type and link.

This module is the single description of what the audit reads from a practice
database. The reader, the data-quality rules (DQ-001..DQ-003), the as-of view
and the demo generator all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

# Column types of the contract.
TEXT = "text"
INT = "int"
NUM = "num"
BOOL = "bool"
DATE = "date"
TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class Column:
    """One column: its type, whether NULL is a normal state, and its closed value set."""

    name: str
    type: str = TEXT
    nullable: bool = False
    values: tuple[str, ...] | None = None  # the listed values, when the set is closed
    references: str | None = None  # the table this column points to (a foreign key)


@dataclass(frozen=True)
class Table:
    """One table of the contract.

    ``key`` is the primary-key column, or None for a child table without one;
    then ``owner`` is the foreign-key column whose value identifies the row in
    findings (``session_services:S-17``). ``as_of`` is the column that dates a
    record for the as-of view (records dated after D do not exist for a run).
    """

    name: str
    columns: tuple[Column, ...]
    key: str | None = None
    owner: str | None = None
    as_of: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def id_column(self) -> str:
        """The column whose value names a row of this table in findings."""
        name = self.key or self.owner
        assert name is not None, self.name
        return name

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name}.{name}")

    @property
    def foreign_keys(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.references)


C = Column

PLAN_TYPES = (
    "commercial",
    "medicare",
    "medicare_advantage",
    "medicaid",
    "managed_medicaid",
    "workers_comp",
    "auto",
    "self_pay",
    "other",
)
CLAIM_STATUSES = ("draft", "submitted", "paid", "denied", "appealed", "void")
POINTER_LETTERS = tuple("ABCDEFGHIJKL")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "practices",
            (
                C("practice_id"),
                C("name"),
                C("organization_npi", nullable=True),
                C("timezone", nullable=True),
            ),
            key="practice_id",
        ),
        Table(
            "staff",
            (
                C("staff_id"),
                C("practice_id", references="practices"),
                C("full_name"),
                C("npi", nullable=True),
                C("credential"),
                C("certification_expires_on", DATE, nullable=True),
                C("active", BOOL),
            ),
            key="staff_id",
        ),
        Table(
            "providers",
            (
                C("provider_id"),
                C("full_name"),
                C("credential"),
                C("npi", nullable=True),
            ),
            key="provider_id",
        ),
        Table(
            "clients",
            (
                C("client_id"),
                C("practice_id", references="practices"),
                C("first_name"),
                C("last_name"),
                C("date_of_birth", DATE),
                C("status", values=("active", "on_hold", "discharged")),
            ),
            key="client_id",
        ),
        Table(
            "insurance_policies",
            (
                C("policy_id"),
                C("client_id", references="clients"),
                C("payer_name"),
                C("plan_type", values=PLAN_TYPES),
                C("member_id", nullable=True),
                C("network_status", values=("in_network", "out_of_network")),
                C("oon_benefits", BOOL),
                C("requires_preauth", BOOL),
                C("timely_filing_days", INT, nullable=True),
                C("unit_rule", nullable=True, values=("cms", "ama")),
                C("effective_from", DATE),
                C("effective_to", DATE, nullable=True),
            ),
            key="policy_id",
        ),
        Table(
            "eligibility_checks",
            (
                C("check_id"),
                C("policy_id", references="insurance_policies"),
                C("checked_on", DATE),
                C("status", values=("active", "inactive", "unknown")),
                C("reference_number", nullable=True),
            ),
            key="check_id",
            as_of="checked_on",
        ),
        Table(
            "authorizations",
            (
                C("authorization_id"),
                C("policy_id", references="insurance_policies"),
                C("auth_number"),
                C("start_date", DATE),
                C("end_date", DATE),
                C("approved_visits", INT),
            ),
            key="authorization_id",
        ),
        Table(
            "rehab_discharges",
            (
                C("discharge_id"),
                C("client_id", references="clients"),
                C("discipline", values=("PT", "OT", "DC")),
                C("discharge_date", DATE),
                C("reason", values=("max_benefit", "goals_met", "benefits_exhausted", "other")),
            ),
            key="discharge_id",
            as_of="discharge_date",
        ),
        Table(
            "conditions",
            (
                C("condition_id"),
                C("client_id", references="clients"),
                C("category", values=("post_surgical", "trauma", "chronic", "other")),
                C("icd10_code", nullable=True),
                C("description"),
            ),
            key="condition_id",
        ),
        Table(
            "referrals",
            (
                C("referral_id"),
                C("client_id", references="clients"),
                C("provider_id", references="providers"),
                C("supervising_provider_id", nullable=True, references="providers"),
                C("referral_date", DATE),
                C("signed_on", DATE, nullable=True),
                C("valid_until", DATE, nullable=True),
                C("services_requested"),
            ),
            key="referral_id",
            as_of="referral_date",
        ),
        Table(
            "referral_diagnoses",
            (
                C("referral_id", references="referrals"),
                C("seq", INT),
                C("icd10_code"),
            ),
            owner="referral_id",
        ),
        Table(
            "intake_forms",
            (
                C("intake_id"),
                C("client_id", references="clients"),
                C("form_name"),
                C("completed_on", DATE, nullable=True),
                C("health_history_complete", BOOL),
                C("emergency_contact_name", nullable=True),
                C("emergency_contact_phone", nullable=True),
                C("consent_signed_on", DATE, nullable=True),
                C("waiver_signed_on", DATE, nullable=True),
            ),
            key="intake_id",
            as_of="completed_on",
        ),
        Table(
            "assessments",
            (
                C("assessment_id"),
                C("client_id", references="clients"),
                C("staff_id", references="staff"),
                C("assessed_on", DATE),
                C("kind", values=("initial", "reassessment", "discharge")),
                C("rom_documented", BOOL),
                C("strength_documented", BOOL),
                C("posture_documented", BOOL),
                C("functional_deficits", nullable=True),
                C("notes", nullable=True),
                C("signed_on", DATE, nullable=True),
            ),
            key="assessment_id",
            as_of="assessed_on",
        ),
        Table(
            "outcome_measures",
            (
                C("measure_id"),
                C("assessment_id", references="assessments"),
                C("instrument"),
                C("value", NUM),
                C("unit", nullable=True),
            ),
            key="measure_id",
        ),
        Table(
            "plans_of_exercise",
            (
                C("poe_id"),
                C("client_id", references="clients"),
                C("assessment_id", nullable=True, references="assessments"),
                C("start_date", DATE),
                C("end_date", DATE, nullable=True),
                C("frequency_per_week", INT, nullable=True),
                C("duration_weeks", INT, nullable=True),
                C("intensity", nullable=True),
                C("progression", nullable=True),
                C("signed_on", DATE, nullable=True),
            ),
            key="poe_id",
        ),
        Table(
            "poe_exercises",
            (
                C("poe_id", references="plans_of_exercise"),
                C("exercise_name"),
                C("sets", INT, nullable=True),
                C("reps", INT, nullable=True),
                C("intensity", nullable=True),
            ),
            owner="poe_id",
        ),
        Table(
            "goals",
            (
                C("goal_id"),
                C("poe_id", references="plans_of_exercise"),
                C("term", values=("short", "long")),
                C("description"),
                C("instrument", nullable=True),
                C("target_value", NUM, nullable=True),
                C("target_date", DATE, nullable=True),
            ),
            key="goal_id",
        ),
        Table(
            "sessions",
            (
                C("session_id"),
                C("client_id", references="clients"),
                C("staff_id", references="staff"),
                C("session_date", DATE),
                C("status", values=("completed", "cancelled", "no_show")),
                C("timed_minutes", INT, nullable=True),
                C("client_response", nullable=True),
                C("notes", nullable=True),
                C("signed_at", TIMESTAMP, nullable=True),
            ),
            key="session_id",
            as_of="session_date",
        ),
        Table(
            "session_exercises",
            (
                C("session_id", references="sessions"),
                C("exercise_name"),
                C("sets", INT, nullable=True),
                C("reps", INT, nullable=True),
                C("intensity", nullable=True),
            ),
            owner="session_id",
        ),
        Table(
            "session_services",
            (
                C("session_id", references="sessions"),
                C("cpt_code"),
                C("minutes", INT),
            ),
            owner="session_id",
        ),
        Table(
            "progress_reports",
            (
                C("report_id"),
                C("client_id", references="clients"),
                C("assessment_id", nullable=True, references="assessments"),
                C("provider_id", references="providers"),
                C("sent_on", DATE, nullable=True),
            ),
            key="report_id",
            as_of="sent_on",
        ),
        Table(
            "claims",
            (
                C("claim_id"),
                C("client_id", references="clients"),
                C("policy_id", references="insurance_policies"),
                C("billing_npi", nullable=True),
                C("rendering_staff_id", references="staff"),
                C("submitted_on", DATE, nullable=True),
                C("status", values=CLAIM_STATUSES),
                C("denied_on", DATE, nullable=True),
                C("appealed_on", DATE, nullable=True),
                C("total_charge", NUM),
                C("paid_amount", NUM, nullable=True),
            ),
            key="claim_id",
        ),
        Table(
            "claim_diagnoses",
            (
                C("claim_id", references="claims"),
                C("pointer", values=POINTER_LETTERS),
                C("icd10_code"),
            ),
            owner="claim_id",
        ),
        Table(
            "claim_lines",
            (
                C("line_id"),
                C("claim_id", references="claims"),
                C("line_no", INT),
                C("service_date", DATE),
                C("cpt_code"),
                C("modifiers", nullable=True),
                C("units", INT),
                C("charge", NUM),
                C("diagnosis_pointers", nullable=True),
            ),
            key="line_id",
            as_of="service_date",
        ),
    )
}

# How a row of each table reaches its client: (column in this table, parent table).
# Following the chain attributes a row, and any finding on it, to a client and so
# to a practice (reading 8 of the rulebook). Tables absent here carry client_id.
PARENT_OF: dict[str, tuple[str, str]] = {
    "eligibility_checks": ("policy_id", "insurance_policies"),
    "authorizations": ("policy_id", "insurance_policies"),
    "referral_diagnoses": ("referral_id", "referrals"),
    "outcome_measures": ("assessment_id", "assessments"),
    "poe_exercises": ("poe_id", "plans_of_exercise"),
    "goals": ("poe_id", "plans_of_exercise"),
    "session_exercises": ("session_id", "sessions"),
    "session_services": ("session_id", "sessions"),
    "claim_diagnoses": ("claim_id", "claims"),
    "claim_lines": ("claim_id", "claims"),
}

# Timed CPT codes (15-minute codes) of medical exercise.
TIMED_CODES = ("97110", "97112", "97530")

# Instruments of the outcome-measure catalogue and their direction of improvement.
LOWER_IS_BETTER = ("TUG", "PAIN_NRS", "ODI")
HIGHER_IS_BETTER = ("GRIP", "CHAIR_STAND_30S", "SIX_MWT", "BERG", "LEFS")
