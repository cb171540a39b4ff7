"""The demo network generator: realistic practices with known, injected defects.

``generate(target, as_of=...)`` writes a seeded, reproducible network of
practices into any SQLAlchemy database (or a SQLite file path) together with
the ground truth: every finding the audit must report at ``as_of``, one per
line in ``*.truth.jsonl``. ``DEFECTS`` is the catalogue of injectable defects,
at least one for each of the 50 rules.
"""

from __future__ import annotations

from metaudit.demo.cohort import Expected
from metaudit.demo.defects import DEFECTS, Defect, UnknownDefectError, rules_covered, select
from metaudit.demo.generate import GenerationReport, generate, read_truth
from metaudit.demo.writer import DemoTargetError

__all__ = [
    "DEFECTS",
    "Defect",
    "DemoTargetError",
    "Expected",
    "GenerationReport",
    "UnknownDefectError",
    "generate",
    "read_truth",
    "rules_covered",
    "select",
]
