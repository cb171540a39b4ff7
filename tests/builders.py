"""Records built for the rule tests: one fully compliant client, and a way to audit them.

``clean_records()`` returns one practice (PR-1) with one active client (CL-1)
whose every record satisfies all 50 rules at ``AS_OF``. A rule test mutates a
copy to make exactly one rule fire, runs ``audit`` and asserts the findings.

Also here: what several test modules share (``ids``/``by_id``/``only`` over findings, a client
without sessions, and ``demo_source_fixture``, the orchestration tests' demo source).

Timeline of CL-1 (2026): referral 01-05 (valid to 07-05), eligibility 01-05,
PT discharge 2025-12-15, intake 01-08, initial assessment 01-10 with the plan
of exercise, sessions 01-12, 02-10, 03-12 and 03-30 (a fifth on 04-02 lies
after AS_OF), reassessments 02-09 and 03-11 each followed by a progress report,
claims CLM-1..3 (paid, paid, submitted) and a draft CLM-4.
"""

from __future__ import annotations

import copy
import sqlite3
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from metaudit.demo import GenerationReport

AS_OF = date(2026, 3, 31)

# Valid NPIs (Luhn over 80840 + the first nine digits).
NPI_PRACTICE = "1234567893"
NPI_STAFF = "1987654328"
NPI_PROVIDER = "1456789019"
NPI_PROVIDER_2 = "1122334455"
NPI_OTHER = "2876543218"

Records = dict[str, list[dict[str, Any]]]
Finding = dict[str, Any]

SESSION_DATES = {
    "S-1": date(2026, 1, 12),
    "S-2": date(2026, 2, 10),
    "S-3": date(2026, 3, 12),
    "S-4": date(2026, 3, 30),
    "S-5": date(2026, 4, 2),  # after AS_OF: does not exist for the run
}


def clean_records() -> Records:
    """A fresh, fully compliant record set (a deep copy each call)."""
    return copy.deepcopy(_CLEAN)


def _session(session_id: str) -> dict[str, Any]:
    day = SESSION_DATES[session_id]
    return {
        "session_id": session_id,
        "client_id": "CL-1",
        "staff_id": "ST-1",
        "session_date": day,
        "status": "completed",
        "timed_minutes": 45,
        "client_response": "Tolerated the progression well",
        "notes": "Completed the full program.",
        "signed_at": datetime(day.year, day.month, day.day, 15, 0, 0).isoformat() + "Z",
    }


def _claim(claim_id: str, submitted: date | None, status: str) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "client_id": "CL-1",
        "policy_id": "POL-1",
        "billing_npi": NPI_PRACTICE,
        "rendering_staff_id": "ST-1",
        "submitted_on": submitted,
        "status": status,
        "denied_on": None,
        "appealed_on": None,
        "total_charge": 150.0,
        "paid_amount": 120.0 if status == "paid" else None,
    }


def _lines(claim_id: str, session_id: str, first_line: int) -> list[dict[str, Any]]:
    day = SESSION_DATES[session_id]
    base = {
        "claim_id": claim_id,
        "service_date": day,
        "modifiers": None,
        "diagnosis_pointers": "A",
    }
    return [
        {
            **base,
            "line_id": f"L-{first_line}",
            "line_no": 1,
            "cpt_code": "97110",
            "units": 2,
            "charge": 100.0,
        },
        {
            **base,
            "line_id": f"L-{first_line + 1}",
            "line_no": 2,
            "cpt_code": "97530",
            "units": 1,
            "charge": 50.0,
        },
    ]


_CLAIMS = [
    ("CLM-1", "S-1", date(2026, 1, 15), "paid"),
    ("CLM-2", "S-2", date(2026, 2, 12), "paid"),
    ("CLM-3", "S-3", date(2026, 3, 13), "submitted"),
    ("CLM-4", "S-4", None, "draft"),
]

