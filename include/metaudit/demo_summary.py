"""Print where a demo run left its results and a short summary per practice.

Reads the results store (the run's per-practice status, and each practice's
digest: new, still open, resolved) and the findings files the run wrote.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import TextIO

from metaudit.orchestration import UNATTRIBUTED_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metaudit.demo_summary")
    parser.add_argument("--data", type=Path, required=True, help="the project's data folder")
    parser.add_argument("--as-of", required=True, help="the run's as-of date, YYYY-MM-DD")
    parser.add_argument("--db", type=Path, required=True, help="the demo source database")
    parser.add_argument(
        "--results-url", help="the results store (default: results.sqlite in the data folder)"
    )
    args = parser.parse_args(argv)
    return write_summary(args.data, args.as_of, args.db, args.results_url, sys.stdout)


def write_summary(data: Path, as_of: str, db: Path, results_url: str | None, out: TextIO) -> int:
    """Write the summary; 1 when the store holds no results for the date."""
    from metaudit.results import ResultsStore, default_url

    day = date.fromisoformat(as_of)
    results = data / "results" / as_of
    url = results_url or default_url(data)
    out.write(f"\nMET Audit demo, as of {as_of}\n")
    out.write(f"  source database : {db}\n")
    truth = db.with_suffix(".truth.jsonl")
    if truth.exists():
        out.write(f"  injected defects: {truth}\n")
    out.write(f"  results         : {results}\n")
    out.write(f"  results store   : {url}\n\n")

    store = ResultsStore.open(url)
    try:
        rows = store.practice_runs(day)
        if not rows:
            out.write("  no results stored for this date: see airflow_home/dags-test.log\n")
            return 1
        for row in sorted(rows, key=lambda r: (r["practice_id"] is None, r["practice_id"] or "")):
            practice_id = row["practice_id"]
            if practice_id is None:
                if row["findings"]:
                    out.write(
                        f"  without a practice (rows whose parent is missing): "
                        f"{row['findings']} findings\n      {results / UNATTRIBUTED_FILE}\n"
                    )
                continue
            if row["status"] != "success":
                out.write(f"  {practice_id}: FAILED: {row['error'] or 'see the task log'}\n")
                if not row["has_results"]:
                    continue
            findings = store.findings(day, practice_id)
            digest = store.digest(practice_id, day)
            rules = Counter(f.rule_id for f in findings)
            top = ", ".join(f"{rule} x{n}" for rule, n in rules.most_common(5))
            out.write(
                f"  {practice_id} ({digest.practice_name}): {row['findings']} findings "
                f"({row['critical']} critical, {row['warning']} warning, {row['notice']} notice); "
                f"{len(digest.new)} new, {len(digest.still_open)} still open, "
                f"{len(digest.resolved)} resolved, {len(digest.due_soon)} due within a week\n"
                f"      most frequent: {top or 'none'}\n"
                f"      {Path(row['results_dir'] or results / practice_id) / 'findings.csv'}\n"
            )
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
