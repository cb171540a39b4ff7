"""A frame's rows grouped by the value of one of its columns.

A low-level module: it imports nothing of the project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


# Below this many rows, grouping or ordering rows in Python costs less than pandas' calls.
SMALL_FRAME = 1000


def positions_by(frame: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """Each value of ``column`` (as text) and the positions of its rows in ``frame``,
    ascending; rows without a value are in no group. One stable sort of the values'
    codes: a groupby's ``indices`` cost several times more, most of it in taking each key
    out of an Arrow-backed column one at a time."""
    import numpy as np
    import pandas as pd

    if column not in frame.columns or not len(frame):
        return {}
    if len(frame) <= SMALL_FRAME:
        # A few rows (a client's share): one pass in Python costs less than the sort's
        # calls into pandas; the same groups, in the same order (of first appearance).
        values = frame[column]
        if not isinstance(values.dtype, pd.StringDtype):
            values = values.astype("string")
        groups: dict[str, list[int]] = {}
        for position, value in enumerate(values.tolist()):
            if value is not pd.NA:
                groups.setdefault(str(value), []).append(position)
        return {key: np.array(rows, dtype=np.intp) for key, rows in groups.items()}
    codes, uniques = pd.factorize(frame[column].astype("string"))
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    ranks = np.arange(len(uniques))
    starts = np.searchsorted(ordered, ranks, side="left").tolist()
    ends = np.searchsorted(ordered, ranks, side="right").tolist()
    return {
        str(key): order[start:end]
        for key, start, end in zip(uniques.tolist(), starts, ends, strict=True)
    }
