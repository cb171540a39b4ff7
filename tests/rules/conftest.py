"""Fixtures shared by the rule-family tests (records and helpers are in tests/builders.py)."""

from __future__ import annotations

import pytest
from builders import Finding, audit, clean_records


@pytest.fixture(scope="module")
def clean_findings() -> list[Finding]:
    """The findings of the clean records: a family's rules must raise none of them.

    Module scope: one audit per test module, as each module had before it moved here.
    """
    return audit(clean_records())
