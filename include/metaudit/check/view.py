"""The as-of view: what exists on the as-of date D of a run.

Records dated after D do not exist for the run, nor do records whose own date
is unknown; rows whose parent left the view leave with it; void claims and
their lines and diagnoses are left out of every rule. A rerun for an earlier D
reproduces that day's view (rulebook definitions, readings 3, 4 and 18).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from metaudit.check.frames import Frame
from metaudit.source.quality import TypedSource, is_in, is_zone
from metaudit.source.rows import positions_by
from metaudit.spec.contract import PARENT_OF, TABLES

DEFAULT_TIMEZONE = "America/New_York"
# Tables whose rows have children in PARENT_OF (children leave with them).
_PARENTS = frozenset(parent for _, parent in PARENT_OF.values())
log = logging.getLogger(__name__)


def _is_zone(zone: object) -> bool:
    """Whether zone names an IANA time zone; an unknown one falls back to the default
    (typing has named it already: DQ-003, rulebook reading 21)."""
    if is_zone(zone):
        return True
    if isinstance(zone, str):
        log.warning("unknown time zone %r in practices; using the default", zone[:64])
    return False


@dataclass
class AuditView:
    """Typed tables restricted to what exists at ``as_of``, for one set of practices."""

    as_of: pd.Timestamp
    tables: dict[str, pd.DataFrame]
    practices: pd.DataFrame
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def as_of_iso(self) -> str:
        return self.as_of.strftime("%Y-%m-%d")


def _keep_rows(frame: pd.DataFrame, keep: pd.Series) -> pd.DataFrame:
    """``frame[keep]``, column by column: each array filters itself (Arrow in native
    code), twice as fast as a DataFrame taking the rows by position."""
    mask = keep.to_numpy(dtype=bool)
    return pd.DataFrame(
        {name: frame[name].array[mask] for name in frame.columns},
        index=frame.index[mask],
        copy=False,
    )


def build_view(
    source: TypedSource,
    as_of: date | pd.Timestamp,
    practice_ids: Iterable[str] | None = None,
    default_timezone: str = DEFAULT_TIMEZONE,
    *,
    release_source: bool = False,
) -> AuditView:
    """Restrict the typed source to the as-of date and (optionally) some practices.

    With ``release_source`` each typed table leaves ``source`` as soon as its
    view is built, so a table is never held twice for longer than its filtering.
    """
    day = pd.Timestamp(as_of).normalize()
    tables: dict[str, pd.DataFrame] = {}
    # Keys of the parent rows the view left out, and the claims of left-out lines.
    gone: dict[str, list[pd.Series]] = {}
    removed_line_claims: list[pd.Series] = []
    for name, table in TABLES.items():
        frame = source.tables[name]
        if table.as_of:
            stamp = frame[table.as_of]
            keep = stamp <= day
            if table.column(table.as_of).nullable:
                # NULL is a normal state there (reading 18); an unreadable value is not.
                unreadable = source.unreadable[name][table.as_of]
                keep = keep | (stamp.isna() & ~unreadable)
            keep = keep.fillna(False).astype(bool)
            if not keep.all():
                if table.key and name in _PARENTS:
                    gone.setdefault(name, []).append(frame.loc[~keep, table.key])
                if name == "claim_lines":
                    removed_line_claims.append(frame.loc[~keep, "claim_id"])
                frame = _keep_rows(frame, keep)
        tables[name] = frame
        if release_source:
            del source.tables[name]
            source.unreadable.pop(name, None)
        del frame

    # Void claims are left out of every rule; so is a claim whose lines are all
    # after D. Only a claim that lost a line can have lost them all, so the
    # search starts from the (few) lines the view removed.
    claims = tables["claims"]
    keep = claims["status"].ne("void").fillna(True).astype(bool)
    if removed_line_claims:
        lost_some = pd.concat(removed_line_claims).drop_duplicates()
        billed = tables["claim_lines"]["claim_id"]
        still_billed = billed[is_in(billed, lost_some)]
        lost_all = lost_some[~is_in(lost_some, still_billed)]
        keep &= ~is_in(claims["claim_id"], lost_all)
    if not keep.all():
        gone.setdefault("claims", []).append(claims.loc[~keep, "claim_id"])
        tables["claims"] = _keep_rows(claims, keep)
    del claims

    # Children follow parents that left the view; a link to a row that never
    # existed (DQ-002) is not "left the view", so such a row stays.
    for name, (link, parent_name) in PARENT_OF.items():
        if parent_name in gone:
            child = tables[name]
            left = is_in(child[link], pd.concat(gone[parent_name]))
            if left.any():
                tables[name] = _keep_rows(child, ~left)
            del child

    if practice_ids is not None:
        wanted = list(practice_ids)
        for name, frame in tables.items():
            if "practice_id" in frame.columns:
                tables[name] = frame[frame["practice_id"].isin(wanted)]

    tables = {name: frame.reset_index(drop=True) for name, frame in tables.items()}
    practices = tables["practices"].copy()
    practices["timezone"] = (
        practices["timezone"]
        .map(lambda zone: zone if _is_zone(zone) else default_timezone)
        .astype("string")
    )
    return AuditView(as_of=day, tables=tables, practices=practices)


def rows_of(frame: pd.DataFrame, column: str, values: Collection[str]) -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` is one of ``values``, in the frame's order
    (index reset); the frame whole when it has no such column."""
    if column not in frame.columns:
        return frame
    keep = frame[column].isin(list(values)).fillna(False).to_numpy(bool)
    return frame.loc[keep].reset_index(drop=True)


