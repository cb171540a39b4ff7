"""The fonts a packet embeds: lean subsets (no hinting, no licence text in the name
table) with every glyph, width and code the full subset has, the same bytes each time."""

from __future__ import annotations

import io

from fontTools.ttLib import TTFont
from reportlab.pdfbase import pdfmetrics

from metaudit.packets import render


def _full_and_lean(codes: list[int]) -> tuple[TTFont, TTFont, bytes]:
    face = pdfmetrics.getFont(render.font_names()[0]).face
    lean = face.makeSubset(codes)  # patched once per process: the lean subset
    full = render._dejavu_folder() / "DejaVuSans.ttf"
    from reportlab.pdfbase.ttfonts import TTFontFace

    original = TTFontFace(str(full)).makeSubset(codes)
    return TTFont(io.BytesIO(original)), TTFont(io.BytesIO(lean)), lean


def test_a_lean_subset_keeps_the_glyphs_widths_and_codes_and_drops_the_hinting() -> None:
    codes = [*range(32, 127), 0xE9, 0x2014]
    full, lean, data = _full_and_lean(codes)
    assert full.getGlyphOrder() == lean.getGlyphOrder()
    assert full["hmtx"].metrics == lean["hmtx"].metrics
    assert full.getBestCmap() == lean.getBestCmap()
    for name in full.getGlyphOrder():
        a, b = full["glyf"][name], lean["glyf"][name]
        assert a.getCoordinates(full["glyf"])[0] == b.getCoordinates(lean["glyf"])[0], name
    for tag in ("fpgm", "prep", "cvt "):
        assert tag in full and tag not in lean
    assert {r.nameID for r in lean["name"].names} <= {1, 2, 3, 4, 5, 6}
    assert lean["name"].getDebugName(1) == "DejaVu Sans"
    assert len(data) < len(full.reader.file.getvalue()) / 2


def test_the_same_subset_gives_the_same_bytes() -> None:
    face = pdfmetrics.getFont(render.font_names()[1]).face
    from reportlab.pdfbase.ttfonts import TTFontFace

    original = TTFontFace(str(render._dejavu_folder() / "DejaVuSans-Bold.ttf"))
    raw = original.makeSubset(list(range(40, 90)))
    assert render.lean_subset(raw) == render.lean_subset(raw)
    assert face.makeSubset(list(range(40, 90))) == render.lean_subset(raw)
