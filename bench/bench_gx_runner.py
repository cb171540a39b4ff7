"""Benchmark of the GX layer: import, context, and one family over a large frame.

Usage::

    PYTHONPATH=include python bench/bench_gx_runner.py [--rows 1000000] [--compare-formats]

Builds one frame of ``--rows`` rows with 8 expectations (stock and custom), each
failing on about 1% of the rows, and times ``validate_family`` on it. With
``--compare-formats`` it also runs the same prepared frame through GX with the
result formats the runner did not pick, to show why it picked its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metaudit.check.frames import Frame

log = logging.getLogger("bench_gx_runner")

FAILURE_RATE = 0.01

SUITE: dict[str, Any] = {
    "name": "bench",
    "expectations": [
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "signed_on"},
            "meta": {"rule_id": "BENCH-001", "frame": "bench_referral"},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "credential_allowed", "value_set": [True]},
            "meta": {"rule_id": "BENCH-002", "frame": "bench_referral"},
        },
        {
            "type": "expect_column_pair_values_a_to_be_greater_than_b",
            "kwargs": {
                "column_A": "allowed_days",
                "column_B": "elapsed_days",
                "or_equal": True,
                "ignore_row_if": "either_value_is_missing",
            },
            "meta": {"rule_id": "BENCH-003", "frame": "bench_referral"},
        },
        {
            "type": "expect_column_pair_values_a_to_be_greater_than_b",
            "kwargs": {
                "column_A": "expires_on",
                "column_B": "session_date",
                "or_equal": True,
                "ignore_row_if": "neither",
            },
            "meta": {"rule_id": "BENCH-004", "frame": "bench_referral"},
        },
        {
            "type": "expect_column_values_to_be_valid_npi",
            "kwargs": {"column": "referrer_npi"},
            "meta": {"rule_id": "BENCH-005", "frame": "bench_referral"},
        },
        {
            "type": "expect_column_values_to_be_billable_icd10_cm",
            "kwargs": {"column": "icd10_code"},
            "meta": {"rule_id": "BENCH-006", "frame": "bench_referral"},
        },
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "services", "regex": r"(?i)medical\s+exercise|\bMET\b"},
            "meta": {"rule_id": "BENCH-007", "frame": "bench_referral"},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "diagnosis_count", "min_value": 1},
            "meta": {"rule_id": "BENCH-008", "frame": "bench_referral"},
        },
    ],
}


def build_frame(rows: int, seed: int = 1) -> tuple[Frame, dict[str, int]]:
    """A referral-like frame where each rule fails on about 1% of the rows."""
    from metaudit.spec.npi import npi_check_digit

    rng = np.random.default_rng(seed)

    def failing() -> np.ndarray:
        return rng.random(rows) < FAILURE_RATE

    def npi(body: str) -> str:
        return body + str(npi_check_digit(body))

    good_npis = np.array([npi(f"1{n:08d}") for n in range(1, 2001)], dtype=object)
    bad_npis = np.array([f"1{n:08d}0" for n in range(1, 201) if not npi(f"1{n:08d}").endswith("0")])
    good_codes = np.array(["M54.50", "M17.11", "S83.511A", "Z96.651", "M25.561", "I10"])
    bad_codes = np.array(["M54.5", "M17", "XX1", "S83.511"])
    day = np.datetime64("2026-01-01")

    fails = {f"BENCH-00{n}": failing() for n in range(1, 9)}
    session_date = day + rng.integers(0, 90, rows).astype("timedelta64[D]")
    data = pd.DataFrame(
        {
            "entity_id": pd.array([f"RF-{n}" for n in range(rows)], dtype="string"),
            "practice_id": pd.array(["PR-1"] * rows, dtype="string"),
            "client_id": pd.array([f"CL-{n // 3}" for n in range(rows)], dtype="string"),
            "signed_on": pd.Series(np.where(fails["BENCH-001"], np.datetime64("NaT"), day)),
            "credential_allowed": pd.array(~fails["BENCH-002"], dtype="boolean"),
            "allowed_days": pd.array(np.full(rows, 90), dtype="Int64"),
            "elapsed_days": pd.array(np.where(fails["BENCH-003"], 120, 30), dtype="Int64"),
            "session_date": pd.Series(session_date),
            "expires_on": pd.Series(
                np.where(
                    fails["BENCH-004"],
                    session_date - np.timedelta64(1, "D"),
                    session_date + np.timedelta64(1, "D"),
                )
            ),
            "referrer_npi": pd.array(
                np.where(
                    fails["BENCH-005"],
                    rng.choice(bad_npis, rows),
                    rng.choice(good_npis, rows),
                ),
                dtype="string",
            ),
            "icd10_code": pd.array(
                np.where(
                    fails["BENCH-006"], rng.choice(bad_codes, rows), rng.choice(good_codes, rows)
                ),
                dtype="string",
            ),
            "services": pd.array(
                np.where(fails["BENCH-007"], "physical therapy", "Medical exercise 2x/week"),
                dtype="string",
            ),
            "diagnosis_count": pd.array(np.where(fails["BENCH-008"], 0, 2), dtype="Int64"),
        }
    )
    expected = {rule_id: int(mask.sum()) for rule_id, mask in fails.items()}
    return Frame("bench_referral", "referral", data), expected


def timed(label: str, action: Callable[[], Any]) -> Any:
    """Run ``action`` and log how long it took."""
    started = time.perf_counter()
    value = action()
    log.info("%-44s %7.2f s", label, time.perf_counter() - started)
    return value


def compare_formats(frame: Frame, suite: Any) -> None:
    """The same prepared frame through GX with the result formats not picked."""
    from great_expectations.validator.v1_validator import Validator

    from metaudit.check.gx import runner

    planned = list(enumerate(suite.expectations))
    prepared = runner._frame_for_gx(frame, planned)
    with_ids = prepared.assign(entity_id=frame.data["entity_id"].to_numpy())
    formats: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {
        "SUMMARY (counts only, no ids)": (prepared, {"result_format": "SUMMARY"}),
        "COMPLETE, positions (the runner's)": (prepared, runner._RESULT_FORMAT),
        "COMPLETE, unexpected_index_column_names": (
            with_ids,
            {
                "result_format": "COMPLETE",
                "unexpected_index_column_names": ["entity_id"],
                "return_unexpected_index_query": False,
            },
        ),
        "COMPLETE, index names, exclude values": (
            with_ids,
            {
                "result_format": "COMPLETE",
                "unexpected_index_column_names": ["entity_id"],
                "return_unexpected_index_query": False,
                "exclude_unexpected_values": True,
            },
        ),
    }
    for label, (data, result_format) in formats.items():
        validator = Validator(
            batch_definition=runner._batch_definition(),
            batch_parameters={"dataframe": data},
            result_format=result_format,
        )
        result = timed(label, lambda v=validator: v.validate_expectation_suite(suite))
        size = len(json.dumps(result.to_json_dict()))
        log.info("%-44s %7.1f MB of JSON", "", size / 1e6)


def main() -> None:
    """Run the benchmark and log the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compare-formats", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("metaudit").setLevel(logging.WARNING)

    frame, expected = timed(f"build a frame of {args.rows:,} rows", lambda: build_frame(args.rows))
    timed("import great_expectations + custom expectations", _import_gx)

    from metaudit.check.gx import gx_context, load_suite, validate_family
    from metaudit.spec.icd10 import billable_codes

    timed("create the ephemeral context", gx_context)
    timed("load the ICD-10-CM code set", billable_codes)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "bench.json").write_text(json.dumps(SUITE))
        suite = timed("load the suite", lambda: load_suite("BENCH", Path(folder)))
    for run in range(args.repeat):
        validation = timed(
            f"validate_family, run {run + 1}", lambda: validate_family("BENCH", [frame], suite)
        )
    found: dict[str, int] = {}
    for failure in validation.failures:
        found[failure.rule_id] = found.get(failure.rule_id, 0) + 1
    if found != expected:
        raise SystemExit(f"wrong failures: found {found}, expected {expected}")
    stored = len(json.dumps(validation.results, allow_nan=False))
    log.info("failures: %d (as expected); stored results: %d bytes", sum(found.values()), stored)
    if args.compare_formats:
        compare_formats(frame, suite)


def _import_gx() -> None:
    import importlib

    from metaudit.check.gx import runner

    runner.quiet_gx_logging()
    importlib.import_module("metaudit.check.gx.expectations")


if __name__ == "__main__":
    main()
