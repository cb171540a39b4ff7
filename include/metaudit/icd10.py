"""Billable ICD-10-CM codes (rule COD-003), from the code set ``simple_icd_10_cm`` ships.

A code is billable when it is a leaf of the ICD-10-CM tabular list: a category
that needs more characters (``M54.5`` since 2021-10-01) is not, its children
(``M54.50``) are. Codes compare case-insensitively, after trimming, and without
the dot (rulebook reading 6). Malformed and unknown codes are not billable.

The package parses its XML tabular list on import (about 2 s), so it is imported
lazily, once, on the first question asked.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import re
import warnings

# Letter, two more characters, then up to four: the shape of every ICD-10-CM code
# without its dot. Chapters ("1") and blocks ("A00-A09") of the tabular list fail it.
_CODE_SHAPE = re.compile(r"[A-Z][0-9][0-9A-Z]{1,5}")
_RELEASE_FILE = re.compile(r"code-list-(?P<release>.+)\.txt")


def normalise(code: str) -> str:
    """The comparison form of an ICD-10-CM code: trimmed, upper case, no dots."""
    return code.strip().upper().replace(".", "")


@functools.cache
def billable_codes() -> frozenset[str]:
    """Every billable (leaf) code of the shipped release, in normalised form."""
    with warnings.catch_warnings():
        # The package reads its data with importlib.resources calls Python deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm as icd

    return frozenset(
        code
        for code in icd.get_all_codes(with_dots=False)
        if _CODE_SHAPE.fullmatch(code) and icd.is_leaf(code)
    )


@functools.lru_cache(maxsize=65536)
def is_billable(code: str) -> bool:
    """Whether ``code`` is a billable ICD-10-CM code of the shipped release."""
    if not isinstance(code, str):
        return False
    return normalise(code) in billable_codes()


@functools.cache
def code_set_release() -> str:
    """The code set release judged against, e.g. ``ICD-10-CM April-2026 (simple-icd-10-cm 1.5.0)``."""
    data = importlib.resources.files("simple_icd_10_cm.data")
    releases = sorted(
        match["release"]
        for entry in data.iterdir()
        if (match := _RELEASE_FILE.fullmatch(entry.name)) is not None
    )
    version = importlib.metadata.version("simple-icd-10-cm")
    return f"ICD-10-CM {', '.join(releases) or 'unknown release'} (simple-icd-10-cm {version})"
