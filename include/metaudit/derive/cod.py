"""Code linkage (COD-001..COD-010): the facts behind every rule on claims and their codes.

Only live claims count: the as-of view has already left out void claims with
their lines and diagnoses, claim lines dated after D, and claims whose lines are
all after D. Four frames come out:

- ``cod_claim_line`` (claim_line): the CPT code set (COD-001), the diagnosis
  pointers (COD-002), the day's completed session (COD-006), duplicated lines
  (COD-007) and the day's session services (COD-010);
- ``cod_claim_diagnosis`` (claim_diagnosis, ``CLAIM_ID:POINTER``): the ICD-10-CM
  code's billability (COD-003) and its link to a referral or condition (COD-004);
- ``cod_client_date`` (client_date, ``CLIENT_ID:YYYY-MM-DD``): timed units billed
  against the units the day's minutes support (COD-005);
- ``cod_claim`` (claim): billing and rendering NPIs (COD-008) and timely filing
  (COD-009).

Every number and code list (code sets, pointer limit, unit rule, filing limit)
comes from the settings, resolved per practice and per payer (the payer of the
claim's policy); the suite compares columns, so it never holds a number.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from metaudit.contract import POINTER_LETTERS
from metaudit.derive.common import completed_sessions, days_between, norm_code, norm_icd
from metaudit.frames import Frame

if TYPE_CHECKING:
    from metaudit.settings import Settings
    from metaudit.view import AuditView

log = logging.getLogger(__name__)

# Blanks and commas separate pointers; every other character is one pointer (reading 12).
_POINTER_SEPARATORS = r"[\s,]+"
# Any character that cannot name a diagnosis row: a pointer no claim can have.
_NOT_A_POINTER_LETTER = "[^" + "".join(POINTER_LETTERS) + "]"


def derive(view: AuditView, settings: Settings) -> list[Frame]:
    """Build the COD frames of the as-of view, with settings resolved per practice and payer."""
    claims = _claims_with_policy(view)
    lines = _lines_with_claim(view, claims)
    completed = completed_sessions(view)
    day_services = _day_services(view, completed)
    frames = [
        Frame(
            "cod_claim_line",
            "claim_line",
            _claim_line_facts(view, settings, lines, completed, day_services),
        ),
        Frame("cod_claim_diagnosis", "claim_diagnosis", _claim_diagnosis_facts(view, lines)),
        Frame(
            "cod_client_date",
            "client_date",
            _client_date_facts(view, settings, lines, completed, day_services),
        ),
        Frame("cod_claim", "claim", _claim_facts(view, settings, claims, lines)),
    ]
    log.debug("COD frames: %s", {f.name: len(f.data) for f in frames})
    return frames


# --------------------------------------------------------------------------- context


def _claims_with_policy(view: AuditView) -> pd.DataFrame:
    """Live claims with their policy's payer, unit rule and filing limit (NA when no policy row)."""
    claims = view.tables["claims"].copy()
    policies = view.tables["insurance_policies"].set_index("policy_id")
    policy_ids = claims["policy_id"]
    claims["payer_name"] = policy_ids.map(policies["payer_name"]).astype("string")
    claims["policy_unit_rule"] = policy_ids.map(policies["unit_rule"]).astype("string")
    claims["policy_timely_filing_days"] = policy_ids.map(policies["timely_filing_days"]).astype(
        "Int64"
    )
    return claims


def _lines_with_claim(view: AuditView, claims: pd.DataFrame) -> pd.DataFrame:
    """Claim lines of live claims with the claim's payer and policy unit rule, and the normalised code."""
    lines = view.tables["claim_lines"].copy()
    by_claim = claims.set_index("claim_id")
    lines["payer_name"] = lines["claim_id"].map(by_claim["payer_name"]).astype("string")
    lines["policy_unit_rule"] = lines["claim_id"].map(by_claim["policy_unit_rule"]).astype("string")
    lines["cpt"] = norm_code(lines["cpt_code"]).astype("string")
    lines["units"] = lines["units"].astype("Int64")
    lines["line_no"] = lines["line_no"].astype("Int64")
    return lines


