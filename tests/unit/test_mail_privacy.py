"""Minimum necessary: the email of a real audit of the demo network names records by id only.

The demo generator writes clients with names, dates of birth, diagnoses and
notes; the audit finds its injected defects; every email built from those
findings (HTML, text, the SendGrid payload and the .eml) must hold none of it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pandas as pd
import pytest

from metaudit.demo import vocab
from metaudit.mail.content import OutgoingEmail, build_email
from metaudit.mail.eml import render_eml
from metaudit.mail.sendgrid_client import to_sendgrid_payload
from metaudit.results.digest import FilingDeadline, FindingExposure, PracticeDigest, TrackedFinding
from metaudit.spec.findings import Finding

pytestmark = pytest.mark.slow

AS_OF = date(2026, 3, 2)

# Free-text columns that may hold PHI (names, diagnoses, notes, member numbers).
PHI_TEXT = {
    "conditions": ("description",),
    "assessments": ("functional_deficits", "notes"),
    "sessions": ("client_response", "notes"),
    "goals": ("description",),
    "intake_forms": ("emergency_contact_name", "emergency_contact_phone"),
    "insurance_policies": ("member_id",),
}
ICD_COLUMNS = {
    "conditions": "icd10_code",
    "referral_diagnoses": "icd10_code",
    "claim_diagnoses": "icd10_code",
}


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Finding]]]:
    from metaudit.check.engine import run_check
    from metaudit.demo.generate import generate

    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    generate(str(db), as_of=AS_OF, sessions=1500, practices=2, progress=False)
    result = run_check(str(db), AS_OF)
    assert result.exposure is not None
    EXPOSURE.update(_exposure(result.exposure, db))
    assert result.deadlines is not None
    for row in result.deadlines.to_dict("records"):
        DEADLINES.setdefault(row["practice_id"], []).append(
            FilingDeadline(
                row["claim_id"],
                row["client_id"],
                row["earliest_service_date"],
                int(row["timely_filing_days"]),
                row["deadline"],
                int(row["charges"]),
            )
        )
    yield db, result.findings


# The audit's exposure by fingerprint, as the results store gives it to the digest.
EXPOSURE: dict[str, FindingExposure] = {}
# The draft claims' filing deadlines per practice (all of them, not only the week's).
DEADLINES: dict[str, list[FilingDeadline]] = {}


def _exposure(frame: pd.DataFrame, db: Path) -> dict[str, FindingExposure]:
    from metaudit.check.exposure import claim_of_record

    with sqlite3.connect(db) as conn:
        claim_of_line = dict(conn.execute("SELECT line_id, claim_id FROM claim_lines"))
    return {
        row.fingerprint: FindingExposure(
            int(row.lines),
            int(row.fix_before_billing),
            int(row.in_flight),
            int(row.recoupment_risk),
            claim_of_record(row.entity_type, row.entity_id, claim_of_line),
        )
        for row in frame.itertuples()
    }


def _digests(findings: list[Finding], db: Path) -> list[PracticeDigest]:
    """One digest per practice: half the findings new, half still open, a few resolved,
    each with its exposure (so the money blocks are scanned too)."""
    with sqlite3.connect(db) as conn:
        names = dict(conn.execute("SELECT practice_id, name FROM practices"))
    as_of = AS_OF.isoformat()
    week = (AS_OF + timedelta(days=7)).isoformat()
    out = []
    for pid in sorted({f.practice_id for f in findings if f.practice_id}):
        mine = [f for f in findings if f.practice_id == pid]
        tracked = [
            TrackedFinding(f, as_of if i % 2 else (AS_OF - timedelta(days=i)).isoformat())
            for i, f in enumerate(mine)
        ]
        new = [t for t in tracked if t.first_seen == as_of]
        still = [t for t in tracked if t.first_seen != as_of]
        resolved = [TrackedFinding(t.finding, "2026-02-01", as_of) for t in tracked[:5]]
        due = [t for t in tracked if t.finding.due_date and t.finding.due_date <= week]
        out.append(
            PracticeDigest(
                pid,
                names.get(pid, pid),
                as_of,
                new,
                still,
                resolved,
                due,
                exposure={f.fingerprint: EXPOSURE[f.fingerprint] for f in mine},
                filing_deadlines=DEADLINES.get(pid, []),
            )
        )
    return out


# An ICD-10-CM code with its dot (M54.5, M17.11, S83.241A); emails name none.
ICD10_CODE = re.compile(r"(?<![\w.])[A-TV-Z][0-9][0-9AB]\.[0-9A-Z]{1,4}(?![\w])")


def _forbidden(db: Path, findings: list[Finding]) -> tuple[set[str], set[str]]:
    """(phrases that must not appear anywhere, words that must not appear as whole words)."""
    phrases: set[str] = set()
    words: set[str] = set()
    with sqlite3.connect(db) as conn:
        for first, last, dob in conn.execute(
            "SELECT first_name, last_name, date_of_birth FROM clients"
        ):
            phrases.add(f"{first} {last}")
            phrases.add(f"{last}, {first}")
            if dob:
                day = date.fromisoformat(str(dob)[:10])
                phrases.update(
                    {day.isoformat(), day.strftime("%m/%d/%Y"), day.strftime("%d/%m/%Y")}
                )
        client_ids = {f.client_id for f in findings if f.client_id}
        for cid in client_ids:
            row = conn.execute(
                "SELECT first_name, last_name FROM clients WHERE client_id = ?", (cid,)
            ).fetchone()
            if row:
                words.update(w for w in row if w)
        for table, columns in PHI_TEXT.items():
            for column in columns:
                for (value,) in conn.execute(f'SELECT DISTINCT "{column}" FROM "{table}"'):
                    if value and len(str(value).strip()) >= 6:
                        phrases.add(str(value).strip())
        for table, column in ICD_COLUMNS.items():
            for (code,) in conn.execute(f'SELECT DISTINCT "{column}" FROM "{table}"'):
                if code:
                    words.update({str(code).strip(), str(code).strip().replace(".", "")})
    for condition in (*vocab.PRIMARY_CONDITIONS, *vocab.SECONDARY_CONDITIONS):
        phrases.add(condition.description)
        words.update({condition.icd10_code, condition.icd10_code.replace(".", "")})
    words.update({vocab.UNDOCUMENTED_CODE, vocab.HEADER_CODE})
    for group in (
        vocab.SESSION_NOTES,
        vocab.ASSESSMENT_NOTES,
        vocab.CLIENT_RESPONSES,
        vocab.INITIAL_DEFICITS,
        vocab.REASSESSMENT_DEFICITS,
        vocab.SHORT_GOALS,
        vocab.LONG_GOALS,
        vocab.MISSED_SESSION_NOTES,
    ):
        phrases.update(group)
    return phrases, words


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _all_text(message: OutgoingEmail) -> str:
    """Every string the message carries (content, payload, .eml parts), blanks collapsed."""
    eml_bytes = render_eml(message, date=datetime(2026, 3, 2, tzinfo=UTC))
    eml = message_from_bytes(eml_bytes, policy=policy.default)
    parts = [p.get_content() for p in eml.walk() if p.get_content_maintype() == "text"]  # type: ignore[attr-defined]
    headers = [f"{k}: {v}" for k, v in eml.items()]
    texts = [message.subject, message.html, message.text, *parts, *headers]
    texts += list(_strings(to_sendgrid_payload(message)))
    return "\n".join(" ".join(t.split()) for t in texts)


def test_no_names_birth_dates_diagnoses_or_notes(audited: tuple[Path, list[Finding]]) -> None:
    db, findings = audited
    assert len(findings) > 20, "the demo audit should find its injected defects"
    phrases, words = _forbidden(db, findings)
    assert len(words) > 30 and len(phrases) > 100
    digests = _digests(findings, db)
    assert digests
    # The demo bills few drafts with critical findings: scan the fix-before-billing block
    # too, as it reads when every claim found were still a draft.
    drafts = [_as_drafts(d) for d in digests]
    assert all("FIX BEFORE BILLING" in _email(d).text for d in drafts)
    assert all("TIMELY FILING DEADLINES THIS WEEK" in _email(d).text for d in digests)
    digests += drafts
    leaks = _leaks(digests[0], phrases, words)
    assert leaks == [], f"{digests[0].practice_id}: {leaks[:10]}"
    for digest in digests[1:]:
        assert _leaks(digest, phrases, words) == [], digest.practice_id


def test_the_scan_catches_a_planted_name_code_and_note(audited: tuple[Path, list[Finding]]) -> None:
    """The detector itself works: a message carrying PHI is caught."""
    import dataclasses

    db, findings = audited
    phrases, words = _forbidden(db, findings)
    digest = _digests(findings, db)[0]
    with sqlite3.connect(db) as conn:
        first, last = conn.execute(
            "SELECT first_name, last_name FROM clients WHERE client_id = ?",
            (digest.new[0].finding.client_id,),
        ).fetchone()
    for planted, expected in (
        (f"{first} {last}", f"{first} {last}"),
        ("with diagnosis M17.11", "M17.11"),
        (vocab.SESSION_NOTES[0], vocab.SESSION_NOTES[0]),
    ):
        bad = dataclasses.replace(
            digest.new[0].finding, message=f"{digest.new[0].finding.message} {planted}"
        )
        leaky = dataclasses.replace(
            digest, new=[TrackedFinding(bad, digest.as_of), *digest.new[1:]]
        )
        assert expected in _leaks(leaky, phrases, words)


def _leaks(digest: PracticeDigest, phrases: set[str], words: set[str]) -> list[str]:
    """The forbidden phrases and whole words found anywhere in the digest's email."""
    everything = _all_text(_email(digest))
    # The rulebook's sentences are scanned too: an example code they cited (COD-003 once
    # cited M54.5, the very header code the demo injects) lets a reader guess a diagnosis.
    # The record ids are there: the mail is useful, not empty; so is the money.
    assert digest.new[0].finding.entity_id in everything
    assert "Money at risk" in everything
    found = {p for p in phrases if p in everything}
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(words))) + r")(?![\w])")
    found.update(m.group(1) for m in pattern.finditer(everything))
    # No ICD-10 code at all, whether or not a record holds it.
    found.update(ICD10_CODE.findall(everything))
    return sorted(found)


def _as_drafts(digest: PracticeDigest) -> PracticeDigest:
    """The digest with the money of every finding on a claim moved to fix before billing."""
    import dataclasses

    moved = {
        fp: FindingExposure(e.lines, e.total, 0, 0, e.claim_id) if e.claim_id else e
        for fp, e in digest.exposure.items()
    }
    return dataclasses.replace(digest, exposure=moved)


def _email(digest: PracticeDigest) -> OutgoingEmail:
    message = build_email(
        digest,
        ["lead@example.org"],
        airflow_base_url="https://airflow.example.org",
        packets_base_url="https://airflow.example.org",
        sender="audit@example.org",
    )
    assert message is not None
    return message


def test_no_rule_text_that_is_mailed_cites_an_icd10_code() -> None:
    from metaudit.spec.rulebook import RULES

    cited = {
        rule.id: ICD10_CODE.findall(f"{rule.title} {rule.meaning} {rule.fix} {rule.message}")
        for rule in RULES.values()
    }
    assert {rule_id: codes for rule_id, codes in cited.items() if codes} == {}
    assert ICD10_CODE.findall("needs more characters (M54.5 ...) or S83.241A") == [
        "M54.5",
        "S83.241A",
    ]
