"""The Great Expectations layer: load the rule families' suites, validate derived
frames with them, and collect the failing entity ids.

Importing this package does not import great_expectations (about 3 s); the first
``load_suite`` or ``validate_family`` call does. ``metaudit.gx.expectations`` holds
the custom expectations and imports GX at its top: import it lazily.
"""

from __future__ import annotations

from metaudit.gx.runner import (
    EXPECTATIONS_DIR_ENV,
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
    "EXPECTATIONS_DIR_ENV",
    "FamilyValidation",
    "RuleFailure",
    "clear_suite_cache",
    "expectations_dir",
    "gx_context",
    "load_suite",
    "validate_all",
    "validate_family",
]
