"""The shares of a view by practice or client: grouped once (RowsBy), each share exactly
what filtering the whole frame for it gives (rows, order, dtypes, index)."""

from __future__ import annotations

import pandas as pd
import pytest

from metaudit.check.frames import Frame
from metaudit.check.view import RowsBy, frames_share, rows_of


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "practice_id": pd.array(["P2", "P1", None, "P2", "P3", "P1"], dtype="string"),
            "client_id": pd.Categorical(["c1", "c2", "c3", "c1", "c4", None]),
            "minutes": pd.array([10, None, 30, 40, 50, 60], dtype="Int64"),
            "when": pd.to_datetime(
                ["2026-01-01", None, "2026-01-03", "2026-01-04", None, "2026-01-06"]
            ),
        },
        index=[7, 3, 9, 1, 4, 2],
    )


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("practice_id", {"P1"}),
        ("practice_id", {"P2"}),
        ("practice_id", {"P1", "P3"}),
        ("practice_id", {"P9"}),
        ("practice_id", set()),
        ("client_id", {"c1", "c4"}),
        ("client_id", {"c2"}),
    ],
)
def test_a_share_is_what_filtering_the_whole_frame_gives(
    frame: pd.DataFrame, column: str, values: set[str]
) -> None:
    by = RowsBy(column)
    pd.testing.assert_frame_equal(by.rows(frame, values), rows_of(frame, column, values))
    # Asked again (grouped already): the same.
    pd.testing.assert_frame_equal(by.rows(frame, values), rows_of(frame, column, values))


def test_a_frame_without_the_column_is_whole(frame: pd.DataFrame) -> None:
    other = frame.drop(columns=["practice_id"])
    assert RowsBy("practice_id").rows(other, {"P1"}) is other


def test_an_empty_frame_gives_an_empty_share(frame: pd.DataFrame) -> None:
    empty = frame.iloc[:0]
    pd.testing.assert_frame_equal(
        RowsBy("practice_id").rows(empty, {"P1"}), rows_of(empty, "practice_id", {"P1"})
    )


def test_frames_share_groups_each_frame_once_and_refuses_another_column(
    frame: pd.DataFrame,
) -> None:
    frames = [Frame("a", "x", frame), Frame("b", "x", frame.iloc[::-1])]
    by = RowsBy("practice_id")
    for practice in ("P1", "P2", "P3"):
        shared = frames_share(frames, "practice_id", {practice}, by)
        alone = frames_share(frames, "practice_id", {practice})
        for got, want in zip(shared, alone, strict=True):
            pd.testing.assert_frame_equal(got.data, want.data)
    with pytest.raises(ValueError, match="grouped by 'practice_id'"):
        frames_share(frames, "client_id", {"c1"}, by)
