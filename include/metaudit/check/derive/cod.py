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

A network holds millions of claim lines and session services, and hashing text
is the dominant cost in pandas. So ids and codes are turned into integer codes
once (shared across the tables that are matched), matching is done on packed
integer keys, and settings are resolved once per distinct (practice, payer) or
(practice, payer, code) and spread over the rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from metaudit.check.derive.common import completed_sessions, norm_code, norm_icd
from metaudit.check.frames import Frame
from metaudit.source.quality import string_codes
from metaudit.spec.contract import POINTER_LETTERS

if TYPE_CHECKING:
    from collections.abc import Callable

    from metaudit.check.view import AuditView
    from metaudit.spec.settings import Settings

log = logging.getLogger(__name__)

# Blanks and commas separate pointers; every other character is one pointer (reading 12).
_POINTER_SEPARATORS = r"[\s,]+"
# Any character that cannot name a diagnosis row: a pointer no claim can have.
_NOT_A_POINTER_LETTER = "[^" + "".join(POINTER_LETTERS) + "]"

# Day numbers (days since 1970-01-01) of every date pandas holds (1677..2262) fit
# in 18 bits after this offset, so (client, day) packs into one int64.
_DAY_OFFSET = 1 << 17
_DAY_SPAN = 1 << 18


def derive(view: AuditView, settings: Settings) -> list[Frame]:
    """Build the COD frames of the as-of view, with settings resolved per practice and payer."""
    ctx = _Context.build(view, settings)
    frames = [
        Frame("cod_claim_line", "claim_line", _claim_line_facts(ctx)),
        Frame("cod_claim_diagnosis", "claim_diagnosis", _claim_diagnosis_facts(ctx)),
        Frame("cod_client_date", "client_date", _client_date_facts(ctx)),
        Frame("cod_claim", "claim", _claim_facts(ctx)),
    ]
    # The filing deadlines of draft claims (metaudit.check.deadlines) reuse COD-009's inputs.
    view.cache["cod_claim_facts"] = frames[-1].data
    log.debug("COD frames: %s", {f.name: len(f.data) for f in frames})
    return frames


# --------------------------------------------------------------------------- integer keys


def _joint_codes(*columns: pd.Series) -> tuple[list[np.ndarray], int]:
    """Integer codes shared by several id columns: equal values get equal codes, NA gets -1.

    Returns the codes of each column and the number of distinct values.
    """
    return string_codes(*[c.astype("string") for c in columns])


def _positions(row_codes: np.ndarray, key_codes: np.ndarray, n_codes: int) -> np.ndarray:
    """For each row code, the position of the key row with that code (-1: none).

    Keys are unique in the view (duplicated keys were collapsed to the first row).
    """
    where = np.full(n_codes + 1, -1, dtype=np.int64)
    known = key_codes >= 0
    where[key_codes[known]] = np.flatnonzero(known)
    return where[row_codes]  # code -1 reads the last slot, which stays -1


def _take(values: pd.Series, positions: np.ndarray) -> pd.Series:
    """values at positions (NA where the position is -1), as a new default-indexed Series."""
    return pd.Series(values.array.take(positions, allow_fill=True))


def _code_ids(
    columns: list[pd.Series], normalise: Callable[[pd.Series], pd.Series]
) -> tuple[list[np.ndarray], pd.Index]:
    """The normalised code of each row as an id into a shared vocabulary (-1: unknown).

    Codes repeat a lot, so each column is factorised once and only its distinct
    values are normalised (trimmed, upper case, and for ICD-10-CM without dots).
    """
    factored = [pd.factorize(c.astype("string")) for c in columns]
    normalised = [normalise(pd.Series(uniques, dtype="string")) for _, uniques in factored]
    vocabulary = pd.Index(pd.concat(normalised, ignore_index=True).dropna().unique())
    ids = []
    for (codes, _), normal in zip(factored, normalised, strict=True):
        local = np.where(normal.isna().to_numpy(), -1, vocabulary.get_indexer(normal))
        ids.append(np.append(local, -1).astype(np.int64)[codes])
    return ids, vocabulary


