"""The as-of view: what exists on the as-of date D of a run.

Records dated after D do not exist for the run, nor do records whose own date
is unknown; rows whose parent left the view leave with it; void claims and
their lines and diagnoses are left out of every rule. A rerun for an earlier D
reproduces that day's view (rulebook definitions, readings 3, 4 and 18).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from metaudit.contract import PARENT_OF, TABLES
from metaudit.quality import TypedSource

DEFAULT_TIMEZONE = "America/New_York"
log = logging.getLogger(__name__)


def _is_zone(zone: object) -> bool:
    """Whether zone names an IANA time zone; an unknown one falls back to the default."""
    if not isinstance(zone, str):
        return False
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r in practices; using the default", zone)
        return False
    return True


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


def build_view(
    source: TypedSource,
    as_of: date | pd.Timestamp,
    practice_ids: Iterable[str] | None = None,
    default_timezone: str = DEFAULT_TIMEZONE,
) -> AuditView:
    """Restrict the typed source to the as-of date and (optionally) some practices."""
    day = pd.Timestamp(as_of).normalize()
    tables: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        frame = source.tables[name]
        if table.as_of:
            stamp = frame[table.as_of]
            keep = stamp <= day
            if table.column(table.as_of).nullable:
                # NULL is a normal state there (reading 18); an unreadable value is not.
                unreadable = source.unreadable[name][table.as_of]
                keep = keep | (stamp.isna() & ~unreadable)
            frame = frame[keep.fillna(False).astype(bool)]
        tables[name] = frame

    # Void claims are left out of every rule; so is a claim whose lines are all after D.
    claims = tables["claims"]
    all_lines = source.tables["claim_lines"]
    lines_in_view = tables["claim_lines"]
    has_lines = claims["claim_id"].isin(all_lines["claim_id"])
    has_lines_in_view = claims["claim_id"].isin(lines_in_view["claim_id"])
    live = claims["status"].ne("void").fillna(True).astype(bool)
    tables["claims"] = claims[live & (has_lines_in_view | ~has_lines)]

    # Children follow parents that left the view; a link to a row that never
    # existed (DQ-002) is not "left the view", so such a row stays.
    for name, (link, parent_name) in PARENT_OF.items():
        key = TABLES[parent_name].key
        assert key is not None
        gone = pd.Index(source.tables[parent_name][key]).difference(
            pd.Index(tables[parent_name][key])
        )
        if len(gone):
            child = tables[name]
            tables[name] = child[~child[link].isin(gone)]

    if practice_ids is not None:
        wanted = list(practice_ids)
        for name, frame in tables.items():
            if "practice_id" in frame.columns:
                tables[name] = frame[frame["practice_id"].isin(wanted)]

    tables = {name: frame.reset_index(drop=True) for name, frame in tables.items()}
    practices = tables["practices"].copy()
    practices["timezone"] = practices["timezone"].map(
        lambda zone: zone if _is_zone(zone) else default_timezone
    ).astype("string")
    return AuditView(as_of=day, tables=tables, practices=practices)
