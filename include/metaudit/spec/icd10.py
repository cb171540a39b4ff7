"""Billable ICD-10-CM codes (rule COD-003), from the code set ``simple_icd_10_cm`` ships.

A code is billable when it is a leaf of the ICD-10-CM tabular list: a category
that needs more characters (``M54.5`` since 2021-10-01) is not, its children
(``M54.50``) are. Codes compare case-insensitively, after trimming, and without
the dot (rulebook reading 6). Malformed and unknown codes are not billable.

The package parses its whole XML tabular list when it is imported (over 2 s, in
every task process that validates). Billable codes need less: the package's
plain list of every code of the release, where a code is a leaf exactly when no
other code extends it (tests/unit/test_icd10.py checks that this gives the
package's own ``is_leaf`` answer for every code). Reading that list takes tens
of milliseconds; the package itself is never imported at run time.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from pathlib import Path

# Letter, two more characters, then up to four: the shape of every ICD-10-CM code
# without its dot. Chapters ("1") and blocks ("A00-A09") of the tabular list fail it.
_CODE_SHAPE = re.compile(r"[A-Z][0-9][0-9A-Z]{1,5}")
_DISTRIBUTION = "simple-icd-10-cm"
_RELEASE_FILE = re.compile(r"code-list-(?P<release>.+)\.txt")


def normalise(code: str) -> str:
    """The comparison form of an ICD-10-CM code: trimmed, upper case, no dots."""
    return code.strip().upper().replace(".", "")


@functools.cache
def _code_list() -> Path:
    """The package's list of every code of its release (one per line, no dots).

    Found through the distribution's file list: importing ``simple_icd_10_cm``,
    even for ``importlib.resources``, would parse the XML this module avoids.
    """
    files = importlib.metadata.distribution(_DISTRIBUTION).files or []
    lists = sorted(
        Path(str(f.locate()))
        for f in files
        if f.parent.name == "data" and _RELEASE_FILE.fullmatch(f.name)
    )
    if len(lists) != 1:
        raise RuntimeError(
            f"{_DISTRIBUTION} should ship one code list, found {[p.name for p in lists]}"
        )
    return lists[0]


@functools.cache
def billable_codes() -> frozenset[str]:
    """Every billable (leaf) code of the shipped release, in normalised form."""
    codes = sorted(
        {
            code
            for line in _code_list().read_text(encoding="utf-8").splitlines()
            if _CODE_SHAPE.fullmatch(code := normalise(line))
        }
    )
    # Sorted, a code's extensions follow it directly: a leaf is not a prefix of the next.
    return frozenset(
        code
        for code, following in zip(codes, [*codes[1:], ""], strict=True)
        if not following.startswith(code)
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
    match = _RELEASE_FILE.fullmatch(_code_list().name)
    release = match["release"] if match else "unknown release"
    version = importlib.metadata.version(_DISTRIBUTION)
    return f"ICD-10-CM {release} ({_DISTRIBUTION} {version})"