def _day_services(view: AuditView, completed: pd.DataFrame) -> pd.DataFrame:
    """Session services of completed sessions, keyed by client and session day.

    Columns client_id, service_date, cpt (normalised), minutes (unreadable
    minutes count as 0, reading 13). Sessions without a client id are left out:
    they belong to no client's day.
    """
    sessions = completed.loc[
        completed["client_id"].notna() & completed["session_date"].notna(),
        ["session_id", "client_id", "session_date"],
    ]
    services = view.tables["session_services"][["session_id", "cpt_code", "minutes"]]
    services = services[services["session_id"].notna()]
    day = services.merge(sessions, on="session_id", how="inner")
    return pd.DataFrame(
        {
            "client_id": day["client_id"].astype("string"),
            "service_date": day["session_date"],
            "cpt_code": day["cpt_code"].astype("string"),
            "cpt": norm_code(day["cpt_code"]).astype("string"),
            "minutes": day["minutes"].astype("Int64").fillna(0),
        }
    )


def _session_days(completed: pd.DataFrame) -> pd.DataFrame:
    """The (client_id, service_date) pairs on which the client has a completed session."""
    days = completed.loc[
        completed["client_id"].notna() & completed["session_date"].notna(),
        ["client_id", "session_date"],
    ].drop_duplicates()
    return days.rename(columns={"session_date": "service_date"}).assign(
        client_id=lambda d: d["client_id"].astype("string")
    )


def _flag(left: pd.DataFrame, right: pd.DataFrame, on: list[str]) -> pd.Series:
    """Whether each row of ``left`` has a row of ``right`` with the same values of ``on``.

    NA keys never match (pandas would pair NA with NA in a merge).
    """
    keys = right[on].dropna().drop_duplicates()
    marked = left[on].merge(keys.assign(_hit=True), on=on, how="left", validate="many_to_one")
    hit = marked["_hit"].fillna(False).astype(bool).to_numpy()
    complete = left[on].notna().all(axis=1).to_numpy()
    return pd.Series(hit & complete, index=left.index, dtype="boolean")


def _owner_columns(data: pd.DataFrame) -> pd.DataFrame:
    """practice_id and client_id per reading 8.

    The typed source already holds client_id NA when the client row is missing,
    and practice_id that of the client, so both are null together then.
    """
    return pd.DataFrame(
        {
            "practice_id": data["practice_id"].astype("string"),
            "client_id": data["client_id"].astype("string"),
        },
        index=data.index,
    )


def _setting_int(settings: Settings, df: pd.DataFrame, name: str, payer: pd.Series) -> pd.Series:
    """A numeric setting resolved per row (practice, payer) as Int64."""
    return pd.Series(settings.column(df, name, payer=payer), index=df.index).astype("Int64")


# --------------------------------------------------------------------------- claim lines


def _claim_line_facts(
    view: AuditView,
    settings: Settings,
    lines: pd.DataFrame,
    completed: pd.DataFrame,
    day_services: pd.DataFrame,
) -> pd.DataFrame:
    """One row per live claim line: the facts of COD-001, -002, -006, -007 and -010."""
    owner = _owner_columns(lines)
    payer = lines["payer_name"]
    data = pd.DataFrame(
        {
            "entity_id": lines["line_id"].astype("string"),
            "practice_id": owner["practice_id"],
            "client_id": owner["client_id"],
            "claim_id": lines["claim_id"].astype("string"),
            "service_date": lines["service_date"],
            "cpt_code": lines["cpt_code"].astype("string"),
        },
        index=lines.index,
    )
    # COD-001: a requirement, so an unknown code is outside the set.
    in_set = pd.Series(
        settings.isin(lines, "cpt_code", "medical_exercise_cpt_codes", payer=payer),
        index=lines.index,
    )
    data["cpt_in_code_set"] = in_set.astype("boolean").fillna(False) & lines["cpt"].notna()

    data = data.join(_pointer_facts(view, settings, lines))

    # COD-006: the client's completed session on the service date (unknown client: none).
    session_day = _flag(lines, _session_days(completed), ["client_id", "service_date"])
    data["completed_session_on_date"] = session_day

    data["duplicate_of_line"] = _duplicate_of_line(lines)

    # COD-010: only where a session exists on the day (else COD-006 speaks); an
    # unknown billed code matches no service.
    billed_delivered = _flag(lines, day_services, ["client_id", "service_date", "cpt"])
    data["cpt_in_day_services"] = billed_delivered.where(session_day, pd.NA).astype("boolean")
    return data.reset_index(drop=True)


