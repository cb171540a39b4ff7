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


def test_a_few_rows_are_grouped_as_many_are(monkeypatch) -> None:
    # Below SMALL_FRAME rows the groups are made in Python: the same keys, in the same
    # order, the same positions (and their dtype) as the sort of the codes gives.
    from metaudit.source import rows

    rng = np.random.default_rng(7)
    for count in (1, 2, 17, 300):
        frame = pd.DataFrame(
            {
                "client_id": pd.array(
                    rng.choice(["CL1", "CL2", "CL10", None, "é"], count).tolist(), dtype="string"
                ),
                "number": pd.array(rng.choice([1, 2, None], count).tolist(), dtype="Int64"),
            }
        )
        for column in ("client_id", "number"):
            few = positions_by(frame, column)
            monkeypatch.setattr(rows, "SMALL_FRAME", 0)
            many = positions_by(frame, column)
            monkeypatch.undo()
            assert list(few) == list(many)
            for key, found in few.items():
                assert found.dtype == many[key].dtype
                assert np.array_equal(found, many[key])
