"""Host clients for injected defects: small, fixed, clean episodes, one host per defect.

Each defect gets a client of its own, so defects never meet. A host is built
row by row (a few hundred rows), always the same way, so an injector's
docstring can say exactly what it changes and which findings follow:

- a *past* host: initial assessment on D-200, sessions twice a week (days +1 and
  +4 of each week) for ten weeks (20 sessions, the last on D-133),
  reassessments on D-172 and D-144, discharge on D-132; every claim is paid.
- an *active* host: initial assessment on D-34, sessions from D-33 twice a week
  until D+28 (the last before D on D-2), reassessments on D-6 and D+22; claims
  of the last weeks are still submitted, the one of D-2 is a draft.
- either may have a policy that requires authorization: 56-day authorizations
  of 20 visits from the initial assessment.

Every host has one referral (MD, dated e0-7, valid 120 or 180 days), diagnoses
A = Z96.651 (post-surgical) and B = I10 (other), services 97110 for 32 minutes
(2 units) and 97530 for 18 minutes (1 unit) in each session, and a commercial
in-network policy with unit rule ``cms``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from metaudit.demo import vocab
from metaudit.demo.episodes import ID_FORMAT
from metaudit.demo.network import HORIZON_DAYS, Network, make_npi

Row = dict[str, Any]

HOST_SERVICES = (("97110", 32, 2), ("97530", 18, 1))  # code, minutes, billed units
HOST_FEES = {"97110": 42.0, "97112": 46.0, "97530": 48.0, "97140": 40.0}
HOST_MEASURES = (
    ("TUG", 18.0, 1.2, "s"),
    ("LEFS", 30.0, 4.0, "points"),
    ("PAIN_NRS", 7.0, 1.0, "0-10"),
)


@dataclass(frozen=True)
class Expected:
    """One finding an injected defect must produce at the as-of date."""

    rule_id: str
    entity_type: str
    entity_id: str
    practice_id: str | None
    client_id: str | None
    due_date: str | None = None
    defect: str = ""

    def as_dict(self) -> dict[str, str | None]:
        return {
            "rule_id": self.rule_id,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "practice_id": self.practice_id,
            "client_id": self.client_id,
            "due_date": self.due_date,
            "defect": self.defect,
        }


def iso(day: date) -> str:
    return day.isoformat()


@dataclass
class Cohort:
    """The rows of every host, by table, and the id counters they continue from the bulk."""

    net: Network
    as_of: date
    rows: dict[str, list[Row]] = field(default_factory=dict)

    def new_id(self, table: str) -> str:
        """The next unused id of ``table`` (numbering continues after the bulk network)."""
        prefix, width = ID_FORMAT[table]
        number = self.net.counters.get(table, 0) + 1
        self.net.counters[table] = number
        return f"{prefix}{number:0{width}d}"

    def add(self, table: str, row: Row) -> Row:
        self.rows.setdefault(table, []).append(row)
        return row

    def remove(self, table: str, predicate: Callable[[Row], bool]) -> list[Row]:
        """Delete the rows of ``table`` matching ``predicate``; return them."""
        kept: list[Row] = []
        removed: list[Row] = []
        for row in self.rows.get(table, []):
            (removed if predicate(row) else kept).append(row)
        self.rows[table] = kept
        return removed

    def find(self, table: str, **match: Any) -> list[Row]:
        return [r for r in self.rows.get(table, []) if all(r.get(k) == v for k, v in match.items())]

    def day(self, offset: int) -> date:
        """D + offset days."""
        return self.as_of + timedelta(days=offset)


@dataclass
class Host:
    """One host client: its ids and the facts injectors need to reason about it."""

    cohort: Cohort
    defect: str
    client_id: str
    practice_id: str
    practice_index: int
    zone: str
    e0: date
    active: bool
    preauth: bool
    policy_id: str
    staff_id: str
    referrer_id: str

    # -- findings ------------------------------------------------------------------------
    def expect(
        self, rule_id: str, entity_type: str, entity_id: str, due: date | None = None
    ) -> Expected:
        """A finding on an entity of this host's client."""
        return Expected(
            rule_id,
            entity_type,
            entity_id,
            self.practice_id,
            self.client_id,
            iso(due) if due else None,
            self.defect,
        )

    def expect_row(
        self, rule_id: str, table: str, key: str, *, attributed: bool = True
    ) -> Expected:
        """A DQ finding on row ``TABLE:KEY``; ``attributed=False`` when no client is reachable."""
        practice = self.practice_id if attributed else None
        client = self.client_id if attributed else None
        return Expected(rule_id, "row", f"{table}:{key}", practice, client, None, self.defect)

    # -- the host's records ----------------------------------------------------------------
    def mine(self, table: str) -> list[Row]:
        return self.cohort.find(table, client_id=self.client_id)

    def sessions(self) -> list[Row]:
        return sorted(self.mine("sessions"), key=lambda r: (r["session_date"], r["session_id"]))

    def sessions_in_view(self) -> list[Row]:
        d = iso(self.cohort.as_of)
        return [s for s in self.sessions() if s["session_date"] <= d]

    def assessments(self, kind: str | None = None) -> list[Row]:
        rows = sorted(
            self.mine("assessments"), key=lambda r: (r["assessed_on"], r["assessment_id"])
        )
        return [r for r in rows if kind is None or r["kind"] == kind]

    def plans(self) -> list[Row]:
        return sorted(self.mine("plans_of_exercise"), key=lambda r: r["start_date"])

    def referral(self) -> Row:
        (row,) = self.mine("referrals")
        return row

    def policy(self) -> Row:
        (row,) = self.cohort.find("insurance_policies", policy_id=self.policy_id)
        return row

    def claims(self) -> list[Row]:
        return sorted(self.mine("claims"), key=lambda r: r["claim_id"])

    def lines(self, claim_id: str) -> list[Row]:
        return sorted(
            self.cohort.find("claim_lines", claim_id=claim_id), key=lambda r: r["line_no"]
        )

    def claim_for(self, session: Row) -> Row:
        """The claim billing ``session`` (hosts bill one claim per completed session)."""
        for claim in self.claims():
            lines = self.lines(claim["claim_id"])
            if lines and lines[0]["service_date"] == session["session_date"]:
                return claim
        raise LookupError(f"no claim for session {session['session_id']}")

    def middle_session(self) -> Row:
        """A completed session in the middle of the episode (not first, not last, before D)."""
        in_view = self.sessions_in_view()
        return in_view[len(in_view) // 2]

    def signed_at(self, day: date, hour: int = 17) -> str:
        """The UTC timestamp of ``hour``:00 on ``day`` in the practice's zone."""
        local = datetime(day.year, day.month, day.day, hour, 0, tzinfo=ZoneInfo(self.zone))
        return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00Z")


def build_host(cohort: Cohort, defect: str, index: int, *, active: bool, preauth: bool) -> Host:
    """Add one clean host client (see the module docstring) and return it."""
    net = cohort.net
    c = cohort
    d = cohort.as_of
    practice = index % len(net.practice_ids)
    practice_id = net.practice_ids[practice]
    staff_id = net.staff_ids[int(net.mes_staff[net.mes_start[practice]])]
    physicians = [i for i in range(len(net.provider_ids)) if _credential(net, i) == "MD"]
    referrer_id = net.provider_ids[physicians[index % len(physicians)]]
    e0 = c.day(-34 if active else -200)
    client_id = c.new_id("clients")
    first = vocab.FIRST_NAMES[(index * 7) % len(vocab.FIRST_NAMES)]
    last = vocab.LAST_NAMES[(index * 11 + 3) % len(vocab.LAST_NAMES)]
    c.add(
        "clients",
        {
            "client_id": client_id,
            "practice_id": practice_id,
            "first_name": first,
            "last_name": last,
            "date_of_birth": iso(e0 - timedelta(days=365 * 60 + 17 * index)),
            "status": "active" if active else "discharged",
        },
    )
    policy_id = c.new_id("insurance_policies")
    host = Host(
        cohort=c,
        defect=defect,
        client_id=client_id,
        practice_id=practice_id,
        practice_index=practice,
        zone=net.practice_zones[practice],
        e0=e0,
        active=active,
        preauth=preauth,
        policy_id=policy_id,
        staff_id=staff_id,
        referrer_id=referrer_id,
    )

    # Timeline.
    s0 = e0 + timedelta(days=1)
    if active:
        end = c.day(HORIZON_DAYS)
        session_days = [
            s0 + timedelta(days=7 * w + o)
            for w in range(12)
            for o in (0, 3)
            if s0 + timedelta(days=7 * w + o) <= end
        ]
        cover_end = end
    else:
        session_days = [s0 + timedelta(days=7 * w + o) for w in range(10) for o in (0, 3)]
        cover_end = session_days[-1]
    reassess_days = [
        e0 + timedelta(days=28 * k)
        for k in range(1, 10)
        if e0 + timedelta(days=28 * k) <= cover_end
    ]
    discharge_day = None if active else session_days[-1] + timedelta(days=1)

    c.add(
        "insurance_policies",
        {
            "policy_id": policy_id,
            "client_id": client_id,
            "payer_name": "Aetna",
            "plan_type": "commercial",
            "member_id": f"W{900000000 + index:09d}",
            "network_status": "in_network",
            "oon_benefits": 0,
            "requires_preauth": int(preauth),
            "timely_filing_days": None,
            "unit_rule": "cms",
            "effective_from": iso(e0 - timedelta(days=300)),
            "effective_to": None,
        },
    )
    c.add(
        "eligibility_checks",
        {
            "check_id": c.new_id("eligibility_checks"),
            "policy_id": policy_id,
            "checked_on": iso(e0 - timedelta(days=3)),
            "status": "active",
            "reference_number": f"EV{7000000000 + index:010d}",
        },
    )
    if preauth:
        start = e0
        while start <= cover_end:
            c.add(
                "authorizations",
                {
                    "authorization_id": c.new_id("authorizations"),
                    "policy_id": policy_id,
                    "auth_number": f"PA{80000000 + index * 10 + (start - e0).days // 56:08d}",
                    "start_date": iso(start),
                    "end_date": iso(start + timedelta(days=55)),
                    "approved_visits": 20,
                },
            )
            start += timedelta(days=56)
    c.add(
        "rehab_discharges",
        {
            "discharge_id": c.new_id("rehab_discharges"),
            "client_id": client_id,
            "discipline": "PT",
            "discharge_date": iso(e0 - timedelta(days=30)),
            "reason": "max_benefit",
        },
    )
    for category, code, description in (
        ("post_surgical", "Z96.651", "Right total knee replacement"),
        ("other", "I10", "High blood pressure"),
    ):
        c.add(
            "conditions",
            {
                "condition_id": c.new_id("conditions"),
                "client_id": client_id,
                "category": category,
                "icd10_code": code,
                "description": description,
            },
        )
    referral_date = e0 - timedelta(days=7)
    referral_id = c.new_id("referrals")
    c.add(
        "referrals",
        {
            "referral_id": referral_id,
            "client_id": client_id,
            "provider_id": referrer_id,
            "supervising_provider_id": None,
            "referral_date": iso(referral_date),
            "signed_on": iso(referral_date + timedelta(days=1)),
            "valid_until": iso(referral_date + timedelta(days=180 if active else 120)),
            "services_requested": "Medical exercise training 2x/week",
        },
    )
    for seq, code in ((1, "Z96.651"), (2, "I10")):
        c.add("referral_diagnoses", {"referral_id": referral_id, "seq": seq, "icd10_code": code})
    intake_day = e0 - timedelta(days=2)
    c.add(
        "intake_forms",
        {
            "intake_id": c.new_id("intake_forms"),
            "client_id": client_id,
            "form_name": "MET-Q",
            "completed_on": iso(intake_day),
            "health_history_complete": 1,
            "emergency_contact_name": f"{vocab.FIRST_NAMES[index % 40]} {last}",
            "emergency_contact_phone": f"(617) 555-01{index % 100:02d}",
            "consent_signed_on": iso(intake_day),
            "waiver_signed_on": iso(intake_day),
        },
    )

    # Assessments, measures, plans of exercise, goals, progress reports.
    dated = [("initial", e0), *(("reassessment", r) for r in reassess_days)]
    if discharge_day:
        dated.append(("discharge", discharge_day))
    plan_days = [day for kind, day in dated if kind != "discharge"]
    for k, (kind, day) in enumerate(dated):
        assessment_id = c.new_id("assessments")
        deficits = {
            "initial": vocab.INITIAL_DEFICITS[0],
            "reassessment": vocab.REASSESSMENT_DEFICITS[0],
            "discharge": vocab.DISCHARGE_DEFICITS[0],
        }[kind]
        c.add(
            "assessments",
            {
                "assessment_id": assessment_id,
                "client_id": client_id,
                "staff_id": staff_id,
                "assessed_on": iso(day),
                "kind": kind,
                "rom_documented": 1,
                "strength_documented": 1,
                "posture_documented": 1,
                "functional_deficits": deficits,
                "notes": vocab.ASSESSMENT_NOTES[0 if k == 0 else 1],
                "signed_on": iso(day),
            },
        )
        for instrument, baseline, step, unit in HOST_MEASURES:
            c.add(
                "outcome_measures",
                {
                    "measure_id": c.new_id("outcome_measures"),
                    "assessment_id": assessment_id,
                    "instrument": instrument,
                    "value": host_measure(instrument, baseline, step, k),
                    "unit": unit,
                },
            )
        if kind != "discharge":
            later = [p for p in plan_days if p > day]
            poe_end = later[0] - timedelta(days=1) if later else discharge_day
            poe_id = c.new_id("plans_of_exercise")
            c.add(
                "plans_of_exercise",
                {
                    "poe_id": poe_id,
                    "client_id": client_id,
                    "assessment_id": assessment_id,
                    "start_date": iso(day),
                    "end_date": iso(poe_end) if poe_end else None,
                    "frequency_per_week": 2,
                    "duration_weeks": 4,
                    "intensity": vocab.POE_INTENSITIES[1],
                    "progression": vocab.PROGRESSIONS[0],
                    "signed_on": iso(day),
                },
            )
            for j in range(4):
                c.add(
                    "poe_exercises",
                    {
                        "poe_id": poe_id,
                        "exercise_name": vocab.EXERCISES[(index + 5 * j) % 20],
                        "sets": 3,
                        "reps": 10,
                        "intensity": vocab.EXERCISE_INTENSITIES[1],
                    },
                )
            for term, text, instrument, ahead, target_day in (
                ("short", vocab.SHORT_GOALS[0], "TUG", 1, day + timedelta(days=28)),
                ("long", vocab.LONG_GOALS[0], "LEFS", 4, e0 + timedelta(days=84)),
            ):
                base = {m[0]: m for m in HOST_MEASURES}[instrument]
                c.add(
                    "goals",
                    {
                        "goal_id": c.new_id("goals"),
                        "poe_id": poe_id,
                        "term": term,
                        "description": text,
                        "instrument": instrument,
                        "target_value": host_measure(instrument, base[1], base[2], k + ahead),
                        "target_date": iso(target_day),
                    },
                )
        if kind != "initial":
            c.add(
                "progress_reports",
                {
                    "report_id": c.new_id("progress_reports"),
                    "client_id": client_id,
                    "assessment_id": assessment_id,
                    "provider_id": referrer_id,
                    "sent_on": iso(day + timedelta(days=3)),
                },
            )

    # Sessions, their logs and services, and one claim per session.
    practice_npi = net.practice_npis[practice]
    for n, day in enumerate(session_days):
        session_id = c.new_id("sessions")
        c.add(
            "sessions",
            {
                "session_id": session_id,
                "client_id": client_id,
                "staff_id": staff_id,
                "session_date": iso(day),
                "status": "completed",
                "timed_minutes": sum(m for _, m, _ in HOST_SERVICES),
                "client_response": vocab.CLIENT_RESPONSES[n % len(vocab.CLIENT_RESPONSES)],
                "notes": vocab.SESSION_NOTES[n % len(vocab.SESSION_NOTES)],
                "signed_at": host.signed_at(day),
            },
        )
        for j in range(3):
            c.add(
                "session_exercises",
                {
                    "session_id": session_id,
                    "exercise_name": vocab.EXERCISES[(index + 5 * j) % 20],
                    "sets": 3,
                    "reps": 10,
                    "intensity": vocab.EXERCISE_INTENSITIES[1],
                },
            )
        for code, minutes, _ in HOST_SERVICES:
            c.add(
                "session_services", {"session_id": session_id, "cpt_code": code, "minutes": minutes}
            )
        submitted = day + timedelta(days=3)
        age = (d - submitted).days
        status = "draft" if age < 0 else "paid" if age >= 21 else "submitted"
        claim_id = c.new_id("claims")
        total = sum(units * HOST_FEES[code] for code, _, units in HOST_SERVICES)
        c.add(
            "claims",
            {
                "claim_id": claim_id,
                "client_id": client_id,
                "policy_id": policy_id,
                "billing_npi": practice_npi,
                "rendering_staff_id": staff_id,
                "submitted_on": iso(submitted) if status != "draft" else None,
                "status": status,
                "denied_on": None,
                "appealed_on": None,
                "total_charge": total,
                "paid_amount": round(total * 0.7, 2) if status == "paid" else None,
            },
        )
        for pointer, code in (("A", "Z96.651"), ("B", "I10")):
            c.add("claim_diagnoses", {"claim_id": claim_id, "pointer": pointer, "icd10_code": code})
        for line_no, (code, _, units) in enumerate(HOST_SERVICES, start=1):
            add_line(c, claim_id, line_no, day, code, units, "AB" if line_no == 1 else "A")
    return host


def add_line(
    cohort: Cohort, claim_id: str, line_no: int, day: date, code: str, units: int, pointers: str
) -> Row:
    """Add a claim line (charge = units x the host fee of the code)."""
    return cohort.add(
        "claim_lines",
        {
            "line_id": cohort.new_id("claim_lines"),
            "claim_id": claim_id,
            "line_no": line_no,
            "service_date": iso(day),
            "cpt_code": code,
            "modifiers": None,
            "units": units,
            "charge": units * HOST_FEES.get(code, 45.0),
            "diagnosis_pointers": pointers,
        },
    )


def host_measure(instrument: str, baseline: float, step: float, k: int) -> float:
    """The host's value of ``instrument`` at its k-th assessment (better by one step each)."""
    spec = vocab.INSTRUMENTS[instrument]
    sign = -1.0 if spec.lower_is_better else 1.0
    value = min(max(baseline + sign * step * k, spec.floor), spec.ceiling)
    return round(value, spec.decimals)


def _credential(net: Network, index: int) -> str:
    return str(net.providers.column("credential")[index].as_py())


def new_provider(cohort: Cohort, credential: str, *, valid_npi: bool = True, name: str = "") -> str:
    """Add a provider used by one host only; return its id."""
    provider_id = cohort.new_id("providers")
    number = cohort.net.counters["providers"]
    npi = make_npi(150_000_000 + number)
    if not valid_npi:
        npi = npi[:9] + str((int(npi[9]) + 1) % 10)
    cohort.add(
        "providers",
        {
            "provider_id": provider_id,
            "full_name": name
            or f"{vocab.FIRST_NAMES[number % 90]} {vocab.LAST_NAMES[number % 90]}",
            "credential": credential,
            "npi": npi,
        },
    )
    return provider_id


def new_staff(
    cohort: Cohort,
    host: Host,
    *,
    credential: str = "MES",
    expires: date | None,
    valid_npi: bool = True,
) -> str:
    """Add a staff member of the host's practice used by this host only; return its id."""
    staff_id = cohort.new_id("staff")
    number = cohort.net.counters["staff"]
    npi = make_npi(160_000_000 + number)
    if not valid_npi:
        npi = npi[:9] + str((int(npi[9]) + 1) % 10)
    cohort.add(
        "staff",
        {
            "staff_id": staff_id,
            "practice_id": host.practice_id,
            "full_name": f"{vocab.FIRST_NAMES[number % 90]} {vocab.LAST_NAMES[(number * 3) % 90]}",
            "npi": npi,
            "credential": credential,
            "certification_expires_on": iso(expires) if expires else None,
            "active": 1,
        },
    )
    return staff_id


def day_of(value: str) -> date:
    """The date of an ISO date text."""
    return date.fromisoformat(value[:10])
