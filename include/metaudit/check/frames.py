"""The unit that Great Expectations validates: one row per entity of one kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Columns every derived frame carries before its fact columns.
ID_COLUMNS = ("entity_id", "practice_id", "client_id")


@dataclass(frozen=True)
class Frame:
    """A derived frame: ``name`` is unique in the project (``ref_referral``),
    ``entity_type`` is the rulebook's entity (``referral``), and ``data`` has one
    row per entity with ``entity_id``, ``practice_id``, ``client_id`` and facts.
    """

    name: str
    entity_type: str
    data: pd.DataFrame
