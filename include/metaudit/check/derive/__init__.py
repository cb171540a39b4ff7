"""Per-family derivations: the facts each rule checks, one row per entity.

Each module ``metaudit.check.derive.<family>`` exposes ``derive(view, settings) ->
list[Frame]``; the family's Great Expectations suite in ``expectations/``
validates those frames.
"""

from __future__ import annotations

FAMILIES = ("REF", "ELG", "DOC", "REA", "COD", "CLM")
