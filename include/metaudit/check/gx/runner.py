"""Load the rulebook's Great Expectations suites and validate derived frames with them.

Suites live in ``metaudit/spec/suites/<family lower>.json``, package data (the
repository's ``expectations/`` links there; ``METAUDIT_EXPECTATIONS_DIR`` overrides). A
suite file is exactly what GX Core 1.x ``ExpectationSuite.to_json_dict()`` emits::

    {
      "name": "ref",
      "expectations": [
        {
          "type": "expect_column_values_to_not_be_null",
          "kwargs": {"column": "signed_on"},
          "meta": {"rule_id": "REF-006", "frame": "ref_referral"}
        },
        {
          "type": "expect_column_pair_values_a_to_be_greater_than_b",
          "kwargs": {"column_A": "expires_on", "column_B": "due_by", "or_equal": true,
                     "ignore_row_if": "either_value_is_missing"},
          "meta": {"rule_id": "REF-009", "frame": "ref_referral",
                   "due_date_column": "expires_on"}
        }
      ],
      "meta": {"family": "REF"}
    }

Top-level keys: ``name`` (required), ``expectations`` (required, not empty),
``meta``, ``notes``, ``suite_parameters``, ``id`` (GX writes ``null``). Keys of an
expectation: ``type`` (snake-case GX name; ours are
``expect_column_values_to_be_valid_npi`` and
``expect_column_values_to_be_billable_icd10_cm``), ``kwargs``, ``meta``, and what
GX itself writes: ``severity`` (ignored here: the rulebook's severity counts),
``id``, ``notes``, ``description``. Any other key is an error.

Rules the loader enforces (``SuiteError`` otherwise):

- ``meta.rule_id`` (``REF-006``: the family's own prefix) and ``meta.frame`` (the
  ``Frame.name`` validated) on every expectation; optional ``meta.part`` (what the
  failing entity lacks, passed on in ``RuleFailure.part``) and
  ``meta.due_date_column`` (a column of that frame).
- Only row-level (map) expectations: column, column-pair and multicolumn map
  expectations, since every failure must name an entity.
- No ``mostly`` below 1 and no ``result_format`` in kwargs: every failing row is a
  finding, and the runner owns the result format.
- Every listed expectation is built: GX silently drops unknown types, so the count
  is checked, and a misspelled type or kwarg is reported with its rule id.

How values are judged (GX 1.24 on pandas, checked by the unit tests):

- Column map expectations skip nulls (NA, NaN, NaT, None): NA means "not
  applicable". A requirement that fails on the unknown needs a definite failing
  value in the derived column (``False``, ``""``).
- Column-pair expectations: ``ignore_row_if`` ``"either_value_is_missing"`` skips a
  row with a null on either side; ``"both_values_are_missing"`` (GX's default) and
  ``"neither"`` make a row with a null on one side (or both, for ``neither``)
  FAIL. Nullable pandas numbers, booleans and strings would make GX raise
  ("boolean value of NA is ambiguous"), so the runner hands them to GX as numpy
  floats / Python objects, and the rule above holds for every dtype.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metaudit import config
from metaudit.check.frames import Frame
from metaudit.errors import SuiteError

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations.expectation import Expectation

log = logging.getLogger(__name__)

# The rulebook's suites ship inside the package (package data of metaudit.spec), so an
# installed package finds them without any setting.
PACKAGE_SUITES_DIR = Path(str(resources.files("metaudit.spec") / "suites"))

_SUITE_KEYS = frozenset({"name", "id", "expectations", "meta", "notes", "suite_parameters"})
_EXPECTATION_KEYS = frozenset({"type", "kwargs", "meta", "severity", "id", "notes", "description"})
_RULE_ID = re.compile(r"(?P<family>[A-Z]+)-[0-9]{3}")
# Marks each expectation of a per-frame run with its place in the suite: GX returns
# results in its own order (failed metrics first), and two expectations of one rule
# may share all their meta.
_INDEX_KEY = "metaudit_index"

# COMPLETE without index columns returns the failing rows' index labels, and the
# runner validates a frame with a fresh RangeIndex, so the labels are positions.
# Measured on 1,000,000 rows at 1% failures, 8 expectations: as fast as SUMMARY;
# naming entity_id as unexpected_index_column_names costs 2.3x (a Python loop of
# DataFrame.at per failing row). GX caps unexpected values at 200 in any format;
# the index list, which is not capped, is taken out of the stored results.
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "partial_unexpected_count": 20,
    "return_unexpected_index_query": False,
    "include_unexpected_rows": False,
}
# The failing entity ids a practice's share of a result names (GX's partial list's length).
_PARTIAL_IDS = 20
_DROPPED_RESULT_KEYS = ("unexpected_index_list", "unexpected_list", "unexpected_index_query")


@dataclass(frozen=True, slots=True)
class RuleFailure:
    """One rule failing for one entity of one frame; ``part`` names what is missing."""

    rule_id: str
    frame: str
    entity_id: str
    part: str | None = None


@dataclass
class FamilyValidation:
    """What validating one family's frames produced.

    ``failures`` are sorted by rule id, entity id, frame and part. ``results`` holds
    one GX suite validation result per frame (``to_json_dict()`` form, JSON-safe and
    bounded: the failing ids are in ``failures``, not in the stored results).
    """

    family: str
    failures: list[RuleFailure] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    # With ``share_by`` (validate_family): each practice's share of ``results``, one
    # result per frame restricted to the practice's rows (see :func:`_shares`).
    shares: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """True when no entity fails any rule of the family."""
        return not self.failures


# ---------------------------------------------------------------------------
# Loading suites


def expectations_dir(directory: Path | None = None) -> Path:
    """The folder suites are read from: ``directory``, else the override
    ``METAUDIT_EXPECTATIONS_DIR``, else the package's own suites."""
    if directory is not None:
        return Path(directory)
    return config.expectations_dir() or PACKAGE_SUITES_DIR


