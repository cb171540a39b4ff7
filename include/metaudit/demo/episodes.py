"""Expand a chunk of planned clients into every contract table, column by column.

One call turns the plan rows of a few thousand clients into Arrow tables:
sessions with their exercise logs and CPT minutes, claims whose units the
minutes support, assessments with improving outcome measures, plans of
exercise, referrals, authorizations and the rest. See ``network`` for the
timeline and why it is clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from metaudit.demo import arrow as ar
from metaudit.demo import vocab
from metaudit.demo.network import (
    ACTIVE,
    AUTH_WINDOW_DAYS,
    CHUNK_CLIENTS,
    CLIENT_STATUS,
    HORIZON_DAYS,
    PAST,
    REASSESSMENT_DAYS,
    REFERRAL_VALIDITY_DAYS,
    RENEWAL_LEAD_DAYS,
    SLOT_OFFSETS,
    Network,
)

# Id prefix and digits per table; fixed widths keep text order equal to number order.
ID_FORMAT: dict[str, tuple[str, int]] = {
    "practices": ("PR", 4),
    "staff": ("ST", 5),
    "providers": ("PV", 5),
    "clients": ("CL", 6),
    "insurance_policies": ("PO", 7),
    "eligibility_checks": ("EV", 7),
    "authorizations": ("AU", 7),
    "rehab_discharges": ("RD", 7),
    "conditions": ("CN", 7),
    "referrals": ("RF", 7),
    "intake_forms": ("IN", 7),
    "assessments": ("AS", 7),
    "outcome_measures": ("OM", 8),
    "plans_of_exercise": ("PE", 7),
    "goals": ("GL", 8),
    "sessions": ("SE", 8),
    "progress_reports": ("RP", 7),
    "claims": ("CM", 8),
    "claim_lines": ("LN", 8),
}

SESSION_STATUSES = ("completed", "cancelled", "no_show")
PLAN_TYPE_SHARES = (
    ("commercial", 0.86),
    ("workers_comp", 0.04),
    ("auto", 0.03),
    ("other", 0.02),
    ("medicare_advantage", 0.02),
    ("self_pay", 0.03),
)
# Every order of the three timed codes; a session bills the first 1..3 of one of them.
CODE_ORDERS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
# Referral validity: days, and whether valid_until is written (not for the default).
REFERRAL_VALIDITY = np.array([60, REFERRAL_VALIDITY_DAYS, 120, 180])
REFERRAL_VALIDITY_SHARES = np.array([0.1, 0.6, 0.2, 0.1])
MAX_REFERRALS = 8
AREA_CODES = ("617", "508", "781", "603", "207", "802", "860", "401", "518", "607")
MEMBER_PREFIXES = ("XJ", "W", "H", "ZG", "AB", "U")


def next_ids(net: Network, table: str, n: int) -> pa.Array:
    """Take the next ``n`` ids of ``table`` from the network's counters."""
    prefix, width = ID_FORMAT[table]
    start = net.counters.get(table, 0) + 1
    net.counters[table] = start - 1 + n
    return ar.ids(prefix, start, n, width)


def _choice(rng: np.random.Generator, n: int, shares: tuple[tuple[str, float], ...]) -> np.ndarray:
    """Indexes into ``shares`` drawn with its probabilities."""
    p = np.array([s for _, s in shares])
    return rng.choice(len(shares), size=n, p=p / p.sum())


def _pick(rng: np.random.Generator, n: int, options: tuple[object, ...]) -> np.ndarray:
    return rng.integers(0, len(options), n)