class RowsBy:
    """The shares of many values of one column, each what :func:`rows_of` gives.

    A group's check hands each of its practices its share of every table and frame:
    scanning the whole frame once per practice cost the group's rows times its
    practices. Here each frame is grouped once (the positions of each value's rows,
    in the frame's order) and a share is one take of those positions."""

    def __init__(self, column: str) -> None:
        self.column = column
        # id(frame) -> (the frame, kept so the id stays its own; value -> positions)
        self._groups: dict[int, tuple[pd.DataFrame, dict[Any, np.ndarray]]] = {}

    def _positions(self, frame: pd.DataFrame) -> dict[Any, np.ndarray]:
        kept = self._groups.get(id(frame))
        if kept is None or kept[0] is not frame:
            kept = self._groups[id(frame)] = (frame, positions_by(frame, self.column))
        return kept[1]

    def rows(self, frame: pd.DataFrame, values: Collection[str]) -> pd.DataFrame:
        """``rows_of(frame, self.column, values)``."""
        if self.column not in frame.columns:
            return frame
        groups = self._positions(frame)
        found = [groups[value] for value in values if value in groups]
        if not found:
            return frame.iloc[:0].reset_index(drop=True)
        where = found[0] if len(found) == 1 else np.sort(np.concatenate(found))
        if len(where) and where[-1] - where[0] + 1 == len(where):
            # One run of rows (a group's partitions are concatenated practice by practice):
            # a slice, which copies nothing, where a take copies every column.
            return frame.iloc[int(where[0]) : int(where[-1]) + 1].reset_index(drop=True)
        return frame.take(where).reset_index(drop=True)


def practice_share(view: AuditView, practice_id: str, by: RowsBy | None = None) -> AuditView:
    """One practice's part of a view of several: its rows of every table that names a
    practice (in the view's order), the other tables whole; what the view built for
    that practice alone holds. Its cache starts empty. ``by`` (on ``practice_id``):
    the view's rows grouped once for the shares of all its practices."""
    own = {practice_id}
    by = by or RowsBy("practice_id")
    tables = {name: by.rows(frame, own) for name, frame in view.tables.items()}
    practices = by.rows(view.practices, own)
    return AuditView(as_of=view.as_of, tables=tables, practices=practices)


def client_share(view: AuditView, client_ids: Collection[str]) -> AuditView:
    """Some clients' part of a practice's view: their rows of every table that names a
    client, the practice's other tables (its own row, staff, providers) whole."""
    tables = {name: rows_of(frame, "client_id", client_ids) for name, frame in view.tables.items()}
    return AuditView(as_of=view.as_of, tables=tables, practices=view.practices)


def frames_share(
    frames: Iterable[Frame], column: str, values: Collection[str], by: RowsBy | None = None
) -> list[Frame]:
    """Each derived frame with only its rows whose ``column`` is one of ``values``
    (``by``: those frames' rows grouped on ``column`` once for many shares)."""
    if by is None:
        return [replace(frame, data=rows_of(frame.data, column, values)) for frame in frames]
    if by.column != column:
        raise ValueError(f"rows grouped by {by.column!r}, not {column!r}")
    return [replace(frame, data=by.rows(frame.data, values)) for frame in frames]