_CLEAN: Records = {
    "practices": [
        {
            "practice_id": "PR-1",
            "name": "Riverside Medical Exercise",
            "organization_npi": NPI_PRACTICE,
            "timezone": "America/New_York",
        },
    ],
    "staff": [
        {
            "staff_id": "ST-1",
            "practice_id": "PR-1",
            "full_name": "Morgan Lee",
            "npi": NPI_STAFF,
            "credential": "MES",
            "certification_expires_on": date(2027, 12, 31),
            "active": True,
        },
    ],
    "providers": [
        {
            "provider_id": "PV-1",
            "full_name": "Dr. Avery Stone",
            "credential": "MD",
            "npi": NPI_PROVIDER,
        },
    ],
    "clients": [
        {
            "client_id": "CL-1",
            "practice_id": "PR-1",
            "first_name": "Jane",
            "last_name": "Quigley",
            "date_of_birth": date(1958, 5, 1),
            "status": "active",
        },
    ],
    "insurance_policies": [
        {
            "policy_id": "POL-1",
            "client_id": "CL-1",
            "payer_name": "Acme Health",
            "plan_type": "commercial",
            "member_id": "M-100",
            "network_status": "in_network",
            "oon_benefits": False,
            "requires_preauth": True,
            "timely_filing_days": 90,
            "unit_rule": "cms",
            "effective_from": date(2025, 1, 1),
            "effective_to": None,
        },
    ],
    "eligibility_checks": [
        {
            "check_id": "EC-1",
            "policy_id": "POL-1",
            "checked_on": date(2026, 1, 5),
            "status": "active",
            "reference_number": "ELG-778",
        },
    ],
    "authorizations": [
        {
            "authorization_id": "AU-1",
            "policy_id": "POL-1",
            "auth_number": "PA-5521",
            "start_date": date(2026, 1, 1),
            "end_date": date(2026, 6, 30),
            "approved_visits": 40,
        },
    ],
    "rehab_discharges": [
        {
            "discharge_id": "RD-1",
            "client_id": "CL-1",
            "discipline": "PT",
            "discharge_date": date(2025, 12, 15),
            "reason": "max_benefit",
        },
    ],
    "conditions": [
        {
            "condition_id": "CO-1",
            "client_id": "CL-1",
            "category": "post_surgical",
            "icd10_code": "M17.11",
            "description": "Right knee osteoarthritis after arthroscopy",
        },
    ],
    "referrals": [
        {
            "referral_id": "RF-1",
            "client_id": "CL-1",
            "provider_id": "PV-1",
            "supervising_provider_id": None,
            "referral_date": date(2026, 1, 5),
            "signed_on": date(2026, 1, 5),
            "valid_until": date(2026, 7, 5),
            "services_requested": "Medical exercise training, 2x per week",
        },
    ],
    "referral_diagnoses": [
        {"referral_id": "RF-1", "seq": 1, "icd10_code": "M17.11"},
    ],
    "intake_forms": [
        {
            "intake_id": "IN-1",
            "client_id": "CL-1",
            "form_name": "MET-Q",
            "completed_on": date(2026, 1, 8),
            "health_history_complete": True,
            "emergency_contact_name": "Sam Quigley",
            "emergency_contact_phone": "555-0100",
            "consent_signed_on": date(2026, 1, 8),
            "waiver_signed_on": date(2026, 1, 8),
        },
    ],
    "assessments": [
        {
            "assessment_id": "AS-1",
            "client_id": "CL-1",
            "staff_id": "ST-1",
            "assessed_on": date(2026, 1, 10),
            "kind": "initial",
            "rom_documented": True,
            "strength_documented": True,
            "posture_documented": True,
            "functional_deficits": "Slow gait; needs a handrail on stairs",
            "notes": "Baseline measures taken.",
            "signed_on": date(2026, 1, 10),
        },
        {
            "assessment_id": "AS-2",
            "client_id": "CL-1",
            "staff_id": "ST-1",
            "assessed_on": date(2026, 2, 9),
            "kind": "reassessment",
            "rom_documented": True,
            "strength_documented": True,
            "posture_documented": True,
            "functional_deficits": "Stairs still need a handrail",
            "notes": "Progressing as planned.",
            "signed_on": date(2026, 2, 9),
        },
        {
            "assessment_id": "AS-3",
            "client_id": "CL-1",
            "staff_id": "ST-1",
            "assessed_on": date(2026, 3, 11),
            "kind": "reassessment",
            "rom_documented": True,
            "strength_documented": True,
            "posture_documented": True,
            "functional_deficits": "Stairs without a handrail, slowly",
            "notes": "Progressing as planned.",
            "signed_on": date(2026, 3, 11),
        },
    ],
    "outcome_measures": [
        {
            "measure_id": "OM-1",
            "assessment_id": "AS-1",
            "instrument": "TUG",
            "value": 14.0,
            "unit": "s",
        },
        {
            "measure_id": "OM-2",
            "assessment_id": "AS-1",
            "instrument": "GRIP",
            "value": 20.0,
            "unit": "kg",
        },
        {
            "measure_id": "OM-3",
            "assessment_id": "AS-2",
            "instrument": "TUG",
            "value": 12.5,
            "unit": "s",
        },
        {
            "measure_id": "OM-4",
            "assessment_id": "AS-2",
            "instrument": "GRIP",
            "value": 22.0,
            "unit": "kg",
        },
        {
            "measure_id": "OM-5",
            "assessment_id": "AS-3",
            "instrument": "TUG",
            "value": 11.0,
            "unit": "s",
        },
        {
            "measure_id": "OM-6",
            "assessment_id": "AS-3",
            "instrument": "GRIP",
            "value": 24.0,
            "unit": "kg",
        },
    ],
    "plans_of_exercise": [
        {
            "poe_id": "POE-1",
            "client_id": "CL-1",
            "assessment_id": "AS-1",
            "start_date": date(2026, 1, 10),
            "end_date": None,
            "frequency_per_week": 2,
            "duration_weeks": 12,
            "intensity": "Moderate, RPE 12-13",
            "progression": "Add 5% load every two weeks",
            "signed_on": date(2026, 1, 10),
        },
    ],
    "poe_exercises": [
        {
            "poe_id": "POE-1",
            "exercise_name": "Sit to stand",
            "sets": 3,
            "reps": 10,
            "intensity": "bodyweight",
        },
        {
            "poe_id": "POE-1",
            "exercise_name": "Step-ups",
            "sets": 3,
            "reps": 8,
            "intensity": "15 cm step",
        },
    ],
    "goals": [
        {
            "goal_id": "G-1",
            "poe_id": "POE-1",
            "term": "short",
            "description": "Faster Timed Up and Go",
            "instrument": "TUG",
            "target_value": 12.0,
            "target_date": date(2026, 2, 28),
        },
        {
            "goal_id": "G-2",
            "poe_id": "POE-1",
            "term": "long",
            "description": "Stronger grip",
            "instrument": "GRIP",
            "target_value": 26.0,
            "target_date": date(2026, 4, 30),
        },
    ],
    "sessions": [_session(s) for s in SESSION_DATES],
    "session_exercises": [
        row
        for s in SESSION_DATES
        for row in (
            {
                "session_id": s,
                "exercise_name": "Sit to stand",
                "sets": 3,
                "reps": 10,
                "intensity": "bodyweight",
            },
            {
                "session_id": s,
                "exercise_name": "Step-ups",
                "sets": 3,
                "reps": 8,
                "intensity": "15 cm step",
            },
        )
    ],
    "session_services": [
        row
        for s in SESSION_DATES
        for row in (
            {"session_id": s, "cpt_code": "97110", "minutes": 30},
            {"session_id": s, "cpt_code": "97530", "minutes": 15},
        )
    ],
    "progress_reports": [
        {
            "report_id": "PRR-1",
            "client_id": "CL-1",
            "assessment_id": "AS-2",
            "provider_id": "PV-1",
            "sent_on": date(2026, 2, 12),
        },
        {
            "report_id": "PRR-2",
            "client_id": "CL-1",
            "assessment_id": "AS-3",
            "provider_id": "PV-1",
            "sent_on": date(2026, 3, 13),
        },
    ],
    "claims": [_claim(c, submitted, status) for c, _, submitted, status in _CLAIMS],
    "claim_diagnoses": [
        {"claim_id": c, "pointer": "A", "icd10_code": "M17.11"} for c, *_ in _CLAIMS
    ],
    "claim_lines": [
        line for i, (c, s, *_rest) in enumerate(_CLAIMS) for line in _lines(c, s, 2 * i + 1)
    ],
}


