"""The dashboard's charts: SVG drawn here, on the server, inline in the page.

No script and no other origin (the pages' Content-Security-Policy allows neither):
each chart is plain SVG markup whose colours come from the pages' own stylesheet
(classes, no inline styles), with a ``<title>`` per mark that says its number, and
the page shows the same numbers in a table beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

from metaudit.mail.content import money
from metaudit.results.dashboard import SEVERITIES, SeverityDay

WIDTH = 720
HEIGHT = 220
_LEFT = 40
_BOTTOM = 24
_TOP = 10
# The history chart keeps a row above its bars for the severities' legend.
_HISTORY_TOP = 24
_LEGEND_STEP = 78


def _nice_top(value: int) -> int:
    """The axis maximum: the value rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def severity_history(days: Sequence[SeverityDay]) -> Markup:
    """Stacked bars, one per audit date, of the open findings by severity."""
    top = _nice_top(max((d.total for d in days), default=0))
    plot_w = WIDTH - _LEFT - 8
    plot_h = HEIGHT - _HISTORY_TOP - _BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = max(min(slot * 0.8, 40), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="open-history" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Open findings by severity, {len(days)} audit dates">',
        f'<line class="axis" x1="{_LEFT}" y1="{_HISTORY_TOP + plot_h}" x2="{WIDTH - 8}" '
        f'y2="{_HISTORY_TOP + plot_h}"/>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_HISTORY_TOP + 8}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_HISTORY_TOP + plot_h}" text-anchor="end">0</text>',
    ]
    # The legend, above the bars: the colours are the severity cards' own.
    for i, severity in enumerate(SEVERITIES):
        at = WIDTH - 8 - (len(SEVERITIES) - i) * _LEGEND_STEP
        parts.append(
            f'<rect class="sev-{severity} legend" x="{at}" y="3" width="10" height="10"/>'
            f'<text class="tick" x="{at + 14}" y="12">{severity}</text>'
        )
    for i, day in enumerate(days):
        x = _LEFT + i * slot + (slot - bar) / 2
        y: float = _HISTORY_TOP + plot_h
        label = day.as_of.isoformat()
        parts.append(f'<g class="day" data-as-of="{label}" data-total="{day.total}">')
        for severity in SEVERITIES:
            n = day.counts.get(severity, 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            parts.append(
                f'<rect class="sev-{severity}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" data-severity="{severity}" data-count="{n}">'
                f"<title>{label}: {n} {severity}</title></rect>"
            )
        parts.append("</g>")
    if days:
        for i in sorted({0, len(days) - 1}):
            x = _LEFT + i * slot + slot / 2
            anchor = "start" if i == 0 and len(days) > 1 else "end" if i else "middle"
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
                f"{days[i].as_of.isoformat()}</text>"
            )
    else:
        parts.append(
            f'<text class="tick" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            "no audit dates in the period</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def horizontal_bars(
    items: Sequence[tuple[str, int, str]],
    chart_id: str,
    caption: str,
    show: Callable[[int], str] = "{:,}".format,
) -> Markup:
    """One bar per (label, value, css class), in the order given; each value as ``show``
    writes it."""
    row = 22
    label_w = 190
    value_w = 110
    height = max(len(items), 1) * row + 4
    top = max((value for _, value, _ in items), default=0) or 1
    span = WIDTH - label_w - value_w
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(caption)}">'
    ]
    for i, (label, value, css) in enumerate(items):
        y = i * row + 2
        w = span * value / top
        shown = show(value)
        parts.append(
            f'<text class="label" x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="{escape(css)}" x="{label_w}" y="{y + 3}" width="{w:.1f}" '
            f'height="{row - 6}"><title>{escape(label)}: {escape(shown)}</title></rect>'
            f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 15}">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def money_bars(items: Sequence[tuple[str, int, str]], chart_id: str, caption: str) -> Markup:
    """:func:`horizontal_bars` of integer cents, labelled in dollars as the email writes them."""
    return horizontal_bars(items, chart_id, caption, show=money)
