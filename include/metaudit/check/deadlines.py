"""Timely-filing deadlines of the draft claims: the last day each can still be filed.

COD-009 judges a claim once it is submitted (days from its earliest service date
to ``submitted_on`` against the limit); a draft not yet submitted has no finding
yet, only a deadline: its earliest service date (among its lines in the view)
plus the timely filing limit, the policy's own ``timely_filing_days``, else the
payer setting. These are COD-009's own inputs (its ``cod_claim`` frame), so the
deadline and the rule never disagree.

The validate stage writes them beside the findings (``filing_deadlines.jsonl``),
persist stores them (read back by :func:`metaudit.results.digest.read_deadlines`), and the morning email lists those that fall within the week.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from metaudit.check.exposure import format_cents, line_money
from metaudit.paths import DEADLINES_FILE, write_atomic
from metaudit.source.quality import positions

if TYPE_CHECKING:
    from metaudit.check.view import AuditView
    from metaudit.spec.settings import Settings

DEADLINE_FIELDS = (
    "claim_id",
    "practice_id",
    "client_id",
    "earliest_service_date",
    "timely_filing_days",
    "deadline",
    "charges",
)
# derive.cod leaves its claim frame here, so the deadlines reuse what COD-009 judged.
CLAIM_FACTS_CACHE = "cod_claim_facts"


def filing_deadlines(view: AuditView, settings: Settings) -> pd.DataFrame:
    """One row per draft claim not yet submitted whose deadline is known (an earliest
    service date and a limit), by deadline then claim id; columns DEADLINE_FIELDS
    (dates as ISO text, ``charges`` integer cents of the claim's lines in the view)."""
    facts = view.cache.get(CLAIM_FACTS_CACHE)
    if facts is None:
        from metaudit.check.derive import cod

        facts = cod._claim_facts(cod._Context.build(view, settings))
    claims = view.tables["claims"]
    at = positions(claims["claim_id"], facts["entity_id"])
    # The facts are the claims of the view, found back by id (-1: none, never drafts).
    is_draft = claims["status"].eq("draft").to_numpy(dtype=bool, na_value=False)
    draft = np.append(is_draft, False)[at]
    earliest = pd.Series(facts["earliest_service_date"]).reset_index(drop=True)
    limit = pd.Series(facts["timely_filing_days"]).astype("Int64").reset_index(drop=True)
    submitted = pd.Series(facts["submitted_on"]).reset_index(drop=True)
    keep = (
        draft & submitted.isna().to_numpy() & earliest.notna().to_numpy()
    ) & limit.notna().to_numpy()
    chosen = np.flatnonzero(keep)
    deadline = earliest.iloc[chosen] + pd.to_timedelta(limit.iloc[chosen].astype("int64"), "D")
    lines = line_money(view)
    charges = lines.groupby(lines["claim_id"].astype("string"))["charge_cents"].sum()
    claim_ids = pd.Series(facts["entity_id"].astype("string").array.take(chosen))
    out = pd.DataFrame(
        {
            "claim_id": claim_ids.array,
            "practice_id": facts["practice_id"].astype("string").array.take(chosen),
            "client_id": facts["client_id"].astype("string").array.take(chosen),
            "earliest_service_date": earliest.iloc[chosen].dt.strftime("%Y-%m-%d").to_numpy(),
            "timely_filing_days": limit.iloc[chosen].astype("int64").to_numpy(),
            "deadline": deadline.dt.strftime("%Y-%m-%d").to_numpy(),
            "charges": charges.reindex(claim_ids.to_numpy(), fill_value=0).to_numpy(),
        }
    )
    return out.sort_values(["deadline", "claim_id"], kind="stable", ignore_index=True)


def write_deadlines(deadlines: pd.DataFrame, out_dir: Path) -> Path:
    """Write DIR/filing_deadlines.jsonl (atomically): money as a 2-place JSON number."""
    lines = []
    for row in deadlines.to_dict("records"):
        fields = []
        for name in DEADLINE_FIELDS:
            value = row[name]
            if name == "charges":
                text = format_cents(int(value))
            elif name == "timely_filing_days":
                text = str(int(value))
            else:
                text = json.dumps(None if pd.isna(value) else str(value), ensure_ascii=False)
            fields.append(f"{json.dumps(name)}: {text}")
        lines.append("{" + ", ".join(fields) + "}\n")
    path = out_dir / DEADLINES_FILE
    write_atomic(path, "".join(lines))
    return path