def _to_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if value is None:
        return None
    return str(value)


def write_records(records: Records, url: str, *, typed: bool = False) -> str:
    """Write the records into a contract-shaped database at ``url``.

    ``typed=False`` (the default) makes text columns without key constraints, so a test
    can store garbage values and duplicated ids; ``typed=True`` uses real SQL types.
    """
    import sqlalchemy as sa

    from metaudit.spec.contract import TABLES, TIMESTAMP, Column
    from metaudit.spec.schema import create_schema, insert_rows

    def convert(value: Any, column: Column) -> Any:
        if not typed:
            return _to_text(value)
        if column.type == TIMESTAMP and isinstance(value, str):
            return datetime.fromisoformat(value)
        return value

    engine = sa.create_engine(url)
    try:
        metadata = create_schema(engine, typed=typed, with_keys=typed)
        rows = {
            name: [
                {c.name: convert(row.get(c.name), c) for c in TABLES[name].columns}
                for row in records.get(name, [])
            ]
            for name in TABLES
        }
        insert_rows(engine, metadata, rows)
    finally:
        engine.dispose()
    return url


def audit_view(records: Records, as_of: date = AS_OF) -> Any:
    """The records typed and as the rules see them on ``as_of`` (an AuditView)."""
    import pandas as pd

    from metaudit.check.view import build_view
    from metaudit.source.quality import type_source
    from metaudit.spec.contract import TABLES

    raw = {
        name: pd.DataFrame(
            [
                {c.name: _to_text(row.get(c.name)) for c in table.columns}
                for row in records.get(name, [])
            ],
            columns=list(table.column_names),
            dtype=object,
        )
        for name, table in TABLES.items()
    }
    typed = type_source(raw, as_of.isoformat())
    return build_view(typed, as_of)