def load_suite(family: str, directory: Path | None = None) -> ExpectationSuite:
    """The GX suite of a rule family (``REF`` -> ``<dir>/ref.json``), custom
    expectations registered first; loaded once per process and file.

    Raises ``SuiteError`` when the file is missing or broken, or when an
    expectation would be dropped or lacks ``meta.rule_id`` / ``meta.frame``.
    """
    path = (expectations_dir(directory) / f"{family.lower()}.json").resolve()
    return _load_suite_file(family.upper(), path)


def clear_suite_cache() -> None:
    """Forget loaded suites (tests that rewrite a suite file use it)."""
    _load_suite_file.cache_clear()


@functools.cache
def _load_suite_file(family: str, path: Path) -> ExpectationSuite:
    quiet_gx_logging()
    import great_expectations as gx

    # Defining the classes registers them; GX would drop their types otherwise.
    importlib.import_module("metaudit.check.gx.expectations")

    document = _read_json(family, path)
    where = path.name
    unknown = sorted(set(document) - _SUITE_KEYS)
    if unknown:
        raise SuiteError(f"{where}: unknown top-level key(s) {unknown}")
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise SuiteError(f"{where}: 'name' must be a non-empty string")
    listed = document.get("expectations")
    if not isinstance(listed, list) or not listed:
        raise SuiteError(f"{where}: 'expectations' must be a non-empty list")

    built = [_build_expectation(family, where, number, item) for number, item in enumerate(listed)]
    try:
        suite = gx.ExpectationSuite(
            name=name,
            expectations=built,
            meta=document.get("meta"),
            notes=document.get("notes"),
            suite_parameters=document.get("suite_parameters"),
        )
    except (ValueError, TypeError) as exc:
        raise SuiteError(f"{where}: {exc}") from exc
    if len(suite.expectations) != len(listed):
        raise SuiteError(
            f"{where}: GX kept {len(suite.expectations)} of {len(listed)} expectations"
        )
    log.info("loaded suite %s: %d expectations from %s", name, len(listed), path)
    return suite


