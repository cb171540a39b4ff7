"""Per rule and record: did the check pass it, fail it, or not apply to it?

The check's verdicts come from Great Expectations (``metaudit.check.gx``): a
failing record is one GX listed as unexpected, and the engine turns it into a
finding. GX does not say which rows it *evaluated*, though, only how many, and
the packets need that per client: a rule passes a client when the rule checked
at least one of the client's records and none failed, and does not apply when
it checked none. This module is the one place that knows GX's skipping of rows
(``evaluated_mask``) and tells apart several expectations of one rule on one
frame (``row_fails``), so the packets and any other reader share it;
``tests/unit/test_rule_outcomes.py`` holds it to GX's own results.

The suites use no ``mostly`` below 1 and no ``row_condition`` (the loader in
``metaudit.check.gx.runner`` refuses the first; none of the rulebook's suites
has the second), so a row is evaluated exactly when GX's null handling keeps
it, and every evaluated row passes or fails on its own.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from metaudit.spec.npi import is_valid_npi

if TYPE_CHECKING:
    from metaudit.check.frames import Frame
    from metaudit.check.gx.runner import RuleFailure

PASS = "pass"
FAIL = "fail"
NOT_APPLICABLE = "not_applicable"

# The data-quality rules check every row of the source: they pass or fail for every client.
EVERY_CLIENT_FAMILY = "DQ"


def evaluated_mask(config: Mapping[str, Any], rows: pd.DataFrame) -> pd.Series:
    """Which rows an expectation evaluates; the others it skips as not applicable.

    Column map expectations skip missing values, except the null checks
    themselves; column pair expectations follow ``ignore_row_if`` (GX's default
    is "both_values_are_missing"); multicolumn ones their own default.
    """
    kwargs = config.get("kwargs", {}) or {}
    kind = str(config.get("type", ""))
    everything = pd.Series(True, index=rows.index)
    if "column" in kwargs:
        column = kwargs["column"]
        if column not in rows:
            return everything & False
        if kind in {"expect_column_values_to_be_null", "expect_column_values_to_not_be_null"}:
            return everything
        return rows[column].notna().astype(bool)
    if "column_A" in kwargs and "column_B" in kwargs:
        a = rows[kwargs["column_A"]].notna().astype(bool)
        b = rows[kwargs["column_B"]].notna().astype(bool)
        mode = kwargs.get("ignore_row_if", "both_values_are_missing")
        if mode == "either_value_is_missing":
            return a & b
        if mode == "neither":
            return everything
        return a | b
    if "column_list" in kwargs:
        present = rows[list(kwargs["column_list"])].notna()
        mode = kwargs.get("ignore_row_if", "all_values_are_missing")
        if mode == "any_value_is_missing":
            return present.all(axis=1).astype(bool)
        if mode == "never":
            return everything
        return present.any(axis=1).astype(bool)
    return everything


def row_fails(config: Mapping[str, Any], row: Mapping[str, Any]) -> bool | None:
    """Whether one row fails one expectation, for the stock checks the suites use.

    Used only to tell apart several expectations of one rule on one frame
    (which part of the rule a failing record missed); None when the check is
    not one of those, and the failure is then shown for the rule as a whole.
    """
    kwargs = config.get("kwargs", {}) or {}
    kind = str(config.get("type", ""))
    if "column" in kwargs:
        value = row.get(kwargs["column"])
        if kind == "expect_column_values_to_not_be_null":
            return is_missing(value)
        if kind == "expect_column_values_to_be_null":
            return not is_missing(value)
        if is_missing(value):
            return False
        if kind == "expect_column_values_to_be_in_set":
            return not any(_equal(value, item) for item in kwargs.get("value_set", []))
        if kind == "expect_column_values_to_be_between":
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            below = low is not None and (
                value < low or (bool(kwargs.get("strict_min")) and value == low)
            )
            above = high is not None and (
                value > high or (bool(kwargs.get("strict_max")) and value == high)
            )
            return bool(below or above)
        if kind == "expect_column_values_to_be_valid_npi":
            return not is_valid_npi(str(value))
        return None
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a: Any = row.get(str(kwargs.get("column_A")))
        b: Any = row.get(str(kwargs.get("column_B")))
        mode = kwargs.get("ignore_row_if", "both_values_are_missing")
        if is_missing(a) or is_missing(b):
            # A skipped row does not fail; a row evaluated with a missing side does.
            skipped = mode == "either_value_is_missing" or (
                mode == "both_values_are_missing" and is_missing(a) and is_missing(b)
            )
            return not skipped
        return not (a > b or (bool(kwargs.get("or_equal")) and a == b))
    return None


def is_missing(value: Any) -> bool:
    """True for the values GX treats as null: None, NA, NaT and NaN."""
    if isinstance(value, str):  # most values asked about; pd.isna costs far more
        return False
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (int, datetime.date)):
        # Numbers, dates and timestamps that are not NaT (above): pd.isna of a scalar
        # costs some 100 microseconds, and the packets ask about every cell.
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _equal(value: Any, item: Any) -> bool:
    try:
        return bool(value == item)
    except (TypeError, ValueError):
        return False


def rule_id_of(config: Mapping[str, Any]) -> str:
    """The rule an expectation's config belongs to (its ``meta.rule_id``)."""
    return str(config.get("meta", {}).get("rule_id"))


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation over some rows of its frame.

    ``evaluated`` are the entity ids it checked (in the rows' order), ``unexpected``
    the failing ones it takes; ``by_rule`` is True when a failure could not be
    told to be this expectation's rather than its rule's.
    """

    position: int
    rule_id: str
    evaluated: tuple[str, ...]
    unexpected: tuple[str, ...]
    by_rule: bool = False


def frame_outcomes(
    expectations: Sequence[tuple[int, Mapping[str, Any]]],
    rows: pd.DataFrame,
    failing: Mapping[str, Collection[str]],
) -> dict[int, ExpectationOutcome]:
    """Each expectation's evaluated and failing records among ``rows`` of its frame.

    ``expectations`` are (position, config) of the expectations run on the frame;
    ``failing`` maps a rule id to the entity ids GX failed for it (from the
    validation's failures or the findings made of them). A rule with one
    expectation on the frame takes all its failures. With several (DOC-005's
    parts, say), each failing record goes to those whose check it fails; when
    that cannot be told, to every one that evaluated it, marked ``by_rule``.
    """
    ids = rows["entity_id"].astype(str).tolist() if len(rows) else []
    evaluated: dict[int, list[str]] = {}
    for position, config in expectations:
        mask = evaluated_mask(config, rows) if len(rows) else pd.Series([], dtype=bool)
        evaluated[position] = [i for i, keep in zip(ids, mask.tolist(), strict=True) if keep]
    by_id: list[pd.DataFrame] = []  # built on the first failure only

    def row_of(entity: str) -> Mapping[str, Any]:
        if not by_id:
            by_id.append(rows.set_index(rows["entity_id"].astype(str)))
        return dict(by_id[0].loc[entity].to_dict())

    return outcomes_of(expectations, evaluated, failing, set(ids), row_of)


def outcomes_of(
    expectations: Sequence[tuple[int, Mapping[str, Any]]],
    evaluated: Mapping[int, Sequence[str]],
    failing: Mapping[str, Collection[str]],
    members: Collection[str],
    row_of: Callable[[str], Mapping[str, Any]],
) -> dict[int, ExpectationOutcome]:
    """:func:`frame_outcomes` from the rows each expectation evaluated (``evaluated``,
    by position), the entity ids of the rows (``members``) and a row by entity id
    (``row_of``, asked only for failing entities of a rule with several expectations).

    The packets compute ``evaluated`` once per practice and take each client's
    share; the failures are placed here, the same way for both.
    """
    unexpected: dict[int, list[str]] = {position: [] for position, _ in expectations}
    ambiguous: set[int] = set()
    groups: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for position, config in expectations:
        groups.setdefault(rule_id_of(config), []).append((position, config))
    for rule_id, refs in groups.items():
        failed = sorted(set(failing.get(rule_id, ())))
        failed = [entity for entity in failed if entity in members]
        if not failed:
            continue
        if len(refs) == 1:
            unexpected[refs[0][0]].extend(failed)
            continue
        for entity in failed:
            row = row_of(entity)
            hits = [position for position, config in refs if row_fails(config, row) is True]
            if not hits:
                hits = [position for position, _ in refs if entity in evaluated[position]] or [
                    position for position, _ in refs
                ]
                ambiguous.update(hits)
            for position in hits:
                unexpected[position].append(entity)

    return {
        position: ExpectationOutcome(
            position=position,
            rule_id=rule_id_of(config),
            evaluated=tuple(evaluated[position]),
            unexpected=tuple(unexpected[position]),
            by_rule=position in ambiguous,
        )
        for position, config in expectations
    }


def rule_status(family: str, failed: bool, checked: int) -> str:
    """A rule's status for one client: ``fail`` when one of its records failed,
    ``pass`` when the rule checked at least one of them (a DQ rule checks every
    client), ``not_applicable`` otherwise."""
    if failed:
        return FAIL
    if family == EVERY_CLIENT_FAMILY or checked:
        return PASS
    return NOT_APPLICABLE


def rule_outcomes(
    family: str,
    frames: Sequence[Frame],
    expectations: Iterable[Mapping[str, Any]],
    failures: Iterable[RuleFailure],
    clients: Iterable[str] | None = None,
) -> dict[tuple[str, str], str]:
    """Each (rule id, client id) of a family's frames with its status.

    ``expectations`` are the suite's expectation configs (``type``, ``kwargs``,
    ``meta`` with ``rule_id`` and ``frame``), ``failures`` what GX failed on those
    frames (``FamilyValidation.failures``). ``clients`` are the clients to key,
    by default those with a row in some frame of the family; a rule whose frames
    have no row of a client, or only rows its expectations skip, does not apply
    to it (for DQ, whose rules check every client, it passes).
    """
    configs = list(expectations)
    failing: dict[str, dict[str, set[str]]] = {}
    for failure in failures:
        failing.setdefault(failure.frame, {}).setdefault(failure.rule_id, set()).add(
            failure.entity_id
        )
    rule_ids = sorted({rule_id_of(config) for config in configs})
    checked: dict[tuple[str, str], int] = {}
    failed: set[tuple[str, str]] = set()
    keyed: set[str] = set(clients) if clients is not None else set()
    for frame in frames:
        planned = [
            (position, config)
            for position, config in enumerate(configs)
            if str(config.get("meta", {}).get("frame")) == frame.name
        ]
        data = frame.data
        for client, rows in data.groupby(data["client_id"].astype(str), sort=True):
            if clients is None:
                keyed.add(str(client))
            elif str(client) not in keyed:
                continue
            for outcome in frame_outcomes(planned, rows, failing.get(frame.name, {})).values():
                key = (outcome.rule_id, str(client))
                checked[key] = checked.get(key, 0) + len(outcome.evaluated)
                if outcome.unexpected:
                    failed.add(key)
    return {
        (rule_id, client): rule_status(
            family, (rule_id, client) in failed, checked.get((rule_id, client), 0)
        )
        for rule_id in rule_ids
        for client in sorted(keyed)
    }