def write_sqlite(records: Records, path: Path) -> Path:
    """Write the records to a contract-shaped SQLite file (text columns, no key constraints)."""
    write_records(records, f"sqlite:///{path}")
    return path


def audit(records: Records, as_of: date = AS_OF, settings: Any = None) -> list[Finding]:
    """Run the whole check over the records and return the findings as dicts."""
    from metaudit.check.engine import run_check

    with tempfile.TemporaryDirectory() as tmp:
        path = write_sqlite(records, Path(tmp) / "source.sqlite")
        result = run_check(path, as_of=as_of, settings=settings)
    return [f.to_dict() for f in result.findings]


def findings_for(
    records: Records, rule_id: str, as_of: date = AS_OF, settings: Any = None
) -> set[str]:
    """The entity ids of one rule's findings."""
    return {f["entity_id"] for f in audit(records, as_of, settings) if f["rule_id"] == rule_id}


def find(records: Records, table: str, **match: Any) -> dict[str, Any]:
    """The first row of ``table`` whose columns equal ``match`` (for mutating in tests)."""
    for row in records[table]:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    raise KeyError(f"no {table} row with {match}")


def ids(findings: list[Finding], rule_id: str) -> set[str]:
    """Entity ids of one rule's findings."""
    return {f["entity_id"] for f in findings if f["rule_id"] == rule_id}


def by_id(findings: list[Finding], rule_id: str) -> dict[str, Finding]:
    """One rule's findings keyed by entity id."""
    return {f["entity_id"]: f for f in findings if f["rule_id"] == rule_id}


def only(findings: list[Finding], rule_id: str) -> Finding:
    """The single finding of a rule."""
    hits = [f for f in findings if f["rule_id"] == rule_id]
    assert len(hits) == 1, hits
    return hits[0]


def add_client_without_sessions(records: Records) -> None:
    """A second client CL-2 of PR-1 with no sessions, policies or assessments."""
    records["clients"].append(
        {
            "client_id": "CL-2",
            "practice_id": "PR-1",
            "first_name": "Lee",
            "last_name": "Park",
            "date_of_birth": date(1960, 2, 2),
            "status": "active",
        }
    )


# A completed session whose client does not exist: its finding names no practice, so it
# must stay out of every practice's partition, results and packet.
ORPHAN_SESSION = "SE99999999"


def demo_source_fixture(*, as_of: date, sessions: int, practices: int) -> Any:
    """A module-scoped fixture ``demo``: a demo practice network with every injected defect,
    plus ORPHAN_SESSION (an existing session's row copied under client CL-GONE).

    The source of the orchestration tests (the DAG's tasks as plain functions, and
    ``dag.test()`` of the nightly DAG), which differ only in its size. Use it as
    ``demo = demo_source_fixture(...)`` at module level.
    """

    @pytest.fixture(scope="module")
    def demo(tmp_path_factory: pytest.TempPathFactory) -> GenerationReport:
        from metaudit.demo import generate

        report = generate(
            str(tmp_path_factory.mktemp("demo") / "practice.sqlite"),
            as_of=as_of,
            sessions=sessions,
            practices=practices,
            progress=False,
        )
        assert report.database is not None
        with sqlite3.connect(report.database) as conn:
            conn.execute(
                "INSERT INTO sessions SELECT ?, 'CL-GONE', staff_id, session_date, status, "
                "timed_minutes, client_response, notes, signed_at FROM sessions LIMIT 1",
                (ORPHAN_SESSION,),
            )
        return report

    return demo


def write_signed_packet(
    packets_dir: Path, practice_id: str, as_of: str, client_id: str | None, key: bytes
) -> Path:
    """A small, correctly signed packet at its place in ``packets_dir`` (client packet, or
    the practice packet of the month when ``client_id`` is None), without running a check."""
    from metaudit.packets.archive import zip_bytes
    from metaudit.packets.layout import client_packet_path, practice_packet_path
    from metaudit.packets.signing import build_manifest, manifest_bytes

    files = {
        "cover.pdf": f"%PDF cover of {client_id or 'the practice'}".encode(),
        "findings.csv": f"as_of,practice_id\n{as_of},{practice_id}\n".encode(),
    }
    manifest = build_manifest(
        files,
        kind="client" if client_id else "practice",
        as_of=as_of,
        practice_id=practice_id,
        client_id=client_id,
        key=key,
    )
    files["manifest.json"] = manifest_bytes(manifest)
    if client_id is None:
        path = practice_packet_path(packets_dir, practice_id, as_of)
    else:
        path = client_packet_path(packets_dir, practice_id, as_of, client_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(files, date.fromisoformat(as_of)))
    return path


def zip_entries(path: Path) -> dict[str, bytes]:
    """Every entry of a zip (a packet) by name."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