def _read_json(family: str, path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SuiteError(f"no suite for family {family}: {path} does not exist") from exc
    except OSError as exc:
        raise SuiteError(f"cannot read the suite of family {family} at {path}: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SuiteError(f"{path.name}: a suite is a JSON object")
    return document


def _build_expectation(family: str, where: str, number: int, item: Any) -> Expectation:
    """One suite entry as a GX expectation, checked against the rules of the module doc."""
    from great_expectations.exceptions import GreatExpectationsError
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    label = f"{where}: expectation #{number + 1}"
    if not isinstance(item, dict):
        raise SuiteError(f"{label} is not a JSON object")
    meta = item.get("meta")
    rule_id = meta.get("rule_id") if isinstance(meta, dict) else None
    label += f" ({item.get('type')}, {rule_id or 'no rule id'})"
    unknown = sorted(set(item) - _EXPECTATION_KEYS)
    if unknown:
        raise SuiteError(f"{label}: unknown key(s) {unknown}")
    if not isinstance(meta, dict):
        raise SuiteError(f"{label}: 'meta' with rule_id and frame is required")
    _check_meta(family, label, meta)
    kwargs = item.get("kwargs")
    if not isinstance(kwargs, dict):
        raise SuiteError(f"{label}: 'kwargs' must be an object")
    if kwargs.get("mostly", 1) != 1:
        raise SuiteError(f"{label}: 'mostly' must be 1 (every failing row is a finding)")
    if "result_format" in kwargs:
        raise SuiteError(f"{label}: remove 'result_format', the runner sets it")

    try:
        expectation = ExpectationConfiguration(**item).to_domain_obj()
    except (GreatExpectationsError, ValueError, TypeError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise SuiteError(f"{label}: {message}") from exc
    if not isinstance(
        expectation, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation
    ):
        raise SuiteError(f"{label}: not a row-level (map) expectation, so no entity to report")
    return expectation


def _check_meta(family: str, label: str, meta: dict[str, Any]) -> None:
    rule_id, frame = meta.get("rule_id"), meta.get("frame")
    if not isinstance(rule_id, str) or not (match := _RULE_ID.fullmatch(rule_id)):
        raise SuiteError(f"{label}: meta.rule_id must look like {family}-001")
    if match["family"] != family:
        raise SuiteError(f"{label}: rule {rule_id} does not belong to family {family}")
    if not isinstance(frame, str) or not frame:
        raise SuiteError(f"{label}: meta.frame must name the frame it validates")
    for optional in ("part", "due_date_column"):
        if optional in meta and not (isinstance(meta[optional], str) and meta[optional]):
            raise SuiteError(f"{label}: meta.{optional} must be a non-empty string")


# ---------------------------------------------------------------------------
# The GX context


@dataclass(frozen=True)
class _GxRuntime:
    context: AbstractDataContext
    batch_definition: BatchDefinition


_runtime_lock = threading.RLock()


def quiet_gx_logging() -> None:
    """Keep GX's INFO chatter (on import and per context) out of task logs; an
    operator who set the ``great_expectations`` logger's level keeps theirs."""
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)


@functools.cache
def _gx_runtime() -> _GxRuntime:
    quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # This GX module pins its own logger to INFO and announces a temporary docs folder.
    base_logger = logging.getLogger("great_expectations.data_context.types.base")
    if base_logger.level == logging.INFO:
        base_logger.setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    # tqdm bars per metric batch would flood task logs.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # One asset and one whole-dataframe batch definition serve every frame: the
    # DataFrame is a batch parameter of each validation.
    asset = context.data_sources.add_pandas(name="metaudit").add_dataframe_asset(name="frames")
    return _GxRuntime(context, asset.add_batch_definition_whole_dataframe(name="whole_frame"))


def gx_context() -> AbstractDataContext:
    """The process-wide ephemeral GX context, created on first use."""
    with _runtime_lock:
        return _gx_runtime().context


def _batch_definition() -> BatchDefinition:
    with _runtime_lock:
        return _gx_runtime().batch_definition


# ---------------------------------------------------------------------------
# Validating frames


def validate_family(
    family: str,
    frames: Sequence[Frame],
    suite: ExpectationSuite | None = None,
    share_by: Sequence[str] | None = None,
) -> FamilyValidation:
    """Validate a family's derived frames with its suite; collect every failing entity.

    Expectations are grouped by ``meta.frame`` and each group runs once over that
    frame. A frame the suite names but ``frames`` lacks, or a column an expectation
    names but the frame lacks, raises ``SuiteError``; so does an expectation GX
    could not evaluate. An empty frame validates trivially.

    ``share_by`` (practice ids) validates the practices' frames together, once, and
    also hands back each practice's share of the results: GX's fixed cost per
    expectation (building its metric graph, tens of milliseconds) is paid once for
    the practices of a task instead of once per practice.
    """
    suite = suite if suite is not None else load_suite(family)
    by_name: dict[str, Frame] = {}
    for frame in frames:
        if frame.name in by_name:
            raise ValueError(f"family {family}: two frames are named {frame.name!r}")
        by_name[frame.name] = frame

    groups: dict[str, list[tuple[int, Expectation]]] = {}
    for index, expectation in enumerate(suite.expectations):
        groups.setdefault(str(_meta(expectation)["frame"]), []).append((index, expectation))
    absent = sorted(set(groups) - set(by_name))
    if absent:
        raise SuiteError(
            f"suite {suite.name} validates frame(s) {absent} that family {family} did not derive"
        )

    validation = FamilyValidation(family=family.upper())
    if share_by is not None:
        validation.shares = {practice_id: [] for practice_id in share_by}
    for frame_name, planned in groups.items():
        failures, result, positions = _validate_frame(suite.name, by_name[frame_name], planned)
        validation.failures.extend(failures)
        validation.results.append(result)
        if share_by is not None:
            for practice_id, share in _shares(by_name[frame_name], result, positions, share_by):
                validation.shares[practice_id].append(share)
    validation.failures.sort(key=lambda f: (f.rule_id, f.entity_id, f.frame, f.part or ""))
    return validation


def validate_all(
    families_to_frames: Mapping[str, Sequence[Frame]],
) -> dict[str, FamilyValidation]:
    """``validate_family`` for each family with its frames and its own suite."""
    return {
        family: validate_family(family, frames) for family, frames in families_to_frames.items()
    }


def _validate_frame(
    suite_name: str, frame: Frame, planned: list[tuple[int, Expectation]]
) -> tuple[list[RuleFailure], dict[str, Any], list[np.ndarray]]:
    """Validate one frame with its expectations: the failures, GX's result (JSON-safe,
    bounded) and, per entry of its ``results``, the failing rows' positions."""
    import great_expectations as gx
    from great_expectations.validator.v1_validator import Validator

    started = time.perf_counter()
    data = frame.data
    _check_frame(suite_name, frame, planned)
    rows = len(data)
    if rows == 0:
        return [], _empty_result(suite_name, frame, planned), []

    tagged = [
        expectation.copy(
            update={"id": None, "meta": {**_meta(expectation), _INDEX_KEY: index}}, deep=True
        )
        for index, expectation in planned
    ]
    frame_suite = gx.ExpectationSuite(name=f"{suite_name}.{frame.name}", expectations=tagged)
    # Validator is what ValidationDefinition.run uses. Batch.validate would fetch
    # (and hash) the DataFrame a second time, about 0.4 s per million rows, and
    # ValidationDefinition.run keeps every result in the context's store.
    prepared = _frame_for_gx(frame, planned)
    with _runtime_lock:
        # The context, its data source and execution engine are shared: one
        # validation at a time per process.
        validator = Validator(
            batch_definition=_batch_definition(),
            batch_parameters={"dataframe": prepared},
            result_format=dict(_RESULT_FORMAT),
        )
        suite_result = validator.validate_expectation_suite(frame_suite)

    by_index = dict(planned)
    # Only failing rows are named: converting a million Arrow strings to Python
    # objects up front would cost more than validating.
    entity_id_column = data["entity_id"].reset_index(drop=True)

    def entity_ids(rows: np.ndarray | list[int]) -> list[str]:
        if len(rows) == 0:
            return []
        picked = entity_id_column.take(np.asarray(rows, dtype=np.intp))
        return [str(value) for value in picked.tolist()]

    failures: list[RuleFailure] = []
    broken: list[str] = []
    failing_rows: list[np.ndarray] = []
    for expectation_result in suite_result.results:
        config = expectation_result.expectation_config
        config_meta = config.meta if config is not None and config.meta is not None else {}
        expectation = by_index[config_meta.pop(_INDEX_KEY)]
        meta = _meta(expectation)
        messages = _exception_messages(expectation_result.exception_info)
        if messages:
            failing_rows.append(np.array([], dtype=np.intp))
            broken.append(f"{meta['rule_id']} ({expectation.expectation_type}): {messages[0]}")
            continue
        result = expectation_result.result
        positions = np.asarray(result.pop("unexpected_index_list", None) or [], dtype=np.intp)
        failing_rows.append(positions)
        if len(positions) != (result.get("unexpected_count") or 0):
            raise SuiteError(
                f"{meta['rule_id']} on frame {frame.name}: GX listed {len(positions)} "
                f"failing rows but counted {result.get('unexpected_count')}"
            )
        for key in _DROPPED_RESULT_KEYS:
            result.pop(key, None)
        if "partial_unexpected_index_list" in result:
            result["partial_unexpected_index_list"] = entity_ids(
                result["partial_unexpected_index_list"]
            )
        part = meta.get("part")
        failures.extend(
            RuleFailure(meta["rule_id"], frame.name, str(entity_id), part)
            for entity_id in entity_ids(positions)
        )
    if broken:
        raise SuiteError(
            f"suite {suite_name}, frame {frame.name}: GX could not evaluate " + "; ".join(broken)
        )

    document = suite_result.to_json_dict()
    document.setdefault("meta", {})["metaudit"] = {
        "frame": frame.name,
        "entity_type": frame.entity_type,
        "rows": rows,
        "failures": len(failures),
    }
    elapsed = time.perf_counter() - started
    log.info(
        "validated frame %s: %d rows, %d expectations, %d failures in %.2f s",
        frame.name,
        rows,
        len(planned),
        len(failures),
        elapsed,
    )
    return failures, _json_safe(document), failing_rows


def _shares(
    frame: Frame,
    result: Mapping[str, Any],
    positions: Sequence[np.ndarray],
    practices: Sequence[str],
) -> list[tuple[str, dict[str, Any]]]:
    """Each practice's share of one frame's result: GX's result restricted to the practice's
    rows, as a practice's own validation would have counted them.

    Expectation by expectation: ``element_count`` the practice's rows of the frame,
    ``unexpected_count`` and the first failing entity ids those of its rows that GX
    listed as failing, success when none of its rows fails (the suites use no
    ``mostly``); statistics recomputed. Counts GX derives from other columns
    (missing values, value counts) are not split and are left out; ``meta.metaudit``
    says the result is a share and of how many practices. A practice without rows in
    the frame gets the empty frame's result, as its own validation would.
    """
    data = frame.data
    if not result.get("results"):
        return [(p, _share_meta(dict(result), p, len(practices), 0, 0)) for p in practices]
    owner = data["practice_id"].astype("string").reset_index(drop=True)
    codes, names = pd.factorize(owner)
    code_of = {str(name): code for code, name in enumerate(names)}
    rows_of = np.bincount(codes[codes >= 0], minlength=len(names))
    entity_ids = data["entity_id"].reset_index(drop=True)
    shares = []
    for practice_id in practices:
        code = code_of.get(practice_id)
        rows = int(rows_of[code]) if code is not None else 0
        if rows == 0:
            empty: dict[str, Any] = {
                "success": True,
                "suite_name": result.get("suite_name"),
                "results": [],
                "statistics": _statistics(0, 0),
                "meta": {"metaudit": {**result["meta"]["metaudit"], "skipped": "empty frame"}},
            }
            shares.append((practice_id, _share_meta(empty, practice_id, len(practices), 0, 0)))
            continue
        entries = []
        failures = 0
        for entry, failing in zip(result["results"], positions, strict=True):
            own = failing[codes[failing] == code] if len(failing) else failing
            failures += len(own)
            picked = entity_ids.take(own[:_PARTIAL_IDS]).tolist() if len(own) else []
            entries.append(
                {
                    **entry,
                    "success": bool(entry.get("success")) or not len(own),
                    "result": {
                        "element_count": rows,
                        "unexpected_count": len(own),
                        "unexpected_percent_total": round(100.0 * len(own) / rows, 6),
                        "partial_unexpected_index_list": [str(v) for v in picked],
                    },
                }
            )
        successful = sum(1 for entry in entries if entry["success"])
        share = {
            **result,
            "success": successful == len(entries),
            "results": entries,
            "statistics": _statistics(len(entries), successful),
        }
        shares.append(
            (practice_id, _share_meta(share, practice_id, len(practices), rows, failures))
        )
    return shares


def _statistics(evaluated: int, successful: int) -> dict[str, Any]:
    """A suite result's ``statistics``, as GX counts them (no percentage of nothing)."""
    return {
        "evaluated_expectations": evaluated,
        "successful_expectations": successful,
        "unsuccessful_expectations": evaluated - successful,
        "success_percent": round(100.0 * successful / evaluated, 6) if evaluated else None,
    }


def _share_meta(
    share: dict[str, Any], practice_id: str, practices: int, rows: int, failures: int
) -> dict[str, Any]:
    meta = dict(share.get("meta") or {})
    ours = dict(meta.get("metaudit") or {})
    ours.update(
        rows=rows,
        failures=failures,
        share_of={"practice_id": practice_id, "practices_validated_together": practices},
    )
    meta["metaudit"] = ours
    return {**share, "meta": meta}


def _meta(expectation: Expectation) -> dict[str, Any]:
    """An expectation's meta; load_suite guarantees rule_id and frame in it."""
    return expectation.meta or {}


def _columns_of(expectation: Expectation) -> list[str]:
    """The frame columns an expectation reads."""
    columns = [getattr(expectation, name, None) for name in ("column", "column_A", "column_B")]
    named = [c for c in columns if isinstance(c, str)]
    named.extend(getattr(expectation, "column_list", None) or [])
    return named


def _check_frame(suite_name: str, frame: Frame, planned: list[tuple[int, Expectation]]) -> None:
    data = frame.data
    if "entity_id" not in data.columns:
        raise ValueError(f"frame {frame.name} has no entity_id column")
    if not _present_and_unique(data["entity_id"]):
        raise ValueError(f"frame {frame.name}: entity_id values must be present and unique")
    lacking: list[str] = []
    for _, expectation in planned:
        wanted = _columns_of(expectation)
        due = _meta(expectation).get("due_date_column")
        if due:
            wanted.append(due)
        lacking.extend(
            f"{_meta(expectation)['rule_id']} needs {column!r}"
            for column in wanted
            if column not in data.columns
        )
    if lacking:
        raise SuiteError(f"suite {suite_name}, frame {frame.name}: " + "; ".join(lacking))


def _present_and_unique(values: pd.Series) -> bool:
    """No NA and no value twice; factorising Arrow strings is far faster than ``is_unique``
    (and a column in rising order needs no hashing at all)."""
    from metaudit.source.quality import strictly_increasing

    if strictly_increasing(values):
        return True
    codes, uniques = pd.factorize(values)
    return len(uniques) == len(values) and not (codes < 0).any()


def _frame_for_gx(frame: Frame, planned: list[tuple[int, Expectation]]) -> pd.DataFrame:
    """The columns the expectations read, on a RangeIndex, in dtypes GX handles.

    Handing GX only those columns keeps its per-batch fingerprint (a hash of the
    whole DataFrame) small. Nullable numbers become float64 (NaN), which also
    takes ``expect_column_values_to_be_between`` off its row-by-row Python path
    (1.2 s per million rows); in pair and multicolumn expectations nullable
    booleans and strings become objects with None, since NA makes GX raise there.
    """
    from great_expectations.expectations.expectation import ColumnMapExpectation

    from metaudit.check.gx.expectations import CUSTOM_EXPECTATION_TYPES

    data = frame.data
    if any(getattr(e, "row_condition", None) for _, e in planned):
        # A row condition may read any column.
        columns = list(data.columns)
    else:
        columns = list(dict.fromkeys(c for _, e in planned for c in _columns_of(e)))
    custom = {
        c
        for _, e in planned
        if e.expectation_type in CUSTOM_EXPECTATION_TYPES
        for c in _columns_of(e)
    }
    paired = {
        c for _, e in planned if not isinstance(e, ColumnMapExpectation) for c in _columns_of(e)
    }
    prepared = data[columns].reset_index(drop=True)
    for column in columns:
        values = prepared[column]
        dtype = values.dtype
        if not isinstance(dtype, pd.api.extensions.ExtensionDtype) or column in custom:
            continue
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            prepared[column] = values.to_numpy(dtype="float64", na_value=np.nan)
        elif column in paired and (
            pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
        ):
            prepared[column] = pd.Series(
                values.to_numpy(dtype=object, na_value=None), index=prepared.index, dtype=object
            )
    return prepared


def _empty_result(
    suite_name: str, frame: Frame, planned: list[tuple[int, Expectation]]
) -> dict[str, Any]:
    """The stored result of an empty frame: nothing to validate, nothing fails."""
    return {
        "success": True,
        "suite_name": f"{suite_name}.{frame.name}",
        "results": [],
        "statistics": _statistics(0, 0),
        "meta": {
            "metaudit": {
                "frame": frame.name,
                "entity_type": frame.entity_type,
                "rows": 0,
                "failures": 0,
                "skipped": "empty frame",
                "rule_ids": sorted({str(_meta(e)["rule_id"]) for _, e in planned}),
            }
        },
    }


def _exception_messages(info: Any) -> list[str]:
    """Messages of the exceptions GX caught; ``info`` is flat or keyed by metric."""
    if not isinstance(info, Mapping) or not info:
        return []
    if "raised_exception" in info:
        return [str(info.get("exception_message"))] if info["raised_exception"] else []
    return [message for value in info.values() for message in _exception_messages(value)]


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, so ``json.dumps`` with
    ``allow_nan=False`` accepts it (GX writes NaN for some percentages)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return value
