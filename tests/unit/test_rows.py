"""Rows grouped by a column's value: what a groupby's indices give, in one sort."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metaudit.source.rows import positions_by


def test_positions_follow_the_values_and_leave_rows_without_one_out() -> None:
    frame = pd.DataFrame(
        {"client_id": pd.array(["CL2", "CL1", None, "CL2", "CL1", "CL3"], dtype="string")}
    )
    found = positions_by(frame, "client_id")
    assert list(found) == ["CL2", "CL1", "CL3"]  # first seen first
    assert {k: v.tolist() for k, v in found.items()} == {
        "CL2": [0, 3],
        "CL1": [1, 4],
        "CL3": [5],
    }
    expected = frame.groupby("client_id", sort=False, dropna=True).indices
    assert all(np.array_equal(found[str(k)], v) for k, v in expected.items())


def test_a_missing_column_or_no_rows_gives_no_groups() -> None:
    assert positions_by(pd.DataFrame({"x": [1]}), "client_id") == {}
    assert (
        positions_by(pd.DataFrame({"client_id": pd.array([], dtype="string")}), "client_id") == {}
    )