def _pointer_facts(view: AuditView, settings: Settings, lines: pd.DataFrame) -> pd.DataFrame:
    """COD-002 facts of each line, per reading 12.

    ``diagnosis_pointers``: the pointers with separators removed, NA when blank;
    ``pointer_count`` against ``max_diagnosis_pointers``; ``pointers_have_diagnoses``
    False when a character names no diagnosis of the claim (NA when blank).
    """
    # Lines repeat a handful of pointer strings ("A", "AB" ...): parse each distinct
    # string once and spread the results over the lines by their factor codes.
    codes, distinct = pd.factorize(lines["diagnosis_pointers"].astype("string"))
    parsed = pd.Series(distinct, dtype="string").str.replace(_POINTER_SEPARATORS, "", regex=True)
    parsed = parsed.mask(parsed.str.len() == 0)
    upper = parsed.str.upper()

    def per_line(values: pd.Series) -> pd.Series:
        """A per-distinct-string result as one value per line (NA for blank pointers)."""
        return pd.Series(values.array.take(codes, allow_fill=True), index=lines.index)

    cleaned = per_line(parsed)
    count = per_line(parsed.str.len().astype("Int64"))

    # A claim's diagnoses: its rows with a non-blank code and a readable pointer letter.
    diagnoses = view.tables["claim_diagnoses"]
    diagnoses = diagnoses[diagnoses["icd10_code"].notna() & diagnoses["pointer"].notna()]
    pointed_at = diagnoses["pointer"].astype("string").str.upper()

    # Checked letter by letter (12 letters) so the work stays vectorised.
    not_a_letter = upper.str.contains(_NOT_A_POINTER_LETTER, regex=True).astype("boolean")
    dangling = per_line(not_a_letter).fillna(False).to_numpy(dtype=bool)
    for letter in POINTER_LETTERS:
        uses = per_line(upper.str.contains(letter, regex=False).astype("boolean"))
        claims_with_letter = diagnoses.loc[pointed_at == letter, "claim_id"].dropna().unique()
        dangling |= uses.fillna(False).to_numpy(dtype=bool) & ~lines["claim_id"].isin(
            claims_with_letter
        ).to_numpy(dtype=bool)

    return pd.DataFrame(
        {
            "diagnosis_pointers": cleaned,
            "pointer_count": count,
            "max_diagnosis_pointers": _setting_int(
                settings, lines, "max_diagnosis_pointers", lines["payer_name"]
            ),
            "pointers_have_diagnoses": pd.Series(
                ~dangling, index=lines.index, dtype="boolean"
            ).where(cleaned.notna(), pd.NA),
        },
        index=lines.index,
    )


def _duplicate_of_line(lines: pd.DataFrame) -> pd.Series:
    """COD-007: for every line but the first of a (client, service date, CPT code) group, the
    first line's id; NA otherwise.

    Order per reading 16: claim_id as text in code-point order, line_no as a number
    (unreadable last), then line_id. A line whose client or code is unknown proves no
    duplicate (an assertion) and stays NA.
    """
    known = lines["client_id"].notna() & lines["service_date"].notna() & lines["cpt"].notna()
    ordered = lines.loc[
        known, ["line_id", "claim_id", "line_no", "client_id", "service_date", "cpt"]
    ]
    ordered = ordered.assign(
        claim_key=ordered["claim_id"].astype(object),
        line_key=ordered["line_id"].astype(object),
    ).sort_values(["claim_key", "line_no", "line_key"], na_position="last", kind="stable")
    groups = ordered.groupby(["client_id", "service_date", "cpt"], sort=False, observed=True)
    first_id = groups["line_id"].transform("first")
    later = groups.cumcount() > 0
    result = pd.Series(pd.NA, index=lines.index, dtype="string")
    result.loc[ordered.index[later.to_numpy()]] = first_id[later].astype("string").to_numpy()
    return result


# --------------------------------------------------------------------------- diagnoses


