"""The billable-code list read from the code set's plain list agrees with the package's tree."""

from __future__ import annotations

import subprocess
import sys
import warnings

from metaudit.spec import icd10


def test_billable_codes_are_the_leaves_of_the_package_tree() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm as icd

    leaves = frozenset(
        code
        for code in icd.get_all_codes(with_dots=False)
        if icd10._CODE_SHAPE.fullmatch(code) and icd.is_leaf(code)
    )
    billable = icd10.billable_codes()
    assert len(billable) > 70_000
    assert billable == leaves, sorted(billable ^ leaves)[:20]


def test_billable_codes_do_not_import_the_package() -> None:
    # Importing simple_icd_10_cm parses its XML (seconds per validating task).
    probe = (
        "import sys; from metaudit.spec import icd10; "
        "assert icd10.is_billable('M54.50') and not icd10.is_billable('M54.5'); "
        "icd10.code_set_release(); "
        "print('simple_icd_10_cm' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False", done.stderr
