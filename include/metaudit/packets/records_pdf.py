"""The client's records as one paginated PDF: ``records.pdf`` of a client packet.

Every document of the records (``content.DOCUMENTS``: client and coverage,
referrals, prior rehab and conditions, intake, assessments with their outcome
measures and trend charts, plans of exercise with goals, session logs with the
exercises and CPT minutes, progress reports, claims with lines, diagnoses and
linkage) starts on a page of its own, after an index that names each document's
and each table's page (each document's line a link to it). Each document is
a PDF bookmark, and every page has a footer: practice, client, packet id,
page x of y. The text is real text in DejaVu Sans, embedded (subsets), so it
is selectable and ``pdftotext`` reads it.

Why not ReportLab's platypus: a client has hundreds of rows, and a Table of
Paragraphs parses markup and lays out every cell on each pass, several times
the whole packet's budget (issue 15: 50 ms a packet); ReportLab's canvas and
its object writer, with the layout done here, still cost three times what
they do now. So the pages are laid out once, cell text formatted once per
practice row (``RecordsCells``), widths measured with ReportLab's C string
width, the page streams written as PDF operators and the file written here
(``_write_pdf``), with the fonts' subsets embedded as ReportLab embeds them.
Text of printable ASCII is its own code in the font's first subset
(ReportLab's "ASCII readable" subset); any other text is encoded by the font
itself (``TTFont.splitString``), so every character comes out right.
"""

from __future__ import annotations

import functools
import math
import operator
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from metaudit.packets import render
from metaudit.packets.content import ChartSeries, Cover, RecordDocument, Section

# A4 landscape (points): the wide tables (claims, policies) get their columns.
PAGE_WIDTH, PAGE_HEIGHT = 841.89, 595.28
_MM = 72 / 25.4
LEFT, RIGHT = 14 * _MM, PAGE_WIDTH - 14 * _MM
TOP, BOTTOM = PAGE_HEIGHT - 12 * _MM, 14 * _MM
FOOTER_Y = 7 * _MM
WIDTH = RIGHT - LEFT

CELL_SIZE, CELL_LEADING = 7.0, 8.4
PAD_X, PAD_Y = 2.5, 1.8
# Text sits this far below the top of its line (DejaVu's ascent is 0.76 em).
_ASCENT = 0.78
# A column narrower than this wraps nearly every character: the water-filling stops there.
MIN_COLUMN = 34.0

TITLE_SIZE, SECTION_SIZE, INTRO_SIZE, FOOTER_SIZE = 13.0, 9.5, 8.0, 6.5

CHART_WIDTH, CHART_PLOT_HEIGHT = 370.0, 170.0
CHART_GAP = 16.0


# ---------------------------------------------------------------------------
# Cell text, once per practice row


class RecordsCells:
    """The practice's record tables as display text (``render.cell_text``), row by row.

    Made once per practice (``document_tables``) and read as clients' packets ask
    for their rows: text columns are their own text; any other column is coded
    once per practice (``pd.factorize``, no object per row) and each distinct
    value (a date, a number) formatted once.
    """

    def __init__(self, tables: dict[str, pd.DataFrame]) -> None:
        self._tables = tables
        self._columns: dict[tuple[str, str], Callable[[list[int]], list[str]]] = {}
        self._measures: dict[tuple[str, float], tuple[dict[str, float], dict[str, str]]] = {}

    def measures(self, font_name: str, size: float) -> tuple[dict[str, float], dict[str, str]]:
        """The practice's text widths in a font and size, and its ASCII text as PDF
        operators (``_Type``): the same values recur in every client's PDF."""
        kept = self._measures.get((font_name, size))
        if kept is None:
            kept = self._measures[font_name, size] = ({}, {})
        return kept

    def rows(self, section: Section, columns: Sequence[str]) -> list[list[str]]:
        """The section's rows (its positions) as lists of cell text of ``columns``."""
        positions = section.positions.tolist()
        texts = [self._column(section.table, name)(positions) for name in columns]
        return [list(row) for row in zip(*texts, strict=True)] if texts else []

    def _column(self, table: str, name: str) -> Callable[[list[int]], list[str]]:
        column = self._columns.get((table, name))
        if column is None:
            column = self._columns[table, name] = _column_text(self._tables[table][name])
        return column


def _column_text(values: pd.Series) -> Callable[[list[int]], list[str]]:
    """A function from row positions to the column's cell text there."""
    if isinstance(values.dtype, pd.StringDtype):
        texts = values.to_numpy(dtype=object, na_value="").tolist()
        return lambda rows: [texts[i] for i in rows]
    if values.dtype == object:
        # Mixed Python values hash alike (1, 1.0, True): each is formatted on its own.
        objects = values.tolist()
        return lambda rows: [render.cell_text(objects[i]) for i in rows]
    codes, uniques = pd.factorize(values)
    code_list = codes.tolist()
    if render.is_datetime(values.dtype):
        # Formatted at once (no Timestamp per value); code -1 (missing) takes the last, "".
        dated = [*render.datetime_texts(uniques), ""]
        return lambda rows: [dated[code_list[i]] for i in rows]
    distinct = pd.Series(uniques, dtype=values.dtype).astype(object).tolist()
    done: dict[int, str] = {-1: ""}  # -1: a missing value

    def coded(rows: list[int]) -> list[str]:
        out = []
        for i in rows:
            code = code_list[i]
            text = done.get(code)
            if text is None:
                text = done[code] = render.cell_text(distinct[code])
            out.append(text)
        return out

    return coded


