"""Print where a demo run left its results and a short summary per practice."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metaudit.demo_summary")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args(argv)

    results = args.data / "results" / args.as_of
    practice_dirs = sorted(p for p in results.glob("*") if (p / "findings.jsonl").exists())
    out = sys.stdout
    out.write(f"\nMET Audit demo, as of {args.as_of}\n")
    out.write(f"  source database : {args.db}\n")
    truth = args.db.with_suffix(".truth.jsonl")
    if truth.exists():
        out.write(f"  injected defects: {truth}\n")
    out.write(f"  results         : {results}\n\n")
    if not practice_dirs:
        out.write("  no practice results found: see airflow_home/dags-test.log\n")
        return 1
    for folder in practice_dirs:
        lines = (folder / "findings.jsonl").read_text(encoding="utf-8").splitlines()
        findings = [json.loads(line) for line in lines if line.strip()]
        severities = Counter(f["severity"] for f in findings)
        rules = Counter(f["rule_id"] for f in findings)
        top = ", ".join(f"{rule} x{n}" for rule, n in rules.most_common(5))
        out.write(
            f"  {folder.name}: {len(findings)} findings "
            f"({severities['critical']} critical, {severities['warning']} warning, "
            f"{severities['notice']} notice); most frequent: {top or 'none'}\n"
            f"      {folder / 'findings.csv'}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