def _claim_diagnosis_facts(view: AuditView, lines: pd.DataFrame) -> pd.DataFrame:
    """One row per diagnosis of a live claim (``CLAIM_ID:POINTER``): COD-003 and COD-004 facts.

    A row with a blank code is not a diagnosis (reading 12) and a row whose pointer is
    unreadable cannot be named; both get DQ-003 and are left out here. When a claim
    holds the same pointer twice, the first row is the diagnosis (as for duplicated keys).
    """
    diagnoses = view.tables["claim_diagnoses"]
    diagnoses = diagnoses[
        diagnoses["claim_id"].notna()
        & diagnoses["icd10_code"].notna()
        & diagnoses["pointer"].notna()
    ]
    diagnoses = diagnoses.drop_duplicates(subset=["claim_id", "pointer"], keep="first")
    owner = _owner_columns(diagnoses)
    earliest = lines.groupby("claim_id", observed=True)["service_date"].min()

    # COD-004: the client's referral diagnoses (referrals in the view) and condition codes.
    referral_codes = view.tables["referral_diagnoses"][["client_id", "icd10_code"]]
    condition_codes = view.tables["conditions"][["client_id", "icd10_code"]]
    known_codes = pd.concat([referral_codes, condition_codes], ignore_index=True)
    known_codes = pd.DataFrame(
        {
            "client_id": known_codes["client_id"].astype("string"),
            "icd": norm_icd(known_codes["icd10_code"]).astype("string"),
        }
    )
    probe = pd.DataFrame(
        {
            "client_id": diagnoses["client_id"].astype("string"),
            "icd": norm_icd(diagnoses["icd10_code"]).astype("string"),
        },
        index=diagnoses.index,
    )
    on_record = _flag(probe, known_codes, ["client_id", "icd"])

    data = pd.DataFrame(
        {
            "entity_id": (
                diagnoses["claim_id"].astype("string") + ":" + diagnoses["pointer"].astype("string")
            ),
            "practice_id": owner["practice_id"],
            "client_id": owner["client_id"],
            "claim_id": diagnoses["claim_id"].astype("string"),
            "icd10_code": diagnoses["icd10_code"].astype("string"),
            "earliest_service_date": diagnoses["claim_id"].map(earliest),
            "on_referral_or_condition": on_record,
        },
        index=diagnoses.index,
    )
    return data.reset_index(drop=True)


# --------------------------------------------------------------------------- client days


def _client_date_facts(
    view: AuditView,
    settings: Settings,
    lines: pd.DataFrame,
    completed: pd.DataFrame,
    day_services: pd.DataFrame,
) -> pd.DataFrame:
    """One row per client and service date with timed lines and a completed session: COD-005.

    ``billed_units`` sums the units of timed-code lines (unreadable units count 0);
    ``supported_units`` is what the day's timed minutes support under the unit rule
    of the first timed line's policy (by claim_id, line_no, line_id), else the
    setting for that practice and payer (reading 13).
    """
    timed = (
        pd.Series(
            settings.isin(lines, "cpt_code", "timed_cpt_codes", payer=lines["payer_name"]),
            index=lines.index,
        )
        .astype("boolean")
        .fillna(False)
        & lines["cpt"].notna()
    )
    timed_lines = lines[timed.to_numpy() & lines["client_id"].notna().to_numpy()]
    session_day = _flag(timed_lines, _session_days(completed), ["client_id", "service_date"])
    timed_lines = timed_lines[session_day.to_numpy()]

    keys = ["client_id", "service_date"]
    ordered = timed_lines.assign(
        claim_key=timed_lines["claim_id"].astype(object),
        line_key=timed_lines["line_id"].astype(object),
    ).sort_values(["claim_key", "line_no", "line_key"], na_position="last", kind="stable")
    # The first line of the day decides payer and policy unit rule, NA or not.
    days = ordered.drop_duplicates(subset=keys, keep="first")[
        [*keys, "practice_id", "payer_name", "policy_unit_rule"]
    ].reset_index(drop=True)
    billed = ordered.groupby(keys, observed=True)["units"].sum()
    days["billed_units"] = pd.array(
        billed.reindex(pd.MultiIndex.from_frame(days[keys])).fillna(0).to_numpy(),
        dtype="Int64",
    )

    setting_rule = pd.Series(
        settings.column(days, "unit_rule", payer=days["payer_name"]), index=days.index
    ).astype("string")
    days["unit_rule"] = days["policy_unit_rule"].fillna(setting_rule).str.strip().str.lower()

    days["supported_units"] = _supported_units(settings, days, day_services)

    owner = _owner_columns(days)
    data = pd.DataFrame(
        {
            "entity_id": days["client_id"].astype("string")
            + ":"
            + days["service_date"].dt.strftime("%Y-%m-%d"),
            "practice_id": owner["practice_id"],
            "client_id": owner["client_id"],
            "service_date": days["service_date"],
            "unit_rule": days["unit_rule"],
            "billed_units": days["billed_units"],
            "supported_units": days["supported_units"],
        }
    )
    return data.reset_index(drop=True)