def _day_numbers(dates: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01 and whether the date is known."""
    days = dates.to_numpy(dtype="datetime64[us]").astype("datetime64[D]")
    known = ~np.isnat(days)
    return days.astype(np.int64), known


def _client_day(client: np.ndarray, day: np.ndarray, day_known: np.ndarray) -> np.ndarray:
    """(client, day) packed into one int64; -1 when the client or the day is unknown."""
    known = (client >= 0) & day_known
    return np.where(known, client * _DAY_SPAN + (day + _DAY_OFFSET), -1)


def _pair_keys(pairs: list[tuple[np.ndarray, np.ndarray]], width: int) -> list[np.ndarray]:
    """Each (key, code) pair as one int64, -1 when either is -1; consistent across pairs.

    Keys are renumbered densely first so that key * width cannot overflow.
    """
    firsts = np.concatenate([k for k, _ in pairs])
    dense, _ = pd.factorize(firsts)
    bounds = np.cumsum([len(k) for k, _ in pairs])[:-1]
    out = []
    for d, (key, code) in zip(np.split(dense.astype(np.int64), bounds), pairs, strict=True):
        known = (key >= 0) & (code >= 0)
        out.append(np.where(known, d * max(width, 1) + code, -1))
    return out


def _member(keys: np.ndarray, universe: np.ndarray) -> np.ndarray:
    """Whether each key (>= 0) is among the known keys of ``universe``."""
    # pandas hashes int64 far faster than numpy's unique/isin on millions of keys.
    present = pd.unique(universe[universe >= 0])
    return (keys >= 0) & pd.Series(keys).isin(present).to_numpy(dtype=bool)


def _line_order(lines: pd.DataFrame) -> np.ndarray:
    """Each line's rank in reading 16's order: claim_id as text in code-point order,
    line_no as a number, then line_id; unknown values last.

    Arrow sorts UTF-8 by bytes, which is code-point order, in native code.
    """
    table = pa.Table.from_pandas(
        pd.DataFrame(
            {
                "claim_id": lines["claim_id"].astype("string"),
                "line_no": lines["line_no"].astype("Int64"),
                "line_id": lines["line_id"].astype("string"),
            }
        ),
        preserve_index=False,
    )
    order = pc.sort_indices(
        table,
        sort_keys=[
            ("claim_id", "ascending", "at_end"),
            ("line_no", "ascending", "at_end"),
            ("line_id", "ascending", "at_end"),
        ],
    ).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


# --------------------------------------------------------------------------- context


@dataclass
class _Payers:
    """Distinct (practice, payer) pairs of the claims, to resolve settings once per pair."""

    frame: pd.DataFrame  # practice_id, payer_name
    none: int  # the pair of a row with neither practice nor payer

    def value(self, settings: Settings, name: str, pair: np.ndarray) -> pd.Series:
        """Setting ``name`` for each row whose pair index is ``pair``."""
        resolved = settings.column(self.frame, name, payer=self.frame["payer_name"])
        return pd.Series(resolved.array.take(pair))

    def in_list(
        self,
        settings: Settings,
        name: str,
        pair: np.ndarray,
        code: np.ndarray,
        vocabulary: pd.Index,
    ) -> np.ndarray:
        """Whether each row's code (an id into ``vocabulary``) is in code list ``name``
        of the row's practice and payer; an unknown code (-1) is in no list."""
        known = code >= 0
        width = max(len(vocabulary), 1)
        combined = pair[known] * width + code[known]
        inverse, distinct = pd.factorize(combined)
        probe = self.frame.iloc[distinct // width].reset_index(drop=True)
        probe["code"] = pd.Series(vocabulary[distinct % width], dtype="string")
        hit = settings.isin(probe, "code", name, payer=probe["payer_name"]).to_numpy(dtype=bool)
        result = np.zeros(len(code), dtype=bool)
        result[known] = hit[inverse]
        return result


@dataclass
class _Context:
    """The view's claims, lines, diagnoses and completed sessions, keyed by integers."""

    view: AuditView
    settings: Settings
    claims: pd.DataFrame
    lines: pd.DataFrame
    diagnoses: pd.DataFrame
    payers: _Payers
    claim_pair: np.ndarray  # per claim: index into payers.frame
    claim_policy_unit_rule: pd.Series  # per claim: the policy's unit rule, NA when none
    claim_policy_filing_days: pd.Series  # per claim: the policy's timely_filing_days
    line_claim: np.ndarray  # per line: position of its claim (-1: no such claim)
    line_pair: np.ndarray
    line_client: np.ndarray  # client codes (shared with sessions, referrals, conditions)
    line_day: np.ndarray
    line_day_known: np.ndarray
    line_cpt: np.ndarray  # ids into cpt_vocabulary
    line_rank: np.ndarray  # reading 16's order
    dx_claim: np.ndarray  # per diagnosis row: position of its claim
    claim_id_count: int  # distinct claim ids over claims, lines and diagnoses
    line_claim_id: np.ndarray  # per line: code of its claim_id (-1: NA), shared with
    dx_claim_id: np.ndarray  # ... the diagnoses, so a line finds its claim's diagnoses
    dx_client: np.ndarray
    cpt_vocabulary: pd.Index
    session_day_keys: np.ndarray  # client-day keys of completed sessions
    service_day_key: np.ndarray  # per service of a completed session
    service_cpt: np.ndarray
    service_minutes: np.ndarray
    referral_client: np.ndarray
    condition_client: np.ndarray

    @classmethod
    def build(cls, view: AuditView, settings: Settings) -> _Context:
        """Turn the ids and codes the COD rules match on into shared integer codes."""
        claims = view.tables["claims"]
        lines = view.tables["claim_lines"]
        diagnoses = view.tables["claim_diagnoses"]
        policies = view.tables["insurance_policies"]
        completed = completed_sessions(view)
        services = view.tables["session_services"]
        referral_codes = view.tables["referral_diagnoses"]
        conditions = view.tables["conditions"]

        (claim_codes, line_codes, dx_codes), n_claims = _joint_codes(
            claims["claim_id"], lines["claim_id"], diagnoses["claim_id"]
        )
        line_claim = _positions(line_codes, claim_codes, n_claims)
        dx_claim = _positions(dx_codes, claim_codes, n_claims)

        (policy_codes, claim_policy_codes), n_policies = _joint_codes(
            policies["policy_id"], claims["policy_id"]
        )
        claim_policy = _positions(claim_policy_codes, policy_codes, n_policies)

        # Settings resolve by the client's practice and the payer of the claim's policy.
        practice_codes, practices = pd.factorize(claims["practice_id"].astype("string"))
        payer_codes, payer_names = pd.factorize(policies["payer_name"].astype("string"))
        claim_payer = np.append(payer_codes, -1)[claim_policy]
        width = len(payer_names) + 1
        combined = (practice_codes.astype(np.int64) + 1) * width + (claim_payer + 1)
        inverse, distinct = pd.factorize(np.append(combined, 0))
        payers = _Payers(
            frame=pd.DataFrame(
                {
                    "practice_id": pd.Series(
                        pd.array(practices, dtype="string").take(
                            distinct // width - 1, allow_fill=True
                        )
                    ),
                    "payer_name": pd.Series(
                        pd.array(payer_names, dtype="string").take(
                            distinct % width - 1, allow_fill=True
                        )
                    ),
                }
            ),
            none=int(inverse[-1]),
        )
        claim_pair = inverse[:-1].astype(np.int64)

        (claim_client, session_client, referral_client, condition_client), _ = _joint_codes(
            claims["client_id"],
            completed["client_id"],
            referral_codes["client_id"],
            conditions["client_id"],
        )
        line_client = np.append(claim_client, -1)[line_claim]
        dx_client = np.append(claim_client, -1)[dx_claim]

        (session_codes, service_codes), n_sessions = _joint_codes(
            completed["session_id"], services["session_id"]
        )
        service_session = _positions(service_codes, session_codes, n_sessions)
        of_completed = service_session >= 0
        service_session = service_session[of_completed]
        services = services[of_completed]

        session_day, session_day_known = _day_numbers(completed["session_date"])
        session_keys = _client_day(session_client, session_day, session_day_known)
        line_day, line_day_known = _day_numbers(lines["service_date"])

        (line_cpt, service_cpt), cpt_vocabulary = _code_ids(
            [lines["cpt_code"], services["cpt_code"]], norm_code
        )
        # Unreadable minutes count as 0 (reading 13).
        minutes = services["minutes"].astype("Int64").fillna(0).to_numpy(dtype=np.int64)

        return cls(
            view=view,
            settings=settings,
            claims=claims,
            lines=lines,
            diagnoses=diagnoses,
            payers=payers,
            claim_pair=claim_pair,
            claim_policy_unit_rule=_take(policies["unit_rule"].astype("string"), claim_policy),
            claim_policy_filing_days=_take(
                policies["timely_filing_days"].astype("Int64"), claim_policy
            ),
            line_claim=line_claim,
            line_pair=np.append(claim_pair, payers.none)[line_claim],
            line_client=line_client,
            line_day=line_day,
            line_day_known=line_day_known,
            line_cpt=line_cpt,
            line_rank=_line_order(lines),
            dx_claim=dx_claim,
            claim_id_count=n_claims,
            line_claim_id=line_codes,
            dx_claim_id=dx_codes,
            dx_client=dx_client,
            cpt_vocabulary=cpt_vocabulary,
            session_day_keys=pd.unique(session_keys[session_keys >= 0]),
            service_day_key=session_keys[service_session],
            service_cpt=service_cpt,
            service_minutes=minutes,
            referral_client=referral_client,
            condition_client=condition_client,
        )

    @property
    def line_day_key(self) -> np.ndarray:
        return _client_day(self.line_client, self.line_day, self.line_day_known)


def _ids(frame: pd.DataFrame, entity_ids: pd.Series) -> pd.DataFrame:
    """entity_id, practice_id and client_id (reading 8: the typed source nulls both
    when the client row is missing)."""
    return pd.DataFrame(
        {
            "entity_id": entity_ids.astype("string").array,
            "practice_id": frame["practice_id"].astype("string").array,
            "client_id": frame["client_id"].astype("string").array,
        }
    )


# --------------------------------------------------------------------------- claim lines


def _claim_line_facts(ctx: _Context) -> pd.DataFrame:
    """One row per live claim line: the facts of COD-001, -002, -006, -007 and -010."""
    lines = ctx.lines
    data = _ids(lines, lines["line_id"])
    data["claim_id"] = lines["claim_id"].astype("string").array
    data["service_date"] = lines["service_date"].to_numpy()
    data["cpt_code"] = lines["cpt_code"].astype("string").array

    # COD-001: a requirement, so an unknown code is outside the set.
    data["cpt_in_code_set"] = pd.array(
        ctx.payers.in_list(
            ctx.settings,
            "medical_exercise_cpt_codes",
            ctx.line_pair,
            ctx.line_cpt,
            ctx.cpt_vocabulary,
        ),
        dtype="boolean",
    )

    pointers = _pointer_facts(ctx)
    for column in pointers.columns:
        data[column] = pointers[column].array

    # COD-006: the client's completed session on the service date (unknown client: none).
    day_key = ctx.line_day_key
    session_day = _member(day_key, ctx.session_day_keys)
    data["completed_session_on_date"] = pd.array(session_day, dtype="boolean")

    data["duplicate_of_line"] = _duplicate_of_line(ctx).array

    # COD-010: only where a session exists on the day (else COD-006 speaks); an
    # unknown billed code matches no service.
    width = len(ctx.cpt_vocabulary)
    line_key, service_key = _pair_keys(
        [(day_key, ctx.line_cpt), (ctx.service_day_key, ctx.service_cpt)], width
    )
    delivered = pd.array(_member(line_key, service_key), dtype="boolean")
    delivered[~session_day] = pd.NA
    data["cpt_in_day_services"] = delivered
    return data


def _pointer_facts(ctx: _Context) -> pd.DataFrame:
    """COD-002 facts of each line, per reading 12.

    ``diagnosis_pointers``: the pointers with separators removed, NA when blank;
    ``pointer_count`` against ``max_diagnosis_pointers``; ``pointers_have_diagnoses``
    False when a character names no diagnosis of the claim (NA when blank).
    """
    lines = ctx.lines
    # Lines repeat a handful of pointer strings ("A", "AB" ...): parse each distinct
    # string once and spread the results over the lines by their codes.
    codes, distinct = pd.factorize(lines["diagnosis_pointers"].astype("string"))
    parsed = pd.Series(distinct, dtype="string").str.replace(_POINTER_SEPARATORS, "", regex=True)
    parsed = parsed.mask(parsed.str.len() == 0)
    upper = parsed.str.upper()

    # Which letters each distinct string uses, and which characters name nothing.
    uses = np.zeros((len(upper) + 1, len(POINTER_LETTERS)), dtype=bool)
    for j, letter in enumerate(POINTER_LETTERS):
        uses[:-1, j] = upper.str.contains(letter, regex=False).fillna(False).to_numpy(dtype=bool)
    stray = np.append(
        upper.str.contains(_NOT_A_POINTER_LETTER, regex=True).fillna(False).to_numpy(dtype=bool),
        False,
    )

    # A claim's diagnoses: its rows with a non-blank code and a readable pointer letter.
    diagnoses = ctx.diagnoses
    is_diagnosis = (diagnoses["icd10_code"].notna() & diagnoses["pointer"].notna()).to_numpy()
    letter_of = pd.Index(POINTER_LETTERS).get_indexer(
        diagnoses["pointer"].astype("string").str.upper()
    )
    # By claim id, not claim row: a line and diagnoses naming the same missing claim
    # (DQ-002) still belong together.
    keep = is_diagnosis & (letter_of >= 0) & (ctx.dx_claim_id >= 0)
    has = np.zeros((ctx.claim_id_count + 1, len(POINTER_LETTERS)), dtype=bool)
    has[ctx.dx_claim_id[keep], letter_of[keep]] = True  # the last row: a line without claim_id

    row = np.where(codes >= 0, codes, len(upper))
    dangling = stray[row] | (uses[row] & ~has[ctx.line_claim_id]).any(axis=1)
    blank = pd.Series(parsed.array.take(codes, allow_fill=True)).isna().to_numpy()

    have_diagnoses = pd.array(~dangling, dtype="boolean")
    have_diagnoses[blank] = pd.NA
    return pd.DataFrame(
        {
            "diagnosis_pointers": parsed.array.take(codes, allow_fill=True),
            "pointer_count": parsed.str.len().astype("Int64").array.take(codes, allow_fill=True),
            "max_diagnosis_pointers": ctx.payers.value(
                ctx.settings, "max_diagnosis_pointers", ctx.line_pair
            ).astype("Int64"),
            "pointers_have_diagnoses": have_diagnoses,
        }
    )


def _duplicate_of_line(ctx: _Context) -> pd.Series:
    """COD-007: for every line but the first of a (client, service date, CPT code) group
    of live claims, the first line's id; NA otherwise.

    A line whose client or code is unknown proves no duplicate (an assertion).
    """
    (group,) = _pair_keys([(ctx.line_day_key, ctx.line_cpt)], len(ctx.cpt_vocabulary))
    candidates = np.flatnonzero(group >= 0)
    order = candidates[np.lexsort((ctx.line_rank[candidates], group[candidates]))]
    keys = group[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    first = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
    result = pd.Series(pd.NA, index=range(len(ctx.lines)), dtype="string")
    later = order[~starts]
    result.iloc[later] = ctx.lines["line_id"].astype("string").array.take(first[~starts])
    return result


# --------------------------------------------------------------------------- diagnoses


def _claim_diagnosis_facts(ctx: _Context) -> pd.DataFrame:
    """One row per diagnosis of a live claim (``CLAIM_ID:POINTER``): COD-003 and COD-004 facts.

    A row with a blank code is not a diagnosis (reading 12) and a row whose pointer is
    unreadable cannot be named; DQ-003 names both, and they are left out here. When a
    claim holds the same pointer twice, its first row is the diagnosis (as for keys).
    """
    diagnoses = ctx.diagnoses
    usable = (
        diagnoses["claim_id"].notna()
        & diagnoses["icd10_code"].notna()
        & diagnoses["pointer"].notna()
    ).to_numpy()
    # A blank-code row must not shadow a later row with a code: dedupe usable rows
    # only. CLAIM_ID:POINTER repeats exactly when claim id and pointer both repeat
    # (a pointer is one letter), so integer codes stand in for the text.
    letter = pd.Index(POINTER_LETTERS).get_indexer(diagnoses["pointer"].astype("string"))
    pair = np.where(usable & (letter >= 0), ctx.dx_claim_id * len(POINTER_LETTERS) + letter, -1)
    first = ~pd.Series(pair).duplicated(keep="first").to_numpy()
    rows = np.flatnonzero(usable & first)
    entity = (
        diagnoses["claim_id"].astype("string").iloc[rows]
        + ":"
        + diagnoses["pointer"].astype("string").iloc[rows]
    )

    # COD-004: the client's referral diagnoses (referrals in the view) and condition codes.
    referral_codes = ctx.view.tables["referral_diagnoses"]["icd10_code"]
    condition_codes = ctx.view.tables["conditions"]["icd10_code"]
    (dx_icd, referral_icd, condition_icd), vocabulary = _code_ids(
        [diagnoses["icd10_code"], referral_codes, condition_codes], norm_icd
    )
    width = len(vocabulary)
    dx_key, referral_key, condition_key = _pair_keys(
        [
            (ctx.dx_client, dx_icd),
            (ctx.referral_client, referral_icd),
            (ctx.condition_client, condition_icd),
        ],
        width,
    )
    on_record = _member(dx_key, np.concatenate([referral_key, condition_key]))

    earliest = _earliest_service_day(ctx)
    claim_earliest = np.append(earliest, np.datetime64("NaT", "us"))[ctx.dx_claim]

    picked = diagnoses.iloc[rows]
    data = _ids(picked, entity)
    data["claim_id"] = picked["claim_id"].astype("string").array
    data["icd10_code"] = picked["icd10_code"].astype("string").array
    data["earliest_service_date"] = claim_earliest[rows]
    data["on_referral_or_condition"] = pd.array(on_record[rows], dtype="boolean")
    return data


def _earliest_service_day(ctx: _Context) -> np.ndarray:
    """Each claim's earliest service date among its lines in the view (NaT: none)."""
    earliest = np.full(len(ctx.claims), np.iinfo(np.int64).max, dtype=np.int64)
    known = (ctx.line_claim >= 0) & ctx.line_day_known
    np.minimum.at(earliest, ctx.line_claim[known], ctx.line_day[known])
    none = earliest == np.iinfo(np.int64).max
    days = earliest.astype("datetime64[D]").astype("datetime64[us]")
    days[none] = np.datetime64("NaT")
    return days


# --------------------------------------------------------------------------- client days


def _client_date_facts(ctx: _Context) -> pd.DataFrame:
    """One row per client and service date with timed lines and a completed session: COD-005.

    ``billed_units`` sums the units of timed-code lines (unreadable units count 0);
    ``supported_units`` is what the day's timed minutes support under the unit rule
    of the first timed line's policy (by claim_id, line_no, line_id), else the
    setting of that line's practice and payer (reading 13).
    """
    timed = ctx.payers.in_list(
        ctx.settings, "timed_cpt_codes", ctx.line_pair, ctx.line_cpt, ctx.cpt_vocabulary
    )
    day_key = ctx.line_day_key
    picked = np.flatnonzero(timed & _member(day_key, ctx.session_day_keys))
    units = ctx.lines["units"].astype("Int64").fillna(0).to_numpy(dtype=np.int64)

    per_line = pd.DataFrame(
        {
            "key": day_key[picked],
            "rank": ctx.line_rank[picked],
            "line": picked,
            "units": units[picked],
        }
    ).sort_values(["key", "rank"], kind="stable")
    by_day = per_line.groupby("key", sort=True)
    days = by_day.agg(first_line=("line", "first"), billed_units=("units", "sum")).reset_index()

    first_line = days["first_line"].to_numpy()
    first_claim = ctx.line_claim[first_line]
    pair = ctx.line_pair[first_line]
    policy_rule = _take(ctx.claim_policy_unit_rule, first_claim)
    setting_rule = ctx.payers.value(ctx.settings, "unit_rule", pair).astype("string")
    rule = policy_rule.fillna(setting_rule).str.strip().str.lower()
    day_keys = days["key"].to_numpy()

    supported = _supported_units(ctx, day_keys, pair, (rule == "ama").fillna(False).to_numpy())

    source = ctx.lines[["practice_id", "client_id"]].iloc[first_line]
    day = (day_keys % _DAY_SPAN - _DAY_OFFSET).astype("datetime64[D]")
    # A network bills on a few thousand distinct days: format each once.
    day_codes, distinct_days = pd.factorize(day)
    day_text = pd.array(distinct_days.astype(str), dtype="string").take(day_codes)
    entity = source["client_id"].astype("string").reset_index(drop=True) + ":" + pd.Series(day_text)
    data = _ids(source, entity)
    data["service_date"] = day.astype("datetime64[us]")
    data["unit_rule"] = rule.array
    data["billed_units"] = pd.array(days["billed_units"].to_numpy(), dtype="Int64")
    data["supported_units"] = pd.array(supported, dtype="Int64")
    return data


def _supported_units(
    ctx: _Context, day_keys: np.ndarray, pair: np.ndarray, use_ama: np.ndarray
) -> np.ndarray:
    """Units the day's timed minutes support, per client-day of ``day_keys`` (COD-005).

    ``cms``: (total timed minutes + 7) // 15; ``ama``: the sum over codes of (that
    code's minutes over all the day's completed sessions + 7) // 15. The timed code
    set is that of the practice and payer whose unit rule applies.
    """
    if len(day_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    day_of_service = np.minimum(np.searchsorted(day_keys, ctx.service_day_key), len(day_keys) - 1)
    judged = (ctx.service_day_key >= 0) & (day_keys[day_of_service] == ctx.service_day_key)
    services = np.flatnonzero(judged)
    timed = ctx.payers.in_list(
        ctx.settings,
        "timed_cpt_codes",
        pair[day_of_service[services]],
        ctx.service_cpt[services],
        ctx.cpt_vocabulary,
    )
    services = services[timed]

    per_code = (
        pd.DataFrame(
            {
                "day": day_of_service[services],
                "cpt": ctx.service_cpt[services],
                "minutes": ctx.service_minutes[services],
            }
        )
        .groupby(["day", "cpt"], sort=False)["minutes"]
        .sum()
        .reset_index()
    )
    per_code["units"] = (per_code["minutes"] + 7) // 15
    per_day = per_code.groupby("day")[["minutes", "units"]].sum()
    minutes = np.zeros(len(day_keys), dtype=np.int64)
    ama = np.zeros(len(day_keys), dtype=np.int64)
    minutes[per_day.index.to_numpy()] = per_day["minutes"].to_numpy()
    ama[per_day.index.to_numpy()] = per_day["units"].to_numpy()
    cms = (minutes + 7) // 15
    return np.where(use_ama, ama, cms)


# --------------------------------------------------------------------------- claims


def _claim_facts(ctx: _Context) -> pd.DataFrame:
    """One row per live claim: NPIs (COD-008) and timely filing (COD-009).

    A missing NPI, or a missing rendering staff row, is the empty string so the
    NPI expectation fails it (the requirement fails on the unknown). Filing is an
    assertion: days_to_submission is NA unless submitted_on and the earliest
    service date are both known.
    """
    claims = ctx.claims
    staff = ctx.view.tables["staff"]
    (staff_codes, rendering_codes), n_staff = _joint_codes(
        staff["staff_id"], claims["rendering_staff_id"]
    )
    rendering = _positions(rendering_codes, staff_codes, n_staff)
    rendering_npi = _take(staff["npi"].astype("string"), rendering)

    earliest = pd.Series(_earliest_service_day(ctx))
    submitted = claims["submitted_on"].reset_index(drop=True)
    policy_limit = ctx.claim_policy_filing_days
    setting_limit = ctx.payers.value(ctx.settings, "timely_filing_days", ctx.claim_pair)

    data = _ids(claims, claims["claim_id"])
    data["billing_npi"] = claims["billing_npi"].astype("string").fillna("").array
    data["rendering_staff_id"] = claims["rendering_staff_id"].astype("string").array
    data["rendering_npi"] = rendering_npi.fillna("").array
    data["earliest_service_date"] = earliest.to_numpy()
    data["submitted_on"] = submitted.to_numpy()
    data["days_to_submission"] = (submitted - earliest).dt.days.astype("Int64").array
    data["timely_filing_days"] = (
        policy_limit.fillna(setting_limit.astype("Int64")).astype("Int64").array
    )
    return data
