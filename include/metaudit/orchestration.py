"""What the Airflow tasks call: plain functions, testable without a scheduler.

The DAG passes only ids and paths between tasks (XCom is neither secret nor
meant for data); every function here is idempotent and keyed by as-of date and
practice, writing its files atomically under the results folder.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"


def data_dir() -> Path:
    """The project's data folder (METAUDIT_DATA_DIR overrides it)."""
    return Path(os.environ.get("METAUDIT_DATA_DIR", DEFAULT_DATA_DIR))


def resolve_as_of(param: str | None, run_date: date) -> date:
    """The as-of date of a run: the trigger form's value, else the run's date."""
    if param:
        try:
            return date.fromisoformat(str(param))
        except ValueError as exc:
            from metaudit.errors import SettingsError

            raise SettingsError(f"as_of must be a date YYYY-MM-DD, got {param!r}") from exc
    return run_date


def sqlalchemy_url_from_connection(conn: Any) -> str:
    """A SQLAlchemy URL from an Airflow connection.

    ``extra.sqlalchemy_url`` wins when set (any dialect); otherwise the URL is
    built from the connection's type and fields (postgres, mysql, sqlite), so an
    admin can fill the usual Airflow form.
    """
    import sqlalchemy as sa

    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        return str(sa.URL.create("sqlite", database=conn.host or conn.schema))
    drivers = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
    if conn_type not in drivers:
        from metaudit.errors import SourceUnavailableError

        raise SourceUnavailableError(
            f"connection {conn.conn_id!r} has type {conn_type!r}; use postgres, mysql or sqlite, "
            "or set extra.sqlalchemy_url"
        )
    url = sa.URL.create(
        drivers[conn_type],
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)


def list_practices(source: str, wanted: list[str] | None = None) -> list[str]:
    """The practice ids to audit: all in the source, or the wanted ones (unknown ids refused)."""
    from metaudit.errors import SettingsError
    from metaudit.source import read_tables

    raw = read_tables(source, tables=["practices"]).tables["practices"]
    present = sorted({p.strip() for p in raw["practice_id"].dropna().astype(str) if p.strip()})
    if not wanted:
        return present
    unknown = sorted(set(wanted) - set(present))
    if unknown:
        raise SettingsError(f"practice_ids not in the source: {', '.join(unknown)}")
    return sorted(set(wanted))


@dataclass
class PracticeAudit:
    """What one practice's audit left on disk (paths only, fit for XCom)."""

    practice_id: str
    as_of: str
    out_dir: str
    findings: int
    by_severity: dict[str, int]


def audit_practice(
    source: str, practice_id: str, as_of: date, out_root: Path | None = None, config: str | None = None
) -> dict[str, Any]:
    """Run the rulebook for one practice and write its findings and GX results."""
    from metaudit.engine import run_check
    from metaudit.findings import write_atomic, write_findings
    from metaudit.settings import Settings

    settings = Settings.load(config)
    result = run_check(source, as_of=as_of, practice_ids=[practice_id], settings=settings)
    out_dir = (out_root or data_dir() / "results") / result.as_of / _safe(practice_id)
    write_findings(result.findings, out_dir)
    for family, validation in result.validations.items():
        write_atomic(
            out_dir / "validation" / f"{family.lower()}.json",
            json.dumps(validation.results, indent=1, sort_keys=True, allow_nan=False),
        )
    counts: dict[str, int] = {}
    for finding in result.findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    audit = PracticeAudit(practice_id, result.as_of, str(out_dir), len(result.findings), counts)
    log.info("practice %s as of %s: %d findings %s", practice_id, result.as_of, audit.findings, counts)
    return asdict(audit)


def summarize(audits: list[dict[str, Any]]) -> str:
    """A short per-practice summary of a run, for logs and the demo."""
    lines = []
    for audit in sorted(audits, key=lambda a: a["practice_id"]):
        counts = audit["by_severity"]
        lines.append(
            f"{audit['practice_id']}: {audit['findings']} findings "
            f"({counts.get('critical', 0)} critical, {counts.get('warning', 0)} warning, "
            f"{counts.get('notice', 0)} notice) -> {audit['out_dir']}"
        )
    return "\n".join(lines)


def _safe(practice_id: str) -> str:
    """A folder name for a practice id (ids are not PHI, but may hold odd characters)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in practice_id)
    return cleaned.strip(".") or "_"
