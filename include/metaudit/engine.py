"""The whole check: read, type, view, derive, validate, assemble findings."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from metaudit.derive import FAMILIES
from metaudit.findings import Finding, sort_findings
from metaudit.frames import Frame

if TYPE_CHECKING:
    import sqlalchemy as sa

    from metaudit.gx.runner import FamilyValidation
    from metaudit.quality import TypedSource
    from metaudit.settings import Settings
    from metaudit.view import AuditView

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    """What one check produced: findings, GX validation results and stage timings."""

    as_of: str
    findings: list[Finding]
    validations: dict[str, FamilyValidation] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    practice_ids: list[str] = field(default_factory=list)


def derive_family(family: str, view: AuditView, settings: Settings) -> list[Frame]:
    """The frames of one family (its module ``metaudit.derive.<family>``)."""
    module = importlib.import_module(f"metaudit.derive.{family.lower()}")
    frames: list[Frame] = module.derive(view, settings)
    return frames


def run_view_rules(
    view: AuditView,
    settings: Settings,
    families: Sequence[str] = FAMILIES,
    timings: dict[str, float] | None = None,
) -> tuple[list[Finding], dict[str, FamilyValidation]]:
    """Run every family's derivation and suite over a view; return findings and results."""
    from metaudit.gx.runner import load_suite, validate_family

    findings: list[Finding] = []
    validations: dict[str, FamilyValidation] = {}
    timings = timings if timings is not None else {}
    for family in families:
        started = time.perf_counter()
        frames = derive_family(family, view, settings)
        derived = time.perf_counter()
        suite = load_suite(family)
        validation = validate_family(family, frames, suite)
        validations[family] = validation
        findings.extend(_assemble(view, frames, suite, validation))
        done = time.perf_counter()
        timings["derive"] = timings.get("derive", 0.0) + derived - started
        timings["validate"] = timings.get("validate", 0.0) + done - derived
    return findings, validations


def _assemble(
    view: AuditView, frames: list[Frame], suite: Any, validation: FamilyValidation
) -> list[Finding]:
    """Turn failing ids into findings; the cost follows the failures, not the rows."""
    from metaudit import rulebook

    due_columns: dict[tuple[str, str], str] = {}
    for expectation in suite.expectations:
        meta = expectation.meta or {}
        if meta.get("due_date_column"):
            due_columns[meta["rule_id"], meta["frame"]] = meta["due_date_column"]

    by_name = {frame.name: frame for frame in frames}
    parts: dict[tuple[str, str, str], list[str]] = {}
    for failure in validation.failures:
        key = (failure.rule_id, failure.frame, failure.entity_id)
        bucket = parts.setdefault(key, [])
        if failure.part and failure.part not in bucket:
            bucket.append(failure.part)

    findings: list[Finding] = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for rule_id, frame_name, entity_id in parts:
        grouped.setdefault((rule_id, frame_name), []).append(entity_id)
    for (rule_id, frame_name), entity_ids in grouped.items():
        frame = by_name[frame_name]
        rule = rulebook.RULES[rule_id]
        due_column = due_columns.get((rule_id, frame_name))
        wanted = ["practice_id", "client_id"] + ([due_column] if due_column else [])
        rows = frame.data.set_index("entity_id").loc[entity_ids, wanted]
        for entity_id, row in zip(entity_ids, rows.itertuples(index=False), strict=True):
            due = _iso(row[2]) if due_column else None
            findings.append(
                Finding(
                    as_of=view.as_of_iso,
                    practice_id=_text(row[0]),
                    rule_id=rule_id,
                    severity=rule.severity,
                    entity_type=frame.entity_type,
                    entity_id=str(entity_id),
                    client_id=_text(row[1]),
                    message=rulebook.message(
                        rule_id,
                        frame.entity_type,
                        str(entity_id),
                        parts[rule_id, frame_name, entity_id] or None,
                        due_date=due,
                    ),
                    due_date=due,
                )
            )
    return findings


def load_source(
    source: str | Path | sa.URL, as_of: date, timings: dict[str, float] | None = None
) -> TypedSource:
    """Read and type the whole source once, with its data-quality findings (DQ rules).

    Raises ContractError or SourceUnavailableError when the source cannot be audited.
    """
    from metaudit.quality import type_source
    from metaudit.source import read_tables

    timings = timings if timings is not None else {}
    started = time.perf_counter()
    raw = read_tables(source)
    timings["read"] = time.perf_counter() - started
    started = time.perf_counter()
    typed = type_source(raw.tables, pd.Timestamp(as_of).strftime("%Y-%m-%d"))
    timings["type"] = time.perf_counter() - started
    return typed


def check_typed(
    typed: TypedSource,
    as_of: date,
    practice_ids: Iterable[str] | None = None,
    settings: Settings | None = None,
    timings: dict[str, float] | None = None,
) -> CheckResult:
    """Run every rule over a typed source for some practices (all when None)."""
    from metaudit.settings import Settings
    from metaudit.view import build_view

    settings = settings or Settings.load(None)
    timings = timings if timings is not None else {}
    day = pd.Timestamp(as_of).normalize()
    wanted = sorted(set(practice_ids)) if practice_ids is not None else None
    started = time.perf_counter()
    view = build_view(typed, day, wanted, settings.for_practice(None).default_timezone)
    timings["view"] = time.perf_counter() - started

    findings, validations = run_view_rules(view, settings, timings=timings)
    dq = typed.findings
    if wanted is not None:
        dq = [f for f in dq if f.practice_id in wanted]
    started = time.perf_counter()
    ordered = sort_findings([*dq, *findings])
    timings["assemble"] = time.perf_counter() - started
    practices = sorted(view.practices["practice_id"].dropna().astype(str).tolist())
    return CheckResult(
        as_of=view.as_of_iso,
        findings=ordered,
        validations=validations,
        seconds=timings,
        practice_ids=practices,
    )


def run_check(
    source: str | Path | sa.URL,
    as_of: date | None = None,
    practice_ids: Iterable[str] | None = None,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> CheckResult:
    """Read a source database and run every rule; raise ContractError or
    SourceUnavailableError when the check cannot run."""
    say = progress or (lambda message: None)
    day = as_of or date.today()
    timings: dict[str, float] = {}
    say("reading and typing the source (data-contract rules)")
    typed = load_source(source, day, timings)
    say("deriving the rule facts and validating the suites")
    return check_typed(typed, day, practice_ids, settings, timings)


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _iso(value: object) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value[:10]
    if isinstance(value, (pd.Timestamp, date)):
        return value.strftime("%Y-%m-%d")
    return str(value)[:10]
