"""The rulebook's own Great Expectations: valid NPI (REF-005, COD-008) and billable
ICD-10-CM code (COD-003).

Each is a GX 1.x ``ColumnMapExpectation`` backed by its own column map metric, for
the pandas engine only (the audit validates pandas frames). Defining the classes
registers them with GX, so this module must be imported before a suite naming them
is loaded; ``metaudit.check.gx.runner.load_suite`` does that.

Like every GX column map expectation they skip null values: NA means "the rule does
not apply to this row". A derived column that must fail when the value is unknown
holds a definite failing value instead (an empty string fails both checks).

This module imports great_expectations at the top: import it lazily (the runner
does), never from a module Airflow parses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from metaudit.spec.icd10 import is_billable
from metaudit.spec.npi import is_valid_npi

VALID_NPI_METRIC = "column_values.metaudit_valid_npi"
BILLABLE_ICD10_CM_METRIC = "column_values.metaudit_billable_icd10_cm"

_LIBRARY_METADATA: dict[str, Any] = {
    "maturity": "production",
    "tags": ["metaudit", "column map expectation"],
    "contributors": ["metaudit"],
    "requirements": ["simple-icd-10-cm"],
    "has_full_test_suite": True,
    "manually_reviewed_code": True,
}


def judge_distinct_values(column: pd.Series, is_good: Callable[[str], bool]) -> pd.Series:
    """Apply ``is_good`` once per distinct value of ``column``; a boolean Series per row.

    NPIs and ICD codes repeat a lot (one billing NPI per practice, a few hundred
    diagnoses), so the cost follows the distinct values, not the rows. Nulls, which
    GX filters out before calling a map metric anyway, count as good.
    """
    codes, distinct = pd.factorize(column, use_na_sentinel=True)
    verdicts = np.fromiter(
        (is_good(value if isinstance(value, str) else str(value)) for value in distinct),
        dtype=bool,
        count=len(distinct),
    )
    meets = np.ones(len(codes), dtype=bool)
    known = codes >= 0
    meets[known] = verdicts[codes[known]]
    return pd.Series(meets, index=column.index)


class ColumnValuesValidNpi(ColumnMapMetricProvider):
    """Per row: the value is a valid NPI (see ``metaudit.spec.npi``)."""

    condition_metric_name = VALID_NPI_METRIC

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return judge_distinct_values(column, is_valid_npi)


class ColumnValuesBillableIcd10Cm(ColumnMapMetricProvider):
    """Per row: the value is a billable ICD-10-CM code (see ``metaudit.spec.icd10``)."""

    condition_metric_name = BILLABLE_ICD10_CM_METRIC

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return judge_distinct_values(column, is_billable)


class ExpectColumnValuesToBeValidNpi(ColumnMapExpectation):
    """Expect column values to be valid National Provider Identifiers.

    Suite type ``expect_column_values_to_be_valid_npi``. A valid NPI has 10 digits,
    the first 1 or 2, and its 10th digit is the Luhn check digit of ``80840``
    followed by the first nine (``1234567893`` is valid). Surrounding blanks are
    ignored; null values are skipped.

    Args:
        column (str): The column name.
    """

    library_metadata = _LIBRARY_METADATA
    map_metric = VALID_NPI_METRIC
    success_keys = ("mostly",)
    args_keys = ("column",)


class ExpectColumnValuesToBeBillableIcd10Cm(ColumnMapExpectation):
    """Expect column values to be billable ICD-10-CM codes.

    Suite type ``expect_column_values_to_be_billable_icd10_cm``. Billable means a
    leaf code of the ICD-10-CM release the project ships (``M54.50`` is billable,
    the category ``M54.5`` is not); case, surrounding blanks and dots are ignored;
    malformed and unknown codes fail. Null values are skipped.

    Args:
        column (str): The column name.
    """

    library_metadata = _LIBRARY_METADATA
    map_metric = BILLABLE_ICD10_CM_METRIC
    success_keys = ("mostly",)
    args_keys = ("column",)


CUSTOM_EXPECTATION_TYPES: frozenset[str] = frozenset(
    {
        ExpectColumnValuesToBeValidNpi.expectation_type,
        ExpectColumnValuesToBeBillableIcd10Cm.expectation_type,
    }
)