# ---------------------------------------------------------------------------
# Text: widths, wrapping, PDF operators


class _Type:
    """One font at one size: its PDF name, widths and text encoding for a document."""

    def __init__(
        self, font_name: str, name: str, size: float, doc: _Document, cells: RecordsCells
    ) -> None:
        from reportlab.pdfbase import pdfmetrics

        self.font = pdfmetrics.getFont(font_name)
        self.size = size
        self.doc = doc
        self.name = name  # the font's name in the PDF; its subsets are name+0, name+1 ...
        self.select = f"{self.name}+0 {size:g} Tf"
        # Widths and ASCII text are the same in every PDF: kept for the practice.
        self.widths, self.ascii_shown = cells.measures(font_name, size)
        self._shown: dict[str, str] = {}
        self.space = self.width(" ")

    def width(self, text: str) -> float:
        try:
            return self.widths[text]
        except KeyError:
            width = self.widths[text] = self.font.stringWidth(text, self.size)
            return width

    def show(self, text: str) -> str:
        """The operators that show ``text`` at the current text position in this font."""
        return f"{self.select} {self.shown(text)}"

    def shown(self, text: str) -> str:
        """The operators that show ``text`` when this font is selected (and leave it so)."""
        try:
            return self.ascii_shown[text]
        except KeyError:
            pass
        if text.isascii() and text.isprintable():
            shown = self.ascii_shown[text] = f"({text.translate(render.PDF_ESCAPES)}) Tj"
            return shown
        try:
            return self._shown[text]
        except KeyError:
            from reportlab.lib.rl_accel import escapePDF

            shown = " ".join(
                f"{self.name}+{subset} {self.size:g} Tf ({escapePDF(codes)}) Tj"
                for subset, codes in self.font.splitString(text, self.doc)
            )
            shown += f" {self.select}"
        self._shown[text] = shown
        return shown

    def wrap(self, text: str, width: float) -> list[str]:
        """``text`` in lines of at most ``width`` points: at blanks, and inside a word
        that is longer than a line; line breaks in the text are kept."""
        if text.isprintable() and self.width(text) <= width:
            return [text]
        lines: list[str] = []
        for paragraph in text.replace("\t", " ").splitlines() or [""]:
            line, used = "", 0.0
            for word in paragraph.split(" "):
                wide = self.width(word)
                if line and used + self.space + wide <= width:
                    line, used = f"{line} {word}", used + self.space + wide
                    continue
                if line or used:
                    lines.append(line)
                while wide > width and len(word) > 1:
                    cut = self._fit(word, width)
                    lines.append(word[:cut])
                    word = word[cut:]
                    wide = self.width(word)
                line, used = word, wide
            lines.append(line)
        return lines

    def _fit(self, word: str, width: float) -> int:
        """How many of ``word``'s first characters fit in ``width`` (at least one)."""
        used = 0.0
        for index, char in enumerate(word):
            used += self.width(char)
            if used > width:
                return max(index, 1)
        return len(word)


# ---------------------------------------------------------------------------
# Pages


@dataclass
class _Page:
    graphics: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    # (key, title, level, top): the bookmarks that point into this page.
    marks: list[tuple[str, str, int, float]] = field(default_factory=list)
    links: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)


class _Layout:
    """Pages being filled from the top; ``y`` is the next free height."""

    def __init__(self) -> None:
        self.pages: list[_Page] = []
        self.y = TOP

    @property
    def page(self) -> _Page:
        return self.pages[-1]

    @property
    def number(self) -> int:
        return len(self.pages)

    def new_page(self) -> None:
        self.pages.append(_Page())
        self.y = TOP

    def room(self) -> float:
        return self.y - BOTTOM

    def need(self, height: float) -> bool:
        """Start a new page unless ``height`` fits; True when one was started."""
        if self.y - height < BOTTOM and self.y < TOP:
            self.new_page()
            return True
        return False

    def text(self, face: _Type, x: float, baseline: float, text: str, grey: bool = False) -> None:
        if not text:
            return
        ink = "0.33 g " if grey else ""
        reset = " 0 g" if grey else ""
        self.page.text.append(f"{ink}1 0 0 1 {x:.2f} {baseline:.2f} Tm {face.show(text)}{reset}")

    def lines(
        self, face: _Type, x: float, lines: Sequence[str], leading: float, grey: bool = False
    ) -> None:
        """Lines of text from the top, across pages as needed."""
        for line in lines:
            self.need(leading)
            self.text(face, x, self.y - face.size * _ASCENT, line, grey)
            self.y -= leading


# ---------------------------------------------------------------------------
# Tables


_heading = functools.lru_cache(maxsize=512)(render.heading)


