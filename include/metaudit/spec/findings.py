"""The findings format fixed by the interfaces: fields, order, fingerprint, files."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metaudit.paths import write_atomic
from metaudit.spec.rulebook import SEVERITY_ORDER

FIELDS = (
    "as_of",
    "practice_id",
    "rule_id",
    "severity",
    "entity_type",
    "entity_id",
    "client_id",
    "message",
    "due_date",
    "fingerprint",
)
# Sorting rank of a severity: the rulebook's order (critical first).
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITY_ORDER)}


@dataclass(frozen=True)
class Finding:
    """One rule failing for one entity on one as-of date."""

    as_of: str
    practice_id: str | None
    rule_id: str
    severity: str
    entity_type: str
    entity_id: str
    client_id: str | None
    message: str
    due_date: str | None = None

    @property
    def fingerprint(self) -> str:
        return f"{self.rule_id}|{self.entity_type}|{self.entity_id}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fingerprint"] = self.fingerprint
        return {name: data[name] for name in FIELDS}

    def sort_key(self) -> tuple[Any, ...]:
        # Nulls last, then code-point order (rulebook reading 17).
        return (
            self.practice_id is None,
            self.practice_id or "",
            SEVERITY_RANK[self.severity],
            self.rule_id,
            self.entity_id,
            self.entity_type,
        )


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Sorted per the interfaces, one finding per (practice_id, fingerprint)."""
    unique: dict[tuple[str | None, str], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.practice_id, finding.fingerprint), finding)
    return sorted(unique.values(), key=Finding.sort_key)


def to_jsonl(findings: Iterable[Finding]) -> str:
    return "".join(
        json.dumps(f.to_dict(), ensure_ascii=False, sort_keys=False) + "\n" for f in findings
    )


# A spreadsheet runs a cell that begins with one of these as a formula (OWASP, "CSV
# Injection"); text from a source record may begin so.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string that begins like a formula gets a
    leading ``'`` (the value stays readable; JSON outputs keep the exact value). Numbers
    are left as they are: ``-3`` is a number, not a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(findings: Iterable[Finding]) -> str:
    """Findings as CSV (the columns of the JSONL, header row), cells neutralised."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for finding in findings:
        row = finding.to_dict()
        writer.writerow({k: "" if v is None else csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def write_findings(findings: Iterable[Finding], out_dir: Path) -> tuple[Path, Path]:
    """Write DIR/findings.jsonl and DIR/findings.csv (sorted, deduplicated)."""
    ordered = sort_findings(findings)
    jsonl_path = out_dir / "findings.jsonl"
    csv_path = out_dir / "findings.csv"
    write_atomic(jsonl_path, to_jsonl(ordered))
    write_atomic(csv_path, to_csv(ordered))
    return jsonl_path, csv_path


def read_findings(path: Path) -> list[Finding]:
    """Read a findings.jsonl file back into Finding objects."""
    findings = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            data = json.loads(line)
            data.pop("fingerprint", None)
            findings.append(Finding(**data))
    return findings