def _supported_units(
    settings: Settings, days: pd.DataFrame, day_services: pd.DataFrame
) -> pd.Series:
    """Units the day's timed minutes support, per row of ``days`` (COD-005).

    ``cms``: (total timed minutes + 7) // 15; ``ama``: the sum over codes of
    (that code's minutes over all the day's completed sessions + 7) // 15.
    The timed code set is that of the payer whose unit rule applies.
    """
    keys = ["client_id", "service_date"]
    services = day_services.merge(
        days[[*keys, "practice_id", "payer_name"]], on=keys, how="inner", validate="many_to_one"
    )
    timed = (
        pd.Series(
            settings.isin(services, "cpt_code", "timed_cpt_codes", payer=services["payer_name"]),
            index=services.index,
        )
        .astype("boolean")
        .fillna(False)
        & services["cpt"].notna()
    )
    services = services[timed.to_numpy()]

    per_code = services.groupby([*keys, "cpt"], observed=True)["minutes"].sum().reset_index()
    per_code["code_units"] = (per_code["minutes"] + 7) // 15
    per_day = per_code.groupby(keys, observed=True).agg(
        minutes=("minutes", "sum"), ama=("code_units", "sum")
    )
    per_day["cms"] = (per_day["minutes"] + 7) // 15

    indexed = days.set_index(keys)
    ama = per_day["ama"].reindex(indexed.index).fillna(0).astype("Int64")
    cms = per_day["cms"].reindex(indexed.index).fillna(0).astype("Int64")
    # Only the two listed rules exist; anything else cannot be read and falls to cms.
    use_ama = (indexed["unit_rule"] == "ama").fillna(False).to_numpy()
    supported = cms.where(~use_ama, ama)
    return pd.Series(supported.to_numpy(), index=days.index, dtype="Int64")


# --------------------------------------------------------------------------- claims


def _claim_facts(
    view: AuditView, settings: Settings, claims: pd.DataFrame, lines: pd.DataFrame
) -> pd.DataFrame:
    """One row per live claim: NPIs (COD-008) and timely filing (COD-009).

    A missing NPI, or a missing rendering staff row, is the empty string so the
    NPI expectation fails it (the requirement fails on the unknown). Filing is an
    assertion: days_to_submission is NA unless submitted_on and the earliest
    service date are both known.
    """
    owner = _owner_columns(claims)
    staff = view.tables["staff"].set_index("staff_id")["npi"]
    rendering_npi = claims["rendering_staff_id"].map(staff).astype("string")
    earliest = claims["claim_id"].map(
        lines.groupby("claim_id", observed=True)["service_date"].min()
    )
    filing_limit = claims["policy_timely_filing_days"].fillna(
        _setting_int(settings, claims, "timely_filing_days", claims["payer_name"])
    )
    data = pd.DataFrame(
        {
            "entity_id": claims["claim_id"].astype("string"),
            "practice_id": owner["practice_id"],
            "client_id": owner["client_id"],
            "billing_npi": claims["billing_npi"].astype("string").fillna(""),
            "rendering_staff_id": claims["rendering_staff_id"].astype("string"),
            "rendering_npi": rendering_npi.fillna(""),
            "earliest_service_date": earliest,
            "submitted_on": claims["submitted_on"],
            "days_to_submission": days_between(earliest, claims["submitted_on"]),
            "timely_filing_days": filing_limit.astype("Int64"),
        },
        index=claims.index,
    )
    return data.reset_index(drop=True)