def _column_widths(natural: list[float], width: float) -> list[float]:
    """Each column its natural width when all fit; else the narrow ones theirs and the
    others an equal share of what is left (water-filling), none below ``MIN_COLUMN``."""
    if sum(natural) <= width:
        return natural
    widths = list(natural)
    open_ = set(range(len(natural)))
    left = width
    while open_:
        share = max(left / len(open_), MIN_COLUMN)
        narrow = {i for i in open_ if natural[i] <= share}
        if not narrow:
            for i in open_:
                widths[i] = share
            break
        open_ -= narrow
        left -= sum(natural[i] for i in narrow)
    return widths


def _table(
    layout: _Layout,
    cell: _Type,
    bold: _Type,
    headings: Sequence[str],
    rows: Sequence[Sequence[str]],
) -> None:
    """A grid of wrapped text with a grey header row, repeated on every page it spans."""
    count = len(headings)
    natural = [
        max((bold.width(word) for word in heading.split(" ")), default=0.0) + 2 * PAD_X
        for heading in headings
    ]
    known = cell.widths
    measured: list[list[float]] = []
    for row in rows:
        found = list(map(known.get, row))
        measured.append(
            [cell.width(text) for text in row] if None in found else cast(list[float], found)
        )
    pad = 2 * PAD_X
    for index, column in enumerate(zip(*measured, strict=True)):
        natural[index] = max(natural[index], max(column) + pad)
    widths = _column_widths(natural, WIDTH)
    lefts = [LEFT + sum(widths[:k]) for k in range(count)]
    right = lefts[-1] + widths[-1]
    head_lines = [bold.wrap(h, w - 2 * PAD_X) for h, w in zip(headings, widths, strict=True)]
    head_height = max(len(lines) for lines in head_lines) * CELL_LEADING + 2 * PAD_Y
    inner = [w - 2 * PAD_X for w in widths]
    wrap = cell.wrap
    # Most rows fit their columns on one line: kept as they are (None), else wrapped.
    wrapped: list[list[list[str]] | None] = [
        None
        if all(map(operator.le, row_widths, inner)) and all(map(str.isprintable, row))
        else [wrap(text, room) for text, room in zip(row, inner, strict=True)]
        for row, row_widths in zip(rows, measured, strict=True)
    ]
    xs = [f"1 0 0 1 {left + PAD_X:.2f} " for left in lefts]
    shown = cell.shown
    # A row's lines may span pages (a note longer than a page); the header comes first.
    lines_per_page = max(int((TOP - BOTTOM - head_height - 2 * PAD_Y) // CELL_LEADING), 1)
    first = max(map(len, wrapped[0])) if wrapped and wrapped[0] is not None else 1
    layout.need(head_height + min(first, 3) * CELL_LEADING + 2 * PAD_Y)
    top = _header(layout, bold, lefts, head_lines, head_height, right)
    out = layout.page.text
    out.append(cell.select)
    rule = f"{LEFT:.2f} {{:.2f}} m {right:.2f} {{:.2f}} l S"
    single = CELL_LEADING + 2 * PAD_Y
    ascii_shown = cell.ascii_shown
    for row, lines_of in zip(rows, wrapped, strict=True):
        if lines_of is None and single <= layout.room():
            # Most rows: one line per cell, on this page.
            at = f"{layout.y - PAD_Y - CELL_SIZE * _ASCENT:.2f} Tm "
            for x, line in zip(xs, row, strict=True):
                if line:
                    out.append(x + at + (ascii_shown.get(line) or shown(line)))
            layout.y -= single
            layout.page.graphics.append(rule.format(layout.y, layout.y))
            continue
        cells = [[text] for text in row] if lines_of is None else lines_of
        tallest = max(map(len, cells))
        height = tallest * CELL_LEADING + 2 * PAD_Y
        if height > layout.room() and (
            tallest <= lines_per_page or layout.room() < 3 * CELL_LEADING + 2 * PAD_Y
        ):
            _grid(layout, lefts, right, top)
            layout.new_page()
            top = _header(layout, bold, lefts, head_lines, head_height, right)
            out = layout.page.text
            out.append(cell.select)
        start = 0
        while True:
            fit = max(int((layout.room() - 2 * PAD_Y) // CELL_LEADING), 1)
            fit = min(fit, lines_per_page, tallest - start)
            row_top = layout.y
            for x, lines in zip(xs, cells, strict=True):
                baseline = row_top - PAD_Y - CELL_SIZE * _ASCENT
                for line in lines[start : start + fit]:
                    if line:
                        out.append(f"{x}{baseline:.2f} Tm {shown(line)}")
                    baseline -= CELL_LEADING
            layout.y = row_top - fit * CELL_LEADING - 2 * PAD_Y
            layout.page.graphics.append(
                f"{LEFT:.2f} {layout.y:.2f} m {right:.2f} {layout.y:.2f} l S"
            )
            start += fit
            if start >= tallest:
                break
            _grid(layout, lefts, right, top)
            layout.new_page()
            top = _header(layout, bold, lefts, head_lines, head_height, right)
            out = layout.page.text
            out.append(cell.select)
    _grid(layout, lefts, right, top)


def _header(
    layout: _Layout,
    bold: _Type,
    lefts: Sequence[float],
    head_lines: Sequence[Sequence[str]],
    height: float,
    right: float,
) -> float:
    """The table's header row at the top of the free space; returns the table's top."""
    top = layout.y
    layout.page.graphics.append(
        f"0.9 g {LEFT:.2f} {top - height:.2f} {right - LEFT:.2f} {height:.2f} re f 0 g"
    )
    for left, lines in zip(lefts, head_lines, strict=True):
        baseline = top - PAD_Y - CELL_SIZE * _ASCENT
        for line in lines:
            layout.text(bold, left + PAD_X, baseline, line)
            baseline -= CELL_LEADING
    layout.y = top - height
    layout.page.graphics.append(f"{LEFT:.2f} {layout.y:.2f} m {right:.2f} {layout.y:.2f} l S")
    return top


def _grid(layout: _Layout, lefts: Sequence[float], right: float, top: float) -> None:
    """The table's outline and column edges on the current page, from ``top`` down."""
    bottom = layout.y
    edges = " ".join(f"{x:.2f} {top:.2f} m {x:.2f} {bottom:.2f} l" for x in (*lefts, right))
    layout.page.graphics.append(f"{edges} {LEFT:.2f} {top:.2f} m {right:.2f} {top:.2f} l S")


# ---------------------------------------------------------------------------
# Charts


_MEASURED_RGB = "0.122 0.306 0.475"


def _chart(
    layout: _Layout, small: _Type, title_face: _Type, left: float, top: float, series: ChartSeries
) -> float:
    """One instrument's trend in a box whose top left is (left, top); returns its height.

    What it draws is what the SVG chart draws (``render.chart_plot``): the measured
    values as a line with a dot and its value at each assessment, each goal's target
    dashed with a star at its target date, axes with ticks, and a legend.
    """
    plot = render.chart_plot(series)
    measured = [
        (when, value)
        for when, value in zip(plot.measured_dates, plot.measured_values, strict=True)
        if math.isfinite(value)
    ]
    targets = [t for t in plot.targets if math.isfinite(t[1])]
    days = [render.day_number(when) for when, _ in measured]
    target_days = [render.day_number(t[2]) for t in targets if t[2]]
    values = [v for _, v in measured] + [t[1] for t in targets]
    legend = (["measured"] if days else []) + [t[0] for t in targets]
    graphics = layout.page.graphics
    plot_left, plot_right = left + 44, left + CHART_WIDTH - 8
    plot_top, plot_bottom = top - 20, top - 20 - CHART_PLOT_HEIGHT
    title = title_face.wrap(plot.title, CHART_WIDTH)[0]
    layout.text(title_face, left + (CHART_WIDTH - title_face.width(title)) / 2, top - 12, title)
    if values:
        low, high, y_ticks = render.value_axis(values)
        first, last, x_ticks = render.date_axis(days + target_days)

        def x(day: float) -> float:
            return plot_left + (day - first) / (last - first) * (plot_right - plot_left)

        def y(value: float) -> float:
            return plot_bottom + (value - low) / (high - low) * (plot_top - plot_bottom)

        grid = [f"{plot_left:.1f} {y(t):.1f} m {plot_right:.1f} {y(t):.1f} l" for t in y_ticks]
        grid += [f"{x(t):.1f} {plot_top:.1f} m {x(t):.1f} {plot_bottom:.1f} l" for t, _ in x_ticks]
        graphics.append("0.867 G 0.5 w " + " ".join(grid) + " S 0.3 w 0.6 G")
        for tick in y_ticks:
            label = render.cell_text(tick)
            layout.text(small, plot_left - 4 - small.width(label), y(tick) - 2.3, label)
        for tick, label in x_ticks:
            layout.text(small, x(tick) - small.width(label) / 2, plot_bottom - 10, label)
        for number, (_label, value, target_date) in enumerate(targets):
            colour = render.rgb(render.GOAL_COLOURS[number % len(render.GOAL_COLOURS)])
            graphics.append(
                f"{colour} RG {colour} rg 0.8 w [4 2.5] 0 d {plot_left:.1f} {y(value):.1f} m "
                f"{plot_right:.1f} {y(value):.1f} l S [] 0 d"
            )
            if target_date:
                graphics.append(_star(x(render.day_number(target_date)), y(value)))
            graphics.append("0 g 0.6 G 0.3 w")
        if days:
            points = [(x(d), y(v)) for d, (_, v) in zip(days, measured, strict=True)]
            path = " ".join(
                f"{px:.1f} {py:.1f} {'m' if k == 0 else 'l'}" for k, (px, py) in enumerate(points)
            )
            graphics.append(f"{_MEASURED_RGB} RG {_MEASURED_RGB} rg 1.2 w {path} S")
            graphics.append(" ".join(_dot(px, py) for px, py in points) + " 0 g 0.6 G 0.3 w")
            for (px, py), (_, value) in zip(points, measured, strict=True):
                label = render.cell_text(value)
                layout.text(small, px - small.width(label) / 2, py + 4.5, label)
    else:
        message = "no data"
        layout.text(
            small,
            (plot_left + plot_right - small.width(message)) / 2,
            (plot_top + plot_bottom) / 2,
            message,
        )
    graphics.append(
        f"0.2 G 0.6 w {plot_left:.1f} {plot_bottom:.1f} {plot_right - plot_left:.1f} "
        f"{plot_top - plot_bottom:.1f} re S 0.6 G 0.3 w"
    )
    axis = "assessment or target date"
    layout.text(small, (plot_left + plot_right - small.width(axis)) / 2, plot_bottom - 20, axis)
    row = plot_bottom - 32
    for number, label in enumerate(legend):
        if days and number == 0:
            style = f"{_MEASURED_RGB} RG 1.2 w"
        else:
            colour = render.rgb(
                render.GOAL_COLOURS[(number - (1 if days else 0)) % len(render.GOAL_COLOURS)]
            )
            style = f"{colour} RG 0.8 w [4 2.5] 0 d"
        graphics.append(
            f"{style} {plot_left:.1f} {row + 2.3:.1f} m {plot_left + 20:.1f} {row + 2.3:.1f} l S "
            "[] 0 d 0.6 G 0.3 w"
        )
        layout.text(small, plot_left + 25, row, small.wrap(label, CHART_WIDTH - 70)[0])
        row -= 9
    return top - row


def _dot(cx: float, cy: float, r: float = 2.2) -> str:
    k = 0.5523 * r  # a circle of four Bezier curves
    return (
        f"{cx + r:.1f} {cy:.1f} m {cx + r:.1f} {cy + k:.1f} {cx + k:.1f} {cy + r:.1f} {cx:.1f} {cy + r:.1f} c "
        f"{cx - k:.1f} {cy + r:.1f} {cx - r:.1f} {cy + k:.1f} {cx - r:.1f} {cy:.1f} c "
        f"{cx - r:.1f} {cy - k:.1f} {cx - k:.1f} {cy - r:.1f} {cx:.1f} {cy - r:.1f} c "
        f"{cx + k:.1f} {cy - r:.1f} {cx + r:.1f} {cy - k:.1f} {cx + r:.1f} {cy:.1f} c f"
    )


def _star(cx: float, cy: float, outer: float = 5.0) -> str:
    corners = []
    for k in range(10):
        radius = outer if k % 2 == 0 else outer * 0.4
        angle = math.pi / 2 + k * math.pi / 5
        corners.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    path = " ".join(
        f"{px:.1f} {py:.1f} {'m' if k == 0 else 'l'}" for k, (px, py) in enumerate(corners)
    )
    return f"{path} h f"


def _charts(
    layout: _Layout, small: _Type, title_face: _Type, all_series: Sequence[ChartSeries]
) -> None:
    """The charts two to a row, a row moved to the next page when it does not fit."""
    for start in range(0, len(all_series), 2):
        pair = all_series[start : start + 2]
        tallest = max(20 + CHART_PLOT_HEIGHT + 34 + 9 * _legend_count(s) for s in pair)
        layout.need(tallest)
        top = layout.y
        heights = [
            _chart(layout, small, title_face, LEFT + k * (CHART_WIDTH + CHART_GAP), top, series)
            for k, series in enumerate(pair)
        ]
        layout.y = top - max(heights) - 8


def _legend_count(series: ChartSeries) -> int:
    return (1 if series.points else 0) + sum(
        1 for t in series.targets if t.target_value is not None
    )


# ---------------------------------------------------------------------------
# The document


@dataclass(frozen=True)
class IndexEntry:
    """One line of the index: a document (level 0) or one of its tables (level 1)."""

    title: str
    level: int
    rows: int | None
    key: str
    note: str = ""


CHARTS_TITLE = "Outcome-measure trends"


def index_entries(
    documents: Sequence[RecordDocument], charts: bool, notes: Sequence[str] = ()
) -> list[IndexEntry]:
    """What the index lists, in order, before pages are known."""
    entries = []
    for number, document in enumerate(documents):
        note = notes[number] if number < len(notes) else ""
        entries.append(
            IndexEntry(
                document.title, 0, sum(s.count for s in document.sections), f"d{number}", note
            )
        )
        for part, section in enumerate(document.sections):
            entries.append(IndexEntry(section.title, 1, section.count, f"d{number}s{part}"))
        if document.slug == "assessments" and charts:
            entries.append(IndexEntry(CHARTS_TITLE, 1, None, f"d{number}charts"))
    return entries


_INDEX_LEADING = 11.0
_INDEX_HEAD = 62.0  # the title and the lines under it


def render_records_pdf(
    cover: Cover,
    packet_id: str,
    documents: Sequence[RecordDocument],
    all_series: Sequence[ChartSeries],
    cells: RecordsCells,
) -> bytes:
    """The client's records as one PDF (see the module's docstring)."""
    about = (
        f"{cover.practice_name} (practice {cover.practice_id}); records as of "
        f"{cover.as_of}; audit period {cover.period_start} to {cover.period_end}; "
        f"packet {packet_id}. The same records are in records/ as HTML and CSV."
    )
    footer = (
        f"{cover.practice_name} (practice {cover.practice_id}), client {cover.client_id}, "
        f"packet {packet_id}, records as of {cover.as_of}"
    )
    info = {
        "Title": f"Client records {cover.client_id} {cover.as_of}",
        "Subject": f"The client's records, practice {cover.practice_id}, as of {cover.as_of}",
    }
    return render_documents_pdf(
        PdfFrame(f"The client's records: client {cover.client_id}", about, footer, info),
        documents,
        cells,
        all_series=all_series,
    )


@dataclass(frozen=True)
class PdfFrame:
    """What frames a PDF of documents: the index's title and the lines under it, the
    footer's text (the page counter is added) and the file's Title and Subject."""

    index_title: str
    index_about: str
    footer: str
    info: dict[str, str]


def render_documents_pdf(
    frame: PdfFrame,
    documents: Sequence[RecordDocument],
    cells: RecordsCells,
    *,
    all_series: Sequence[ChartSeries] = (),
    lead: int = 0,
    notes: Sequence[str] = (),
) -> bytes:
    """Documents as one PDF, each from a page of its own, with an index naming each
    document's and each table's page: records.pdf and the records-request packet's PDF
    (``metaudit.packets.request``) both come from here.

    ``lead``: how many of the first documents come before the index (a cover letter).
    ``notes``: per document, a short line the index shows beside it (why it is there).
    """
    regular, bold = render.font_names()
    doc = _Document()  # the PDF's own key to the fonts' subsets (ReportLab's per document)
    fonts = {regular: "/F1", bold: "/F2"}

    def face(font: str, size: float) -> _Type:
        return _Type(font, fonts[font], size, doc, cells)

    cell, head = face(regular, CELL_SIZE), face(bold, CELL_SIZE)
    intro, small = face(regular, INTRO_SIZE), face(regular, 6.5)
    title_face, section_face = face(bold, TITLE_SIZE), face(bold, SECTION_SIZE)
    chart_title = face(bold, 8.5)

    entries = index_entries(documents, bool(all_series), notes)
    per_page = int((TOP - BOTTOM - _INDEX_HEAD) // _INDEX_LEADING)
    layout = _Layout()
    pages: dict[str, int] = {}

    def mark(key: str, title: str, level: int) -> None:
        # A bookmark per document; the tables only in the index (each bookmark and
        # link is objects ReportLab writes one by one: a tenth of the file's time).
        if level == 0:
            layout.page.marks.append((key, title, level, layout.y + 4))
        pages[key] = layout.number

    index_at = 0
    for number, document in enumerate(documents):
        if number == lead:
            index_at = layout.number
            for _ in range(max(1, math.ceil(len(entries) / per_page))):
                layout.new_page()
        layout.new_page()
        mark(f"d{number}", document.title, 0)
        layout.lines(title_face, LEFT, [document.title], TITLE_SIZE * 1.4)
        layout.lines(intro, LEFT, intro.wrap(document.intro, WIDTH), INTRO_SIZE * 1.3, grey=True)
        layout.y -= 4
        for part, section in enumerate(document.sections):
            # Every row is the client's: its id is in the title, not in each row.
            columns = [c for c in section.columns if c != "client_id" or section.table == "clients"]
            rows = cells.rows(section, columns)
            # The title stays with the table's header and first lines.
            layout.need(SECTION_SIZE * 1.5 + 3 * CELL_LEADING + 4 * PAD_Y + 8)
            layout.y -= 8
            mark(f"d{number}s{part}", section.title, 1)
            layout.lines(
                section_face, LEFT, [f"{section.title}: {section.count} row(s)"], SECTION_SIZE * 1.5
            )
            if rows:
                _table(layout, cell, head, [_heading(c) for c in columns], rows)
            else:
                layout.lines(intro, LEFT, ["None on record."], INTRO_SIZE * 1.4, grey=True)
        if document.slug == "assessments" and all_series:
            layout.need(SECTION_SIZE * 1.5 + 240)
            layout.y -= 4
            mark(f"d{number}charts", CHARTS_TITLE, 1)
            layout.lines(section_face, LEFT, [CHARTS_TITLE], SECTION_SIZE * 1.5)
            _charts(layout, small, chart_title, all_series)
    if lead >= len(documents):
        index_at = layout.number
        for _ in range(max(1, math.ceil(len(entries) / per_page))):
            layout.new_page()
        # The index's pages were added last: they go where the documents' lead ends.

    _index(layout, entries, pages, per_page, frame, index_at, title_face, intro, cell, head)
    total = layout.number
    footer = face(regular, FOOTER_SIZE)
    left_ops = f"1 0 0 1 {LEFT:.2f} {FOOTER_Y:.2f} Tm {footer.show(frame.footer)}"
    streams = []
    for number, page in enumerate(layout.pages, start=1):
        counter = f"page {number} of {total}"
        right_ops = (
            f"1 0 0 1 {RIGHT - footer.width(counter):.2f} {FOOTER_Y:.2f} Tm {footer.show(counter)}"
        )
        streams.append(
            "0.6 G 0.3 w "
            + " ".join(page.graphics)
            + " BT "
            + " ".join(page.text)
            + f" 0.33 g {left_ops} {right_ops} ET"
        )
    info = {
        **frame.info,
        "Author": render.GENERATOR,
        "Creator": render.GENERATOR,
        "Producer": render.GENERATOR,
    }
    return _write_pdf(
        layout.pages, streams, info, {name: font for font, name in fonts.items()}, doc
    )


def _index(
    layout: _Layout,
    entries: Sequence[IndexEntry],
    pages: dict[str, int],
    per_page: int,
    frame: PdfFrame,
    index_at: int,
    title_face: _Type,
    intro: _Type,
    cell: _Type,
    head: _Type,
) -> None:
    """The index on its page(s) (``index_at``: the first one's position): each document's
    and table's rows and page, each document's line a link to it, and its note (why it is
    there) when it has one; drawn last, when the pages are known."""
    saved = layout.pages, layout.y
    count = math.ceil(len(entries) / per_page) or 1
    index_pages = layout.pages[index_at : index_at + count]
    number_right = LEFT + 420
    note_left = number_right + 16
    for page_number, page in enumerate(index_pages):
        layout.pages = [page]
        layout.y = TOP
        if page_number == 0:
            page.marks.insert(0, ("index", "Index", 0, TOP + 4))
            layout.lines(title_face, LEFT, [frame.index_title], TITLE_SIZE * 1.4)
            layout.lines(
                intro, LEFT, intro.wrap(frame.index_about, WIDTH), INTRO_SIZE * 1.3, grey=True
            )
        layout.y = TOP - _INDEX_HEAD + _INDEX_LEADING
        layout.text(head, LEFT, layout.y, "Document")
        layout.text(head, number_right - 60 - head.width("Rows"), layout.y, "Rows")
        layout.text(head, number_right - head.width("Page"), layout.y, "Page")
        if any(entry.note for entry in entries):
            layout.text(head, note_left, layout.y, "Why it is here")
        layout.y -= _INDEX_LEADING
        for entry in entries[page_number * per_page : (page_number + 1) * per_page]:
            face = head if entry.level == 0 else cell
            x = LEFT + 12 * entry.level
            page_text = str(pages[entry.key])
            rows = "" if entry.rows is None else str(entry.rows)
            layout.text(face, x, layout.y, entry.title)
            layout.text(cell, number_right - 60 - cell.width(rows), layout.y, rows)
            layout.text(face, number_right - face.width(page_text), layout.y, page_text)
            if entry.note:
                # One line: the document's own page gives the whole reason.
                lines = cell.wrap(entry.note, RIGHT - note_left)
                shown = lines[0] + (" ..." if len(lines) > 1 else "")
                layout.text(cell, note_left, layout.y, shown, grey=True)
            if entry.level == 0:
                rect = (LEFT, layout.y - 2.5, number_right, layout.y + CELL_SIZE + 1.5)
                page.links.append((entry.key, rect))
            layout.y -= _INDEX_LEADING
    layout.pages, layout.y = saved


# ---------------------------------------------------------------------------
# The file


class _Document:
    """The key of one PDF to ReportLab's font state (which characters went into
    which subset of each font), as ReportLab keys it by its own document."""


# Subset bytes compressed, widths and ToUnicode map, by font and glyph list: the same
# ASCII subset goes into nearly every PDF.
_FONT_PARTS: dict[tuple[str, tuple[int, ...]], tuple[bytes, bytes, str]] = {}


def _font_parts(font: Any, subset: Sequence[int], base: str) -> tuple[bytes, bytes, str]:
    from reportlab.pdfbase.ttfonts import makeToUnicodeCMap

    key = (font.fontName, tuple(subset))
    parts = _FONT_PARTS.get(key)
    if parts is None:
        if len(_FONT_PARTS) > 256:
            _FONT_PARTS.clear()
        face = font.face
        raw = face.makeSubset(list(subset))
        program, length1 = zlib.compress(raw), len(raw)
        to_unicode = zlib.compress(makeToUnicodeCMap(base, list(subset)).encode("latin-1"))
        widths = " ".join(f"{face.getCharWidth(code):g}" for code in subset)
        parts = _FONT_PARTS[key] = (
            b"<< /Length %d /Length1 %d /Filter /FlateDecode >>\nstream\n" % (len(program), length1)
            + program
            + b"\nendstream",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(to_unicode)
            + to_unicode
            + b"\nendstream",
            widths,
        )
    return parts


def _link(rect: tuple[float, float, float, float], page_object: int, top: float) -> str:
    """A link annotation over ``rect`` to ``top`` of a page."""
    corners = " ".join(f"{v:.2f}" for v in rect)
    return (
        f"<< /Type /Annot /Subtype /Link /Rect [{corners}] /Border [0 0 0] "
        f"/Dest [{page_object} 0 R /XYZ 0 {top:.2f} 0] >>"
    )


def _pdf_text(text: str) -> str:
    """A PDF text string: ASCII as it is (escaped), anything else as UTF-16."""
    if text.isascii() and text.isprintable():
        return f"({text.translate(render.PDF_ESCAPES)})"
    return "<FEFF" + text.encode("utf-16-be").hex().upper() + ">"


def _write_pdf(
    pages: Sequence[_Page],
    streams: Sequence[str],
    info: dict[str, str],
    fonts: dict[str, str],
    doc: _Document,
) -> bytes:
    """The PDF file: catalog, pages, the fonts' subsets embedded, the outline (a
    bookmark per mark) and the index's links; no clock, so the same pages give
    the same bytes.

    Written here rather than by ReportLab's canvas: its generic object writer
    cost more than laying out the pages. The fonts are embedded as ReportLab's
    own ``TTFont.addObjects`` embeds them (TrueType subsets of up to 256 glyphs,
    each with its widths and a ToUnicode map, so text is selectable).
    """
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import FF_NONSYMBOLIC, FF_SYMBOLIC, SUBSETN

    objects: list[bytes] = []

    def reserve() -> int:
        objects.append(b"")
        return len(objects)

    def put(number: int, body: bytes | str) -> int:
        objects[number - 1] = body.encode("latin-1") if isinstance(body, str) else body
        return number

    catalog, tree, about, resources, outline = (reserve() for _ in range(5))
    page_numbers = [(reserve(), reserve()) for _ in pages]
    marks: dict[str, tuple[int, float]] = {}
    for (page_object, _), page in zip(page_numbers, pages, strict=True):
        for key, _title, _level, top in page.marks:
            marks[key] = (page_object, top)
    font_refs = []
    for name, font_name in fonts.items():
        font = pdfmetrics.getFont(font_name)
        state = font.state.get(doc) or font.State(font._asciiReadable, font)
        face = font.face
        for number, subset in enumerate(state.subsets):
            base = (b"".join((SUBSETN(number), b"+", face.name, face.subfontNameX))).decode(
                "latin-1"
            )
            program, to_unicode, widths = _font_parts(font, subset, base)
            program_ref, unicode_ref = put(reserve(), program), put(reserve(), to_unicode)
            flags = (face.flags & ~FF_NONSYMBOLIC) | FF_SYMBOLIC
            bbox = " ".join(f"{v:g}" for v in face.bbox)
            descriptor = put(
                reserve(),
                f"<< /Type /FontDescriptor /Ascent {face.ascent:g} /CapHeight {face.capHeight:g} "
                f"/Descent {face.descent:g} /Flags {flags} /FontBBox [{bbox}] /FontName /{base} "
                f"/ItalicAngle {face.italicAngle:g} /StemV {face.stemV:g} "
                f"/FontFile2 {program_ref} 0 R /MissingWidth {face.defaultWidth:g} >>",
            )
            subset_name = f"{name}+{number}"
            reference = put(
                reserve(),
                f"<< /Type /Font /Subtype /TrueType /Name {subset_name} /BaseFont /{base} "
                f"/FirstChar 0 /LastChar {len(subset) - 1} /Widths [{widths}] "
                f"/FontDescriptor {descriptor} 0 R /ToUnicode {unicode_ref} 0 R >>",
            )
            font_refs.append(f"{subset_name} {reference} 0 R")
    put(resources, f"<< /Font << {' '.join(font_refs)} >> /ProcSet [/PDF /Text] >>")
    for (page_object, content), page, stream in zip(page_numbers, pages, streams, strict=True):
        data = zlib.compress(stream.encode("latin-1"))
        put(
            content,
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
        )
        annotations = " ".join(
            f"{put(reserve(), _link(rect, *marks[key]))} 0 R" for key, rect in page.links
        )
        put(
            page_object,
            f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 {PAGE_WIDTH:g} {PAGE_HEIGHT:g}] "
            f"/Resources {resources} 0 R /Contents {content} 0 R"
            + (f" /Annots [{annotations}]" if annotations else "")
            + " >>",
        )
    kids = " ".join(f"{page_object} 0 R" for page_object, _ in page_numbers)
    put(tree, f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    items = [(title, key) for page in pages for key, title, _level, _top in page.marks]
    item_numbers = [reserve() for _ in items]
    for index, ((title, key), number) in enumerate(zip(items, item_numbers, strict=True)):
        links = f"/Parent {outline} 0 R"
        if index:
            links += f" /Prev {item_numbers[index - 1]} 0 R"
        if index + 1 < len(items):
            links += f" /Next {item_numbers[index + 1]} 0 R"
        page_object, top = marks[key]
        put(
            number,
            f"<< /Title {_pdf_text(title)} {links} /Dest [{page_object} 0 R /XYZ 0 {top:.2f} 0] >>",
        )
    if item_numbers:
        put(
            outline,
            f"<< /Type /Outlines /First {item_numbers[0]} 0 R /Last {item_numbers[-1]} 0 R "
            f"/Count {len(items)} >>",
        )
    else:
        put(outline, "<< /Type /Outlines /Count 0 >>")
    put(
        catalog,
        f"<< /Type /Catalog /Pages {tree} 0 R /Outlines {outline} 0 R /PageMode /UseOutlines >>",
    )
    put(about, "<< " + " ".join(f"/{k} {_pdf_text(v)}" for k, v in info.items()) + " >>")
    out = bytearray(b"%PDF-1.4\n%\x93\x8c\x8b\x9e\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    start = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        about,
        start,
    )
    return bytes(out)