def build_chunk(net: Network, lo: int, hi: int) -> dict[str, pa.Table]:
    """Every contract table's rows for clients ``lo``..``hi - 1`` of the plan."""
    rng = np.random.default_rng([net.seed, 1, lo // CHUNK_CLIENTS])
    plan = net.clients.iloc[lo:hi]
    n = len(plan)
    d = net.as_of_day
    kind = plan["kind"].to_numpy()
    e0 = plan["e0"].to_numpy()
    s0 = plan["s0"].to_numpy()
    freq = plan["freq"].to_numpy()
    weeks = plan["weeks"].to_numpy()
    end = plan["end"].to_numpy()
    planned_weeks = plan["planned_weeks"].to_numpy()
    practice = plan["practice"].to_numpy()
    primary_staff = plan["staff"].to_numpy()
    referrer = plan["referrer"].to_numpy()
    ongoing = kind >= ACTIVE
    is_past = kind == PAST

    out: dict[str, pa.Table] = {}
    client_id = ar.ids("CL", lo + 1, n, ID_FORMAT["clients"][1])
    practice_id = ar.take(net.practice_ids, practice)

    # --- sessions ---------------------------------------------------------------------
    owner, rank = ar.expand(weeks * freq)
    week = rank // freq[owner]
    slot = rank % freq[owner]
    sdate = s0[owner] + 7 * week + SLOT_OFFSETS[freq[owner] - 1, slot]
    keep = sdate <= end[owner]
    s_client, sdate = owner[keep], sdate[keep]
    n_s = len(sdate)
    per_client = np.bincount(s_client, minlength=n)
    last_index = np.cumsum(per_client) - 1
    last_session = np.where(per_client > 0, sdate[np.maximum(last_index, 0)], s0)
    # How far the paperwork must reach: the last session, or the horizon for ongoing clients.
    cover_end = np.where(ongoing, d + HORIZON_DAYS, last_session)

    u = rng.random(n_s)
    s_status = np.select([u < 0.92, u < 0.97], [0, 1], 2)
    completed = s_status == 0
    other_mes = net.mes_staff[
        net.mes_start[practice[s_client]]
        + rng.integers(0, 1 << 30, n_s) % net.mes_count[practice[s_client]]
    ]
    s_staff = np.where(rng.random(n_s) < 0.85, primary_staff[s_client], other_mes)
    session_id = next_ids(net, "sessions", n_s)

    # CPT minutes: each timed service of m = 15u + 0..7 minutes bills u units (COD-005).
    comp = np.flatnonzero(completed)
    n_c = len(comp)
    k_codes = rng.choice([1, 2, 3], size=n_c, p=[0.2, 0.55, 0.25])
    order = rng.integers(0, len(CODE_ORDERS), n_c)
    svc_owner, svc_rank = ar.expand(k_codes)
    svc_code = CODE_ORDERS[order[svc_owner], svc_rank]
    svc_units = np.where(
        k_codes[svc_owner] == 1,
        rng.integers(2, 4, len(svc_owner)),
        rng.integers(1, 3, len(svc_owner)),
    )
    svc_minutes = 15 * svc_units + rng.integers(0, 8, len(svc_owner))
    svc_session = comp[svc_owner]
    svc_start = np.cumsum(k_codes) - k_codes
    timed_minutes = np.bincount(svc_session, weights=svc_minutes, minlength=n_s).astype(np.int64)

    # Signed the same day (85%) or the next, 12:00-21:00 local; the last two days may wait.
    lag = (rng.random(n_s) < 0.15).astype(np.int64)
    minute = rng.integers(12 * 60, 21 * 60, n_s)
    local = (sdate + lag) * 86400 + minute * 60
    utc = _to_utc(local, np.asarray(net.practice_zones)[practice[s_client]])
    pending = (sdate >= d - 1) & (sdate <= d) & (rng.random(n_s) < 0.5)
    signed = completed & ~pending
    notes_choice = rng.integers(0, len(vocab.SESSION_NOTES), n_s)
    missed_choice = rng.integers(0, len(vocab.MISSED_SESSION_NOTES), n_s)
    with_note = rng.random(n_s) < 0.6
    notes = ar.where(
        completed,
        ar.take(vocab.SESSION_NOTES, notes_choice),
        ar.take(vocab.MISSED_SESSION_NOTES, missed_choice),
    )
    notes_valid = ~completed | with_note
    out["sessions"] = ar.table(
        "sessions",
        {
            "session_id": session_id,
            "client_id": client_id.take(pa.array(s_client)),
            "staff_id": ar.take(net.staff_ids, s_staff),
            "session_date": ar.dates(sdate),
            "status": ar.take(SESSION_STATUSES, s_status),
            "timed_minutes": ar.ints(timed_minutes, completed),
            "client_response": ar.where(
                completed,
                ar.take(vocab.CLIENT_RESPONSES, _pick(rng, n_s, vocab.CLIENT_RESPONSES)),
                ar.nulls(n_s),
            ),
            "notes": ar.where(notes_valid, notes, ar.nulls(n_s)),
            "signed_at": ar.stamps(utc, signed),
        },
    )

    ex_owner, ex_rank = ar.expand(np.full(n_c, 3))
    ex_base = rng.integers(0, len(vocab.EXERCISES), n_c)
    ex_name = (ex_base[ex_owner] + 7 * ex_rank) % len(vocab.EXERCISES)
    n_ex = len(ex_owner)
    out["session_exercises"] = ar.table(
        "session_exercises",
        {
            "session_id": session_id.take(pa.array(comp[ex_owner])),
            "exercise_name": ar.take(vocab.EXERCISES, ex_name),
            "sets": ar.ints(rng.integers(1, 5, n_ex)),
            "reps": ar.ints(rng.integers(5, 16, n_ex)),
            "intensity": ar.take(
                vocab.EXERCISE_INTENSITIES, _pick(rng, n_ex, vocab.EXERCISE_INTENSITIES)
            ),
        },
    )
    out["session_services"] = ar.table(
        "session_services",
        {
            "session_id": session_id.take(pa.array(svc_session)),
            "cpt_code": ar.take(vocab.CPT_CODES, svc_code),
            "minutes": ar.ints(svc_minutes),
        },
    )

    # --- clients and their standing records ---------------------------------------------
    first = _pick(rng, n, vocab.FIRST_NAMES)
    last = _pick(rng, n, vocab.LAST_NAMES)
    age_days = rng.integers(35 * 365, 88 * 365, n)
    out["clients"] = ar.table(
        "clients",
        {
            "client_id": client_id,
            "practice_id": practice_id,
            "first_name": ar.take(vocab.FIRST_NAMES, first),
            "last_name": ar.take(vocab.LAST_NAMES, last),
            "date_of_birth": ar.dates(e0 - age_days),
            "status": ar.take(CLIENT_STATUS, kind),
        },
    )

    disc_idx = _choice(rng, n, vocab.DISCHARGE_DISCIPLINES)
    out["rehab_discharges"] = ar.table(
        "rehab_discharges",
        {
            "discharge_id": next_ids(net, "rehab_discharges", n),
            "client_id": client_id,
            "discipline": ar.take([c for c, _ in vocab.DISCHARGE_DISCIPLINES], disc_idx),
            "discharge_date": ar.dates(e0 - rng.integers(7, 121, n)),
            "reason": ar.take(vocab.DISCHARGE_REASONS, _pick(rng, n, vocab.DISCHARGE_REASONS)),
        },
    )

    # Conditions: a qualifying one (diagnosis A) and, for half the clients, a second (B).
    cond1 = _pick(rng, n, vocab.PRIMARY_CONDITIONS)
    has2 = rng.random(n) < 0.5
    cond2 = _pick(rng, n, vocab.SECONDARY_CONDITIONS)
    dx1 = ar.take([c.icd10_code for c in vocab.PRIMARY_CONDITIONS], cond1)
    dx2 = ar.take([c.icd10_code for c in vocab.SECONDARY_CONDITIONS], cond2)
    c_owner, c_rank = ar.expand(1 + has2)
    second = c_rank == 1
    all_conditions = vocab.PRIMARY_CONDITIONS + vocab.SECONDARY_CONDITIONS
    c_index = np.where(second, len(vocab.PRIMARY_CONDITIONS) + cond2[c_owner], cond1[c_owner])
    out["conditions"] = ar.table(
        "conditions",
        {
            "condition_id": next_ids(net, "conditions", len(c_owner)),
            "client_id": client_id.take(pa.array(c_owner)),
            "category": ar.take([c.category for c in all_conditions], c_index),
            "icd10_code": ar.take([c.icd10_code for c in all_conditions], c_index),
            "description": ar.take([c.description for c in all_conditions], c_index),
        },
    )

    policy_ids = _policies(net, rng, out, client_id, e0, kind)
    billed = policy_ids.billed

    # Eligibility: an active check before the episode; an inactive one for an old policy.
    _eligibility(net, rng, out, policy_ids, e0)

    # Authorizations: back-to-back 56-day windows from e0 past cover_end, generous visits.
    pre = policy_ids.preauth
    n_windows = np.where(pre, (cover_end - e0) // AUTH_WINDOW_DAYS + 1, 0)
    a_owner, a_rank = ar.expand(n_windows)
    a_start = e0[a_owner] + AUTH_WINDOW_DAYS * a_rank
    approved = 4 * np.ceil(2 * freq[a_owner]).astype(np.int64) + 4
    out["authorizations"] = ar.table(
        "authorizations",
        {
            "authorization_id": next_ids(net, "authorizations", len(a_owner)),
            "policy_id": policy_ids.current.take(pa.array(a_owner)),
            "auth_number": ar.digits("PA", rng.integers(0, 10**8, len(a_owner)), 8),
            "start_date": ar.dates(a_start),
            "end_date": ar.dates(a_start + AUTH_WINDOW_DAYS - 1),
            "approved_visits": ar.ints(approved),
        },
    )

    # Referrals: a chain renewed RENEWAL_LEAD_DAYS..+10 before expiry, kept while dated <= cover_end.
    validity = rng.choice(REFERRAL_VALIDITY, size=(n, MAX_REFERRALS), p=REFERRAL_VALIDITY_SHARES)
    slack = rng.integers(0, 11, (n, MAX_REFERRALS))
    f0 = e0 - rng.integers(3, 22, n)
    steps = validity - RENEWAL_LEAD_DAYS - slack
    ref_dates = f0[:, None] + np.concatenate(
        [np.zeros((n, 1), dtype=np.int64), np.cumsum(steps[:, :-1], axis=1)], axis=1
    )
    wanted = ref_dates <= cover_end[:, None]
    if wanted[:, -1].any():
        raise AssertionError("referral chain too short for an episode; raise MAX_REFERRALS")
    r_client, r_k = np.nonzero(wanted)
    r_date = ref_dates[r_client, r_k]
    r_valid = validity[r_client, r_k]
    n_r = len(r_client)
    r_provider = referrer[r_client]
    r_supervisor = net.supervisor_of[r_provider]
    referral_id = next_ids(net, "referrals", n_r)
    out["referrals"] = ar.table(
        "referrals",
        {
            "referral_id": referral_id,
            "client_id": client_id.take(pa.array(r_client)),
            "provider_id": ar.take(net.provider_ids, r_provider),
            "supervising_provider_id": ar.where(
                r_supervisor >= 0,
                ar.take(net.provider_ids, np.maximum(r_supervisor, 0)),
                ar.nulls(n_r),
            ),
            "referral_date": ar.dates(r_date),
            "signed_on": ar.dates(r_date + rng.integers(0, 4, n_r)),
            "valid_until": ar.dates(r_date + r_valid, r_valid != REFERRAL_VALIDITY_DAYS),
            "services_requested": ar.take(
                vocab.SERVICES_REQUESTED, _pick(rng, n_r, vocab.SERVICES_REQUESTED)
            ),
        },
    )
    rd_owner, rd_rank = ar.expand(1 + has2[r_client])
    out["referral_diagnoses"] = ar.table(
        "referral_diagnoses",
        {
            "referral_id": referral_id.take(pa.array(rd_owner)),
            "seq": ar.ints(rd_rank + 1),
            "icd10_code": ar.where(
                rd_rank == 0,
                dx1.take(pa.array(r_client[rd_owner])),
                dx2.take(pa.array(r_client[rd_owner])),
            ),
        },
    )

    intake_day = e0 - rng.integers(0, 8, n)
    ec_first = _pick(rng, n, vocab.FIRST_NAMES)
    out["intake_forms"] = ar.table(
        "intake_forms",
        {
            "intake_id": next_ids(net, "intake_forms", n),
            "client_id": client_id,
            "form_name": pa.array(["MET-Q"] * n),
            "completed_on": ar.dates(intake_day),
            "health_history_complete": ar.ints(np.ones(n)),
            "emergency_contact_name": ar.join(
                ar.take(vocab.FIRST_NAMES, ec_first), " ", ar.take(vocab.LAST_NAMES, last)
            ),
            "emergency_contact_phone": ar.join(
                "(",
                ar.take(AREA_CODES, _pick(rng, n, AREA_CODES)),
                ") 555-01",
                ar.digits("", rng.integers(0, 100, n), 2),
            ),
            "consent_signed_on": ar.dates(intake_day),
            "waiver_signed_on": ar.dates(intake_day),
        },
    )

    # --- assessments, measures, plans of exercise, goals, progress reports -------------
    n_reassess = (cover_end - e0) // REASSESSMENT_DAYS
    discharge_day = last_session + rng.integers(1, 3, n)
    as_owner, as_rank = ar.expand(n_reassess + 1 + is_past)
    n_a = len(as_owner)
    is_discharge = as_rank > n_reassess[as_owner]
    a_kind = np.where(as_rank == 0, 0, np.where(is_discharge, 2, 1))
    a_day = np.where(
        is_discharge, discharge_day[as_owner], e0[as_owner] + REASSESSMENT_DAYS * as_rank
    )
    deficits = np.select(
        [a_kind == 0, a_kind == 1],
        [
            rng.integers(0, len(vocab.INITIAL_DEFICITS), n_a),
            len(vocab.INITIAL_DEFICITS) + rng.integers(0, len(vocab.REASSESSMENT_DEFICITS), n_a),
        ],
        len(vocab.INITIAL_DEFICITS) + len(vocab.REASSESSMENT_DEFICITS),
    )
    deficit_texts = vocab.INITIAL_DEFICITS + vocab.REASSESSMENT_DEFICITS + vocab.DISCHARGE_DEFICITS
    note_index = np.where(a_kind == 0, 0, 1 + rng.integers(0, len(vocab.ASSESSMENT_NOTES) - 1, n_a))
    assessment_id = next_ids(net, "assessments", n_a)
    ones = ar.ints(np.ones(n_a))
    out["assessments"] = ar.table(
        "assessments",
        {
            "assessment_id": assessment_id,
            "client_id": client_id.take(pa.array(as_owner)),
            "staff_id": ar.take(net.staff_ids, primary_staff[as_owner]),
            "assessed_on": ar.dates(a_day),
            "kind": ar.take(("initial", "reassessment", "discharge"), a_kind),
            "rom_documented": ones,
            "strength_documented": ones,
            "posture_documented": ones,
            "functional_deficits": ar.take(deficit_texts, deficits),
            "notes": ar.where(
                rng.random(n_a) < 0.7, ar.take(vocab.ASSESSMENT_NOTES, note_index), ar.nulls(n_a)
            ),
            "signed_on": ar.dates(a_day + rng.integers(0, 2, n_a)),
        },
    )

    # Outcome measures: the condition's three instruments, better by one step each time.
    names = np.array(vocab.INSTRUMENT_NAMES)
    instrument = np.array(
        [[vocab.INSTRUMENT_NAMES.index(i) for i in c.instruments] for c in vocab.PRIMARY_CONDITIONS]
    )[cond1]
    baseline, step = _baselines(rng, instrument)
    m_owner, m_rank = ar.expand(np.full(n_a, 3))
    m_client = as_owner[m_owner]
    m_inst = instrument[m_client, m_rank]
    m_value = _measure(m_inst, baseline[m_client, m_rank], step[m_client, m_rank], as_rank[m_owner])
    units = np.array([vocab.INSTRUMENTS[i].unit for i in vocab.INSTRUMENT_NAMES])
    out["outcome_measures"] = ar.table(
        "outcome_measures",
        {
            "measure_id": next_ids(net, "outcome_measures", len(m_owner)),
            "assessment_id": assessment_id.take(pa.array(m_owner)),
            "instrument": ar.take(list(names), m_inst),
            "value": ar.nums(m_value),
            "unit": ar.take(list(units), m_inst),
        },
    )

    plan_rows = np.flatnonzero(~is_discharge)
    p_client = as_owner[plan_rows]
    p_rank = as_rank[plan_rows]
    p_start = a_day[plan_rows]
    p_is_last = p_rank == n_reassess[p_client]
    p_end = np.where(p_is_last, discharge_day[p_client], p_start + REASSESSMENT_DAYS - 1)
    p_end_valid = ~p_is_last | is_past[p_client]
    n_p = len(plan_rows)
    poe_id = next_ids(net, "plans_of_exercise", n_p)
    out["plans_of_exercise"] = ar.table(
        "plans_of_exercise",
        {
            "poe_id": poe_id,
            "client_id": client_id.take(pa.array(p_client)),
            "assessment_id": assessment_id.take(pa.array(plan_rows)),
            "start_date": ar.dates(p_start),
            "end_date": ar.dates(p_end, p_end_valid),
            "frequency_per_week": ar.ints(freq[p_client]),
            "duration_weeks": ar.ints(np.full(n_p, 4)),
            "intensity": ar.take(vocab.POE_INTENSITIES, _pick(rng, n_p, vocab.POE_INTENSITIES)),
            "progression": ar.take(vocab.PROGRESSIONS, _pick(rng, n_p, vocab.PROGRESSIONS)),
            "signed_on": ar.dates(p_start + rng.integers(0, 3, n_p)),
        },
    )
    pe_owner, pe_rank = ar.expand(np.full(n_p, 4))
    pe_base = rng.integers(0, len(vocab.EXERCISES), n_p)
    n_pe = len(pe_owner)
    out["poe_exercises"] = ar.table(
        "poe_exercises",
        {
            "poe_id": poe_id.take(pa.array(pe_owner)),
            "exercise_name": ar.take(
                vocab.EXERCISES, (pe_base[pe_owner] + 5 * pe_rank) % len(vocab.EXERCISES)
            ),
            "sets": ar.ints(rng.integers(2, 4, n_pe)),
            "reps": ar.ints(rng.integers(8, 16, n_pe)),
            "intensity": ar.take(
                vocab.EXERCISE_INTENSITIES, _pick(rng, n_pe, vocab.EXERCISE_INTENSITIES)
            ),
        },
    )
    g_owner, g_rank = ar.expand(np.full(n_p, 2))  # rank 0 short-term, 1 long-term
    g_client = p_client[g_owner]
    g_slot = g_rank  # short-term goal on instrument 0, long-term on instrument 1
    g_inst = instrument[g_client, g_slot]
    g_ahead = np.where(g_rank == 0, 1, 4)
    g_target = _measure(
        g_inst,
        baseline[g_client, g_slot],
        step[g_client, g_slot],
        p_rank[g_owner] + g_ahead,
    )
    g_date = np.where(
        g_rank == 0,
        p_start[g_owner] + REASSESSMENT_DAYS,
        e0[g_client] + 7 * planned_weeks[g_client] + 14,
    )
    n_g = len(g_owner)
    out["goals"] = ar.table(
        "goals",
        {
            "goal_id": next_ids(net, "goals", n_g),
            "poe_id": poe_id.take(pa.array(g_owner)),
            "term": ar.take(("short", "long"), g_rank),
            "description": ar.where(
                g_rank == 0,
                ar.take(vocab.SHORT_GOALS, _pick(rng, n_g, vocab.SHORT_GOALS)),
                ar.take(vocab.LONG_GOALS, _pick(rng, n_g, vocab.LONG_GOALS)),
            ),
            "instrument": ar.take(list(names), g_inst),
            "target_value": ar.nums(g_target),
            "target_date": ar.dates(g_date),
        },
    )

    reported = np.flatnonzero(a_kind != 0)
    n_rep = len(reported)
    out["progress_reports"] = ar.table(
        "progress_reports",
        {
            "report_id": next_ids(net, "progress_reports", n_rep),
            "client_id": client_id.take(pa.array(as_owner[reported])),
            "assessment_id": assessment_id.take(pa.array(reported)),
            "provider_id": ar.take(net.provider_ids, referrer[as_owner[reported]]),
            "sent_on": ar.dates(a_day[reported] + rng.integers(1, 8, n_rep)),
        },
    )

    # --- claims ---------------------------------------------------------------------------
    _claims(
        net,
        rng,
        out,
        client_id=client_id,
        policy=policy_ids.current,
        billed=billed,
        practice=practice,
        has2=has2,
        dx1=dx1,
        dx2=dx2,
        sessions={
            "client": s_client,
            "date": sdate,
            "staff": s_staff,
            "comp": comp,
            "k": k_codes,
            "svc_start": svc_start,
            "svc_code": svc_code,
            "svc_units": svc_units,
        },
    )
    return out


@dataclass(frozen=True)
class _Policies:
    """Ids and facts of each client's current policy (the one billed), and the old ones."""

    current: pa.Array
    billed: np.ndarray
    preauth: np.ndarray
    old_client: np.ndarray
    old_ids: pa.Array


def _policies(
    net: Network,
    rng: np.random.Generator,
    out: dict[str, pa.Table],
    client_id: pa.Array,
    e0: np.ndarray,
    kind: np.ndarray,
) -> _Policies:
    n = len(e0)
    types = [t for t, _ in PLAN_TYPE_SHARES]
    ptype = _choice(rng, n, PLAN_TYPE_SHARES)
    type_names = np.array(types)[ptype]
    billed = np.isin(type_names, vocab.BILLABLE_PLAN_TYPES)
    out_of_network = billed & (rng.random(n) < 0.10)
    oon_benefits = out_of_network | (rng.random(n) < 0.5)
    preauth = billed & (np.isin(type_names, ["workers_comp", "auto"]) | (rng.random(n) < 0.3))
    filing = rng.choice(np.array([0, 90, 120, 180, 365]), size=n, p=[0.4, 0.25, 0.1, 0.15, 0.1])
    unit_rule = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])

    old = rng.random(n) < 0.10
    old_client = np.flatnonzero(old)
    n_old = len(old_client)
    old_types = np.array(["commercial", "medicare", "medicaid"])[rng.integers(0, 3, n_old)]

    # Rows: each client's old policy (if any) first, then the current one.
    row_client = np.concatenate([old_client, np.arange(n)])
    row_old = np.concatenate([np.ones(n_old, bool), np.zeros(n, bool)])
    row_order = np.lexsort((~row_old, row_client))
    row_client, row_old = row_client[row_order], row_old[row_order]
    old_type = np.full(n, "commercial", dtype=object)
    old_type[old_client] = old_types
    row_type = np.where(row_old, old_type[row_client], type_names[row_client])
    flat_payers = [(t, p) for t in vocab.PAYERS for p in vocab.PAYERS[t]]
    payer_names = np.array([p for _, p in flat_payers])
    payer_types = np.array([t for t, _ in flat_payers])
    payer = np.empty(len(row_client), dtype=object)
    for t in np.unique(row_type):
        rows = row_type == t
        candidates = payer_names[payer_types == t]
        payer[rows] = candidates[rng.integers(0, len(candidates), rows.sum())]
    n_rows = len(row_client)
    ids = next_ids(net, "insurance_policies", n_rows)
    cur = ~row_old
    c = row_client
    out["insurance_policies"] = ar.table(
        "insurance_policies",
        {
            "policy_id": ids,
            "client_id": client_id.take(pa.array(c)),
            "payer_name": pa.array(payer.tolist(), type=pa.string()),
            "plan_type": pa.array(row_type.tolist(), type=pa.string()),
            "member_id": ar.join(
                ar.take(MEMBER_PREFIXES, rng.integers(0, len(MEMBER_PREFIXES), n_rows)),
                ar.digits("", rng.integers(0, 10**9, n_rows), 9),
            ),
            "network_status": ar.take(
                ("in_network", "out_of_network"), (cur & out_of_network[c]).astype(np.int64)
            ),
            "oon_benefits": ar.ints(cur & oon_benefits[c]),
            "requires_preauth": ar.ints(cur & preauth[c]),
            "timely_filing_days": ar.ints(filing[c], cur & (filing[c] > 0)),
            "unit_rule": ar.where(
                cur & (unit_rule[c] > 0),
                ar.take(("cms", "cms", "ama"), unit_rule[c]),
                ar.nulls(n_rows),
            ),
            "effective_from": ar.dates(
                np.where(
                    cur,
                    e0[c] - rng.integers(30, 900, n_rows),
                    e0[c] - rng.integers(400, 1500, n_rows),
                )
            ),
            "effective_to": ar.dates(e0[c] - rng.integers(20, 200, n_rows), row_old),
        },
    )
    current_rows = np.flatnonzero(cur)
    old_rows = np.flatnonzero(row_old)
    return _Policies(
        current=ids.take(pa.array(current_rows)),
        billed=billed,
        preauth=preauth,
        old_client=row_client[old_rows],
        old_ids=ids.take(pa.array(old_rows)),
    )


def _eligibility(
    net: Network,
    rng: np.random.Generator,
    out: dict[str, pa.Table],
    policies: _Policies,
    e0: np.ndarray,
) -> None:
    n = len(e0)
    n_old = len(policies.old_client)
    client = np.concatenate([np.arange(n), policies.old_client])
    day = np.concatenate(
        [e0 - rng.integers(1, 11, n), e0[policies.old_client] - rng.integers(11, 21, n_old)]
    )
    active = np.concatenate([np.ones(n, bool), np.zeros(n_old, bool)])
    policy = pa.concat_arrays([policies.current, policies.old_ids])
    order = np.lexsort((day, client))
    n_rows = len(order)
    out["eligibility_checks"] = ar.table(
        "eligibility_checks",
        {
            "check_id": next_ids(net, "eligibility_checks", n_rows),
            "policy_id": policy.take(pa.array(order)),
            "checked_on": ar.dates(day[order]),
            "status": ar.take(("inactive", "active"), active[order].astype(np.int64)),
            "reference_number": ar.where(
                active[order],
                ar.digits("EV", rng.integers(0, 10**10, n_rows), 10),
                ar.nulls(n_rows),
            ),
        },
    )


def _claims(
    net: Network,
    rng: np.random.Generator,
    out: dict[str, pa.Table],
    *,
    client_id: pa.Array,
    policy: pa.Array,
    billed: np.ndarray,
    practice: np.ndarray,
    has2: np.ndarray,
    dx1: pa.Array,
    dx2: pa.Array,
    sessions: dict[str, np.ndarray],
) -> None:
    """One claim per completed session of a billed client; a few voided and rebilled."""
    d = net.as_of_day
    comp = sessions["comp"]
    s_client = sessions["client"]
    sdate = sessions["date"]
    billed_comp = np.flatnonzero(billed[s_client[comp]])  # positions in comp
    n_b = len(billed_comp)
    sub = sdate[comp[billed_comp]] + rng.integers(1, 11, n_b)
    voided = (sdate[comp[billed_comp]] <= d - 120) & (rng.random(n_b) < 0.004)
    # The voided claim keeps the first submission; its replacement goes out 7..20 days later.
    rebill = np.where(voided, rng.integers(7, 21, n_b), 0)
    rec_pos = np.concatenate([billed_comp, billed_comp[voided]])
    rec_void = np.concatenate([np.zeros(n_b, bool), np.ones(int(voided.sum()), bool)])
    rec_sub = np.concatenate([sub + rebill, sub[voided]])
    order = np.lexsort((~rec_void, rec_pos))
    rec_pos, rec_void, rec_sub = rec_pos[order], rec_void[order], rec_sub[order]
    n_r = len(rec_pos)
    rec_session = comp[rec_pos]
    rec_client = s_client[rec_session]

    draft = rec_sub > d
    denied_path = rng.random(n_r) < 0.04
    denied_on = rec_sub + rng.integers(10, 26, n_r)
    appealed_on = denied_on + rng.integers(3, 16, n_r)
    paid_on = rec_sub + rng.integers(14, 31, n_r)
    status = np.select(
        [
            rec_void,
            draft,
            denied_path & (denied_on > d),
            denied_path & (appealed_on <= d),
            denied_path,
            paid_on <= d,
        ],
        ["void", "draft", "submitted", "appealed", "denied", "paid"],
        "submitted",
    )
    is_denial = ~rec_void & ~draft & denied_path & (denied_on <= d)

    # Lines mirror the session's services: same codes, units = minutes // 15.
    k = sessions["k"][rec_pos]
    l_owner, l_rank = ar.expand(k)
    svc = sessions["svc_start"][rec_pos[l_owner]] + l_rank
    code = sessions["svc_code"][svc]
    units = sessions["svc_units"][svc]
    charge = units * np.array(vocab.FEES)[code]
    total = np.bincount(l_owner, weights=charge, minlength=n_r)
    pointers = np.where(has2[rec_client[l_owner]] & (rng.random(len(l_owner)) < 0.5), 1, 0)

    claim_id = next_ids(net, "claims", n_r)
    out["claims"] = ar.table(
        "claims",
        {
            "claim_id": claim_id,
            "client_id": client_id.take(pa.array(rec_client)),
            "policy_id": policy.take(pa.array(rec_client)),
            "billing_npi": ar.take(net.practice_npis, practice[rec_client]),
            "rendering_staff_id": ar.take(net.staff_ids, sessions["staff"][rec_session]),
            "submitted_on": ar.dates(rec_sub, ~draft),
            "status": pa.array(status.tolist(), type=pa.string()),
            "denied_on": ar.dates(denied_on, is_denial),
            "appealed_on": ar.dates(appealed_on, status == "appealed"),
            "total_charge": ar.nums(total),
            "paid_amount": ar.nums(total * rng.uniform(0.55, 0.85, n_r), status == "paid"),
        },
    )
    cd_owner, cd_rank = ar.expand(1 + has2[rec_client])
    out["claim_diagnoses"] = ar.table(
        "claim_diagnoses",
        {
            "claim_id": claim_id.take(pa.array(cd_owner)),
            "pointer": ar.take(("A", "B"), cd_rank),
            "icd10_code": ar.where(
                cd_rank == 0,
                dx1.take(pa.array(rec_client[cd_owner])),
                dx2.take(pa.array(rec_client[cd_owner])),
            ),
        },
    )
    n_l = len(l_owner)
    out["claim_lines"] = ar.table(
        "claim_lines",
        {
            "line_id": next_ids(net, "claim_lines", n_l),
            "claim_id": claim_id.take(pa.array(l_owner)),
            "line_no": ar.ints(l_rank + 1),
            "service_date": ar.dates(sdate[rec_session[l_owner]]),
            "cpt_code": ar.take(vocab.CPT_CODES, code),
            "modifiers": ar.nulls(n_l),
            "units": ar.ints(units),
            "charge": ar.nums(charge),
            "diagnosis_pointers": ar.take(("A", "AB"), pointers),
        },
    )


def _baselines(rng: np.random.Generator, instrument: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each client's starting value and improvement step for each of its instruments."""
    baseline = np.zeros(instrument.shape)
    step = np.zeros(instrument.shape)
    for i, name in enumerate(vocab.INSTRUMENT_NAMES):
        spec = vocab.INSTRUMENTS[name]
        mask = instrument == i
        count = int(mask.sum())
        if spec.decimals == 0:
            baseline[mask] = rng.integers(int(spec.low), int(spec.high) + 1, count)
            step[mask] = rng.integers(int(spec.step_low), int(spec.step_high) + 1, count)
        else:
            baseline[mask] = np.round(rng.uniform(spec.low, spec.high, count), spec.decimals)
            step[mask] = np.round(rng.uniform(spec.step_low, spec.step_high, count), spec.decimals)
    return baseline, step


def _measure(
    instrument: np.ndarray, baseline: np.ndarray, step: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """The value at the k-th assessment: k steps better than baseline, within the scale."""
    value = np.zeros(len(instrument))
    for i, name in enumerate(vocab.INSTRUMENT_NAMES):
        spec = vocab.INSTRUMENTS[name]
        mask = instrument == i
        sign = -1.0 if spec.lower_is_better else 1.0
        raw = baseline[mask] + sign * step[mask] * k[mask]
        value[mask] = np.round(np.clip(raw, spec.floor, spec.ceiling), spec.decimals)
    return value


def _to_utc(local_seconds: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """UTC seconds of wall-clock seconds in each row's IANA zone (afternoon times: no DST gap)."""
    utc = np.empty_like(local_seconds)
    for zone in np.unique(zones):
        mask = zones == zone
        wall = pd.DatetimeIndex(local_seconds[mask].astype("datetime64[s]"))
        aware = wall.tz_localize(ZoneInfo(str(zone)), ambiguous="NaT", nonexistent="NaT")
        utc[mask] = aware.tz_convert("UTC").as_unit("s").asi8
    return utc


__all__ = ["ID_FORMAT", "build_chunk", "next_ids"]
