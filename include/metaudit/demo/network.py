"""The clean demo network: practices, staff, providers and clients with whole episodes of care.

Generation is column-wise (numpy and Arrow), one chunk of clients at a time, so
a million sessions take seconds, not a Python loop per row. Every random choice
comes from a generator seeded with (seed, purpose, chunk), so the same seed
gives the same database.

Design of a client's timeline (day numbers, D = the as-of date, e0 = the
initial assessment, s0 = the first session):

- prior rehab discharge (PT/OT/DC) 7..120 days before e0; intake 0..7 days
  before e0; eligibility check 1..10 days before e0; first referral 3..21 days
  before e0; s0 = e0 + 0..3.
- sessions: ``freq`` (1..3) a week on fixed weekdays, one a day at most;
  reassessments every 28 days from e0; one plan of exercise per assessment,
  running until the next one (open-ended for the last, or until discharge).
- referrals renew 15..25 days before they expire, so a referral always covers
  the next day; authorizations (when the policy needs them) come in 56-day
  windows from e0 with more visits than the window can hold.
- kinds: past (discharged, last session at least 15 days before D), on hold
  (likewise, not discharged), active (sessions run from before D until D + 28
  days), future (first session after D). Records dated after D exist for the
  active and future clients: the audit at D must not see them.

Why the clean network trips none of the 50 rules at D (defaults) is written
rule by rule in ``CLEAN_DESIGN`` below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from metaudit.demo import arrow as ar
from metaudit.demo import vocab
from metaudit.spec.npi import npi_check_digit
from metaudit.spec.settings import SETTINGS

# The rulebook's thresholds (settings' defaults) that the clean design keeps clear of
# and the defects cross: read from the settings, so the demo follows a changed default.
REFERRAL_VALIDITY_DAYS: int = SETTINGS["referral_validity_days"].default
REFERRAL_EXPIRY_NOTICE_DAYS: int = SETTINGS["referral_expiry_notice_days"].default
REASSESSMENT_INTERVAL_DAYS: int = SETTINGS["reassessment_interval_days"].default
REASSESSMENT_NOTICE_DAYS: int = SETTINGS["reassessment_notice_days"].default
AUTH_END_NOTICE_DAYS: int = SETTINGS["auth_end_notice_days"].default

# Records continue this many days after D (future sessions, assessments, claims).
HORIZON_DAYS = 28
REASSESSMENT_DAYS = 28
AUTH_WINDOW_DAYS = 56
# Referrals are renewed this many days (at least) before they expire: before the
# expiry notice window (REF-009) opens, so a renewal already exists when it does.
RENEWAL_LEAD_DAYS = REFERRAL_EXPIRY_NOTICE_DAYS + 1
CHUNK_CLIENTS = 4000
# Day numbers count from here.
EPOCH = date(1970, 1, 1)

PAST, HOLD, ACTIVE, FUTURE = 0, 1, 2, 3
KIND_SHARES = ((PAST, 0.70), (HOLD, 0.05), (ACTIVE, 0.22), (FUTURE, 0.03))
CLIENT_STATUS = ("discharged", "on_hold", "active", "active")

# Weekday offsets of the sessions of a week, by frequency (1, 2 or 3 a week).
SLOT_OFFSETS = np.array([[0, 0, 0], [0, 3, 0], [0, 2, 4]], dtype=np.int64)

# Active clients' days since the initial assessment are drawn from this set: the
# latest assessment is at most MAX_ASSESSMENT_AGE_DAYS old, so its reassessment falls
# due after the notice window (REA-002/REA-003), and D lies at most on day
# LAST_AUTH_WINDOW_DAY of its authorization window, before the window's end comes
# within the notice (ELG-006).
MAX_ACTIVE_DAYS = 168
MAX_ASSESSMENT_AGE_DAYS = REASSESSMENT_INTERVAL_DAYS - REASSESSMENT_NOTICE_DAYS - 1
LAST_AUTH_WINDOW_DAY = AUTH_WINDOW_DAYS - 1 - AUTH_END_NOTICE_DAYS - 1
ACTIVE_DAYS = np.array(
    [
        t
        for t in range(MAX_ACTIVE_DAYS + 1)
        if t % REASSESSMENT_DAYS <= MAX_ASSESSMENT_AGE_DAYS
        and t % AUTH_WINDOW_DAYS <= LAST_AUTH_WINDOW_DAY
    ],
    dtype=np.int64,
)

CLEAN_DESIGN = {
    "REF-001": "every client has a referral dated 3..21 days before its initial assessment, before any session",
    "REF-002": "referrals form a chain: each renewal is dated 15..25 days before the previous expiry, and the chain runs past the last session",
    "REF-003": "referrers are drawn only from MD, DO, DPM, NP and PA providers, all present in providers",
    "REF-004": "every NP/PA referrer has a fixed MD/DO supervisor, named on each of its referrals",
    "REF-005": "every referrer has a valid NPI (Luhn check digit computed)",
    "REF-006": "every referral is signed 0..3 days after its date",
    "REF-007": "services_requested comes from phrases that each name medical exercise, MET or MES",
    "REF-008": "every referral lists the client's diagnoses (1 or 2 rows)",
    "REF-009": f"the renewal of a referral is dated at least {RENEWAL_LEAD_DAYS} days before its expiry, so when the covering referral expires within {REFERRAL_EXPIRY_NOTICE_DAYS} days of D its renewal already exists at D and covers expiry + 1",
    "ELG-001": "claims go only to commercial, workers_comp, auto and other plans; Medicare Advantage and self-pay clients are not billed",
    "ELG-002": "the billed policy has an active eligibility check 1..10 days before the initial assessment, before any session",
    "ELG-003": "out-of-network policies all have out-of-network benefits",
    "ELG-004": "a policy that needs authorization has back-to-back 56-day authorizations from the initial assessment until past the last session",
    "ELG-005": "an authorization approves 4 more visits than its 56-day window can hold at the client's weekly frequency",
    "ELG-006": f"active clients are placed so that D lies at least {AUTH_END_NOTICE_DAYS + 1} days before the end of the authorization window covering it, which still has 4 visits or more left",
    "ELG-007": "every client has a PT/OT/DC discharge 7..120 days before the initial assessment",
    "ELG-008": "every client has a post_surgical, trauma or chronic condition",
    "ELG-009": "every initial assessment states residual functional deficits",
    "DOC-001": "one complete intake 0..7 days before the initial assessment (history, contact, consent, waiver)",
    "DOC-002": "the initial assessment is 0..3 days before the first session",
    "DOC-003": "assessments document range of motion, strength and posture and record three outcome measures",
    "DOC-004": "plans of exercise run back to back from the initial assessment, the last one open-ended or until discharge",
    "DOC-005": "every plan has frequency, duration, intensity, progression, four exercises and a signature",
    "DOC-006": "every plan has one short-term and one long-term goal",
    "DOC-007": "every goal names an instrument, a target value and a target date",
    "DOC-008": "every completed session logs three exercises with sets, reps and intensity, a client response and its timed minutes",
    "DOC-009": "every completed session is signed the same day or the next, 12:00-21:00 in the practice's zone (stored in UTC)",
    "DOC-010": "sessions are delivered only by MES/AMES staff whose certification runs until at least 45 days after D",
    "DOC-011": "notes and deficit texts come from phrases free of the scope-of-practice patterns (checked by the tests)",
    "DOC-012": "a progress report goes to the referrer 1..7 days after every reassessment",
    "REA-001": "reassessments every 28 days from the initial assessment until the last session",
    "REA-002": f"active clients' latest assessment is at most {MAX_ASSESSMENT_AGE_DAYS} days before D",
    "REA-003": f"the same placement puts the next due date (latest + {REASSESSMENT_INTERVAL_DAYS}) at least {REASSESSMENT_NOTICE_DAYS + 1} days after D",
    "REA-004": "every reassessment records the client's three outcome measures",
    "REA-005": "measures improve by at least one step at every reassessment (and never regress), so the latest reassessment beats the initial one",
    "COD-001": "lines bill only 97110, 97112 and 97530",
    "COD-002": "lines point to A or AB; the claim has diagnosis A and, when the client has two, B",
    "COD-003": "diagnoses are billable ICD-10-CM codes, unchanged since 2015 (tests check is_leaf)",
    "COD-004": "claim diagnoses are the client's condition codes, also listed on its referrals",
    "COD-005": "a service of m minutes bills m // 15 units, never more than either unit rule allows for the day",
    "COD-006": "claims are made only for completed sessions, one claim per session",
    "COD-007": "one session a day per client, each code once per session, one live claim per session (a voided claim is rebilled once)",
    "COD-008": "billing NPI = the practice's valid organization NPI; rendering staff = the session's MES, with a valid NPI",
    "COD-009": "claims are submitted 1..10 days after the service (a rebilled claim up to 30 days)",
    "COD-010": "each claim line mirrors one session_services row of the session",
    "CLM-001": "a denial is appealed 3..15 days later; a claim is still 'denied' only while that appeal date is after D",
    "CLM-002": "a claim stays 'submitted' only until its payment (14..30 days) or denial (10..25 days) date, both after D",
    "DQ-001": "every key is numbered once",
    "DQ-002": "every link names a generated row",
    "DQ-003": "every required value is present and readable; listed values are canonical",
}


@dataclass
class Network:
    """The planned network: the small tables built in full, and one plan row per client."""

    as_of_day: int
    seed: int
    practices: pa.Table
    staff: pa.Table
    providers: pa.Table
    clients: pd.DataFrame  # one row per client, in client-id order (see plan_network)
    practice_ids: list[str]
    practice_npis: list[str]
    practice_zones: list[str]
    staff_ids: list[str]
    mes_start: np.ndarray  # per practice: first index into mes_staff
    mes_count: np.ndarray
    mes_staff: np.ndarray  # staff indexes of MES/AMES staff, grouped by practice
    provider_ids: list[str]
    referrers: np.ndarray  # provider indexes of referring providers
    supervisor_of: np.ndarray  # per provider: supervising provider index, or -1
    counters: dict[str, int] = field(default_factory=dict)


def day_number(value: date) -> int:
    """Days since 1970-01-01."""
    return (value - EPOCH).days


def make_npi(first_nine: int) -> str:
    """A valid NPI from a nine-digit body (first digit 1 or 2)."""
    body = f"{first_nine:09d}"
    return body + str(npi_check_digit(body))


def plan_network(as_of: date, *, seed: int, practices: int, sessions: int) -> Network:
    """Plan the practices, their staff and referrers, and enough clients for ``sessions``."""
    if practices < 1 or sessions < 1:
        raise ValueError("practices and sessions must be positive")
    rng = np.random.default_rng([seed, 0])
    d = day_number(as_of)

    clients = _plan_clients(rng, d, practices, sessions)
    per_practice = np.bincount(clients["practice"].to_numpy(), minlength=practices)

    practice_ids = [f"PR{i + 1:04d}" for i in range(practices)]
    practice_npis = [
        make_npi(int(rng.integers(100_000_000, 299_999_999))) for _ in range(practices)
    ]
    zones = [vocab.TIMEZONES[int(i)] for i in rng.integers(0, len(vocab.TIMEZONES), practices)]
    names = []
    for i in range(practices):
        place = vocab.PLACES[i % len(vocab.PLACES)]
        suffix = vocab.PRACTICE_SUFFIXES[
            (i // len(vocab.PLACES) + i) % len(vocab.PRACTICE_SUFFIXES)
        ]
        copy = i // (len(vocab.PLACES) * len(vocab.PRACTICE_SUFFIXES))
        names.append(f"{place} {suffix}" + (f" {copy + 1}" if copy else ""))
    practices_table = ar.table(
        "practices",
        {
            "practice_id": pa.array(practice_ids),
            "name": pa.array(names),
            "organization_npi": pa.array(practice_npis),
            "timezone": pa.array(zones, type=pa.string()),
        },
    )

    # Staff: enough MES/AMES for the caseload, plus one or two who never deliver sessions.
    staff_rows: list[dict[str, object]] = []
    mes_staff: list[int] = []
    mes_start = np.zeros(practices, dtype=np.int64)
    mes_count = np.zeros(practices, dtype=np.int64)
    for p in range(practices):
        n_mes = int(np.clip(math.ceil(per_practice[p] / 30), 2, 15))
        n_other = 1 + p % 2
        mes_start[p] = len(mes_staff)
        mes_count[p] = n_mes
        for j in range(n_mes + n_other):
            index = len(staff_rows)
            is_mes = j < n_mes
            first = vocab.FIRST_NAMES[int(rng.integers(len(vocab.FIRST_NAMES)))]
            last = vocab.LAST_NAMES[int(rng.integers(len(vocab.LAST_NAMES)))]
            if is_mes:
                mes_staff.append(index)
                credential = "AMES" if rng.random() < 0.3 else "MES"
                expires = EPOCH.toordinal() + d + int(rng.integers(45, 900))
                staff_rows.append(
                    {
                        "staff_id": f"ST{index + 1:05d}",
                        "practice_id": practice_ids[p],
                        "full_name": f"{first} {last}",
                        "npi": make_npi(int(rng.integers(100_000_000, 199_999_999))),
                        "credential": credential,
                        "certification_expires_on": date.fromordinal(expires).isoformat(),
                        "active": 1,
                    }
                )
            else:
                credential = vocab.OTHER_STAFF_CREDENTIALS[
                    int(rng.integers(len(vocab.OTHER_STAFF_CREDENTIALS)))
                ]
                staff_rows.append(
                    {
                        "staff_id": f"ST{index + 1:05d}",
                        "practice_id": practice_ids[p],
                        "full_name": f"{first} {last}",
                        "npi": None,
                        "credential": credential,
                        "certification_expires_on": None,
                        "active": int(rng.random() < 0.8),
                    }
                )
    staff_table = _rows_table("staff", staff_rows)

    # Providers: referrers (NP/PA supervised by an MD/DO) and a few who never refer.
    n_referrers = max(12, 5 * practices)
    n_other = max(2, n_referrers // 25)
    creds, shares = zip(*vocab.REFERRER_CREDENTIALS, strict=True)
    referrer_creds = rng.choice(np.array(creds), size=n_referrers, p=np.array(shares))
    referrer_creds[:2] = "MD"  # at least two supervisors exist, whatever the draw
    physicians = np.flatnonzero(np.isin(referrer_creds, ["MD", "DO"]))
    provider_rows: list[dict[str, object]] = []
    supervisor_of = np.full(n_referrers + n_other, -1, dtype=np.int64)
    for i in range(n_referrers + n_other):
        credential = (
            str(referrer_creds[i])
            if i < n_referrers
            else vocab.NON_REFERRER_CREDENTIALS[i % len(vocab.NON_REFERRER_CREDENTIALS)]
        )
        if credential in ("NP", "PA"):
            supervisor_of[i] = int(physicians[int(rng.integers(len(physicians)))])
        first = vocab.FIRST_NAMES[int(rng.integers(len(vocab.FIRST_NAMES)))]
        last = vocab.LAST_NAMES[int(rng.integers(len(vocab.LAST_NAMES)))]
        provider_rows.append(
            {
                "provider_id": f"PV{i + 1:05d}",
                "full_name": f"{first} {last}",
                "credential": credential,
                "npi": make_npi(int(rng.integers(100_000_000, 199_999_999))),
            }
        )
    providers_table = _rows_table("providers", provider_rows)

    # Each client's MES and referrer (referrers overlap between neighbouring practices).
    practice = clients["practice"].to_numpy()
    n = len(clients)
    clients["staff"] = np.asarray(mes_staff, dtype=np.int64)[
        mes_start[practice] + rng.integers(0, 1 << 30, n) % mes_count[practice]
    ]
    clients["referrer"] = (practice * 5 + rng.integers(0, 12, n)) % n_referrers

    return Network(
        as_of_day=d,
        seed=seed,
        practices=practices_table,
        staff=staff_table,
        providers=providers_table,
        clients=clients,
        practice_ids=practice_ids,
        practice_npis=practice_npis,
        practice_zones=[z or vocab.DEFAULT_TIMEZONE for z in zones],
        staff_ids=[str(r["staff_id"]) for r in staff_rows],
        mes_start=mes_start,
        mes_count=mes_count,
        mes_staff=np.asarray(mes_staff, dtype=np.int64),
        provider_ids=[str(r["provider_id"]) for r in provider_rows],
        referrers=np.arange(n_referrers, dtype=np.int64),
        supervisor_of=supervisor_of,
        counters={"clients": n, "staff": len(staff_rows), "providers": len(provider_rows)},
    )


def _rows_table(name: str, rows: list[dict[str, object]]) -> pa.Table:
    columns = {
        column: pa.array([r[column] for r in rows], type=ar.storage_type(name, column))
        for column in rows[0]
    }
    return ar.table(name, columns)


def session_slots(
    s0: np.ndarray, freq: np.ndarray, weeks: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """How many scheduled sessions (s0 + 7w + slot offset <= end, w < weeks) each client has."""
    total = np.zeros(len(s0), dtype=np.int64)
    for slot in range(3):
        used = freq > slot
        first = s0 + SLOT_OFFSETS[freq - 1, slot]
        count = np.clip((end - first) // 7 + 1, 0, weeks)
        total += np.where(used, count, 0)
    return total


def _plan_clients(rng: np.random.Generator, d: int, practices: int, sessions: int) -> pd.DataFrame:
    """Draw clients until their scheduled sessions reach ``sessions``; order them by start."""
    weights = rng.lognormal(0.0, 0.5, practices)
    weights /= weights.sum()
    batches = []
    total = 0
    while total < sessions:
        batch = _draw_clients(rng, d, practices, weights, max(64, sessions // 20))
        batches.append(batch)
        total += int(batch["n_sessions"].sum())
    clients = pd.concat(batches, ignore_index=True)
    keep = int(np.searchsorted(np.cumsum(clients["n_sessions"].to_numpy()), sessions) + 1)
    clients = clients.iloc[:keep]
    # Client ids follow registration: the earliest intake first.
    clients = clients.sort_values(["e0", "practice"], kind="stable").reset_index(drop=True)
    return clients


def _draw_clients(
    rng: np.random.Generator, d: int, practices: int, weights: np.ndarray, n: int
) -> pd.DataFrame:
    kinds, shares = zip(*KIND_SHARES, strict=True)
    kind = rng.choice(np.array(kinds), size=n, p=np.array(shares))
    freq = rng.choice(np.array([1, 2, 3]), size=n, p=np.array([0.2, 0.5, 0.3]))
    planned_weeks = rng.integers(6, 25, n)
    delta = rng.integers(0, 4, n)  # first session this many days after the initial assessment

    # Past and on-hold: the whole episode ends at least 15 days before D.
    latest_e0 = d - 15 - 7 * planned_weeks - delta
    past_e0 = latest_e0 - rng.integers(0, 720, n)
    # Active: days since the initial assessment from the allowed set (see ACTIVE_DAYS).
    active_t = ACTIVE_DAYS[rng.integers(0, len(ACTIVE_DAYS), n)]
    active_e0 = d - active_t
    # Future: first session after D, within the horizon.
    future_s0 = d + rng.integers(1, HORIZON_DAYS - 2, n)
    future_e0 = future_s0 - rng.integers(0, 6, n)

    e0 = np.select([kind <= HOLD, kind == ACTIVE], [past_e0, active_e0], future_e0)
    s0 = np.where(kind == FUTURE, future_s0, e0 + delta)
    ongoing = kind >= ACTIVE
    # Ongoing clients are scheduled through the horizon; others for their planned weeks.
    end = np.where(ongoing, d + HORIZON_DAYS, s0 + 7 * planned_weeks - 1)
    weeks = np.where(ongoing, (d + HORIZON_DAYS - s0) // 7 + 1, planned_weeks)
    weeks = np.maximum(weeks, 0)
    n_sessions = session_slots(s0, freq, weeks, end)
    planned_weeks = np.maximum(planned_weeks, (end - e0) // 7 + 1)
    return pd.DataFrame(
        {
            "practice": rng.choice(practices, size=n, p=weights),
            "kind": kind,
            "e0": e0,
            "s0": s0,
            "freq": freq,
            "weeks": weeks,
            "end": end,
            "planned_weeks": planned_weeks,
            "n_sessions": n_sessions,
        }
    )
