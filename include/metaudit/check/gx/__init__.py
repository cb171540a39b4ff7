"""The Great Expectations layer: load the rule families' suites, validate derived
frames with them, and collect the failing entity ids.

Importing this package does not import great_expectations (about 3 s); the first
``load_suite`` or ``validate_family`` call does. ``metaudit.check.gx.expectations`` holds
the custom expectations and imports GX at its top: import it lazily.
"""

from __future__ import annotations

from metaudit.check.gx.runner import (
    PACKAGE_SUITES_DIR,
    FamilyValidation,
    RuleFailure,
    clear_suite_cache,
    expectations_dir,
    gx_context,
    load_suite,
    validate_all,
    validate_family,
)

__all__ = [
    "PACKAGE_SUITES_DIR",
    "FamilyValidation",
    "RuleFailure",
    "clear_suite_cache",
    "expectations_dir",
    "gx_context",
    "load_suite",
    "validate_all",
    "validate_family",
]
