"""Turn packet content into file bytes: PDF (ReportLab), HTML, CSV, SVG charts.

Every renderer is a pure function of its content and returns bytes that depend
only on it: ReportLab runs with ``invariant=1`` (fixed creation date and
document id), the charts are SVG text with fixed-precision numbers, HTML and
CSV carry no clock. Values from the records are escaped everywhere (HTML, and
ReportLab's paragraph markup).
"""

from __future__ import annotations

import csv
import functools
import html
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import pandas as pd

from metaudit.packets.content import (
    COVER_MESSAGES_PER_RULE,
    FAIL,
    NOT_APPLICABLE,
    PASS,
    STATUS_LABELS,
    ChartSeries,
    Cover,
    RecordDocument,
    RuleStatus,
    Section,
)
from metaudit.spec import rulebook
from metaudit.spec.findings import csv_cell

FONT = "MetauditSans"
FONT_BOLD = "MetauditSans-Bold"
GENERATOR = "metaudit"


# ---------------------------------------------------------------------------
# Values


def cell_text(value: Any, *, for_csv: bool = False) -> str:
    """A record value as text: dates as YYYY-MM-DD, timestamps in UTC, NA as blank."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is not None:
            return value.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        if value == value.normalize():
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        if for_csv:
            return "true" if value else "false"
        return "yes" if value else "no"
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        number = float(value)
        return str(int(number)) if number.is_integer() else format(number, ".10g")
    return str(value)


def is_datetime(dtype: Any) -> bool:
    """A numpy-backed datetime dtype (naive or with a time zone): what
    :func:`datetime_texts` formats at once."""
    return isinstance(dtype, pd.DatetimeTZDtype) or (
        isinstance(dtype, np.dtype) and dtype.kind == "M"
    )


def datetime_texts(values: Any) -> list[str]:
    """:func:`cell_text` of each value of a datetime array without missing values
    (``pd.factorize``'s uniques), formatted by numpy at once.

    Boxing each value as a Timestamp to format it cost more than the rest of a
    practice's record text (a column of signing times holds a distinct value per
    row). numpy's seconds are floored as ``strftime("%S")`` drops the fraction;
    years before 1000 or after 9999 (which ``strftime`` does not pad to four
    digits) are formatted value by value.
    """
    index = pd.DatetimeIndex(values)
    aware = index.tz is not None
    if aware:
        index = index.tz_convert("UTC").tz_localize(None)
    raw = index.to_numpy()
    years = raw.astype("datetime64[Y]").astype(np.int64) + 1970
    if len(raw) and (years.min() < 1000 or years.max() > 9999):
        return [cell_text(value) for value in pd.Series(values).astype(object).tolist()]
    seconds = np.datetime_as_string(raw, unit="s")
    if aware:
        return [text + "Z" for text in seconds.tolist()]
    days = raw.astype("datetime64[D]")
    texts: list[str] = np.where(
        raw == days, np.datetime_as_string(days, unit="D"), seconds
    ).tolist()
    return texts


def heading(column: str) -> str:
    """A column name as a reader's heading: ``session_date`` -> "Session date"."""
    words = column.replace("_", " ")
    for short, long in (("poe", "plan of exercise"), ("npi", "NPI"), ("cpt", "CPT")):
        words = " ".join(long if w == short else w for w in words.split(" "))
    words = words.replace("icd10", "ICD-10-CM").replace("oon", "out-of-network")
    return words[:1].upper() + words[1:]


def render_csv(rows: pd.DataFrame, columns: Sequence[str]) -> bytes:
    """Rows as CSV (header row, ``\\n`` line ends, UTF-8); text that begins like a
    spreadsheet formula is neutralised (:func:`metaudit.spec.findings.csv_cell`)."""
    return TableText(rows, columns).csv(range(len(rows)))


class TableText:
    """A table's rows as HTML table rows and CSV cells, for a practice's table.

    Made once per practice table and filled row by row as clients' packets ask
    for their rows (a practice's clients without activity cost nothing); a
    column's repeated values (dates, codes, numbers) are formatted once.
    """

    def __init__(self, rows: pd.DataFrame, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.html_head = "".join(f"<th>{html.escape(heading(c))}</th>" for c in self.columns)
        self.csv_head = [csv_cell(column) for column in self.columns]
        self._cells: list[_Cells] = [_column_cells(rows[column]) for column in self.columns]
        self._html: dict[int, str] = {}
        self._csv: dict[int, tuple[str, ...]] = {}

    def _fill(self, positions: Iterable[int]) -> list[int]:
        wanted = [int(i) for i in positions]
        new = [i for i in wanted if i not in self._html]
        if new:
            columns = [cells(new) for cells in self._cells]
            html_rows = zip(*(h for h, _ in columns), strict=True)
            csv_rows = zip(*(c for _, c in columns), strict=True)
            for i, html_cells, csv_cells in zip(new, html_rows, csv_rows, strict=True):
                self._html[i] = "<tr>" + "".join(html_cells) + "</tr>"
                self._csv[i] = csv_cells
        return wanted

    def html(self, positions: Iterable[int], empty: str = "None on record.") -> str:
        """The rows at ``positions`` as an HTML table (a note when there are none)."""
        wanted = self._fill(positions)
        if not wanted:
            return f'<p class="empty">{html.escape(empty)}</p>'
        body = "".join([self._html[i] for i in wanted])
        return f"<table><thead><tr>{self.html_head}</tr></thead><tbody>{body}</tbody></table>"

    def csv(self, positions: Iterable[int]) -> bytes:
        """The rows at ``positions`` as CSV, with the header row."""
        wanted = self._fill(positions)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.csv_head)
        writer.writerows([self._csv[i] for i in wanted])
        return buffer.getvalue().encode("utf-8")


_Cells = Callable[[list[int]], tuple[list[str], list[str]]]
# html.escape's replacements, in one pass.
_HTML_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}
)


def _column_cells(values: pd.Series) -> _Cells:
    """A function from row positions to the column's HTML cells and CSV cells there."""
    if isinstance(values.dtype, pd.StringDtype):
        # Text is its own cell text (cell_text of a str): escaped, or neutralised.
        texts = values.to_numpy(dtype=object, na_value=None).tolist()

        def text_cells(rows: list[int]) -> tuple[list[str], list[str]]:
            taken = [texts[i] for i in rows]
            return (
                [
                    "<td></td>" if v is None else "<td>" + v.translate(_HTML_ESCAPES) + "</td>"
                    for v in taken
                ],
                ["" if v is None else str(csv_cell(v)) for v in taken],
            )

        return text_cells
    if values.dtype == object:
        # Mixed Python values hash alike (1, 1.0, True): each is formatted on its own.
        objects = values.tolist()

        def object_cells(rows: list[int]) -> tuple[list[str], list[str]]:
            pairs = [_cell_pair(objects[i]) for i in rows]
            return [h for h, _ in pairs], [c for _, c in pairs]

        return object_cells
    codes, uniques = pd.factorize(values)
    code_list = codes.tolist()
    done: dict[int, tuple[str, str]] = {-1: ("<td></td>", "")}  # -1: a missing value
    # A date's text is its CSV cell too (cell_text differs for CSV only for booleans).
    dated = datetime_texts(uniques) if is_datetime(values.dtype) else None
    distinct = (
        [] if dated is not None else pd.Series(uniques, dtype=values.dtype).astype(object).tolist()
    )

    def pair_of(code: int) -> tuple[str, str]:
        if dated is None:
            return _cell_pair(distinct[code])
        text = dated[code]
        return f"<td>{html.escape(text)}</td>", text

    def coded_cells(rows: list[int]) -> tuple[list[str], list[str]]:
        pairs = []
        for i in rows:
            code = code_list[i]
            pair = done.get(code)
            if pair is None:
                pair = done[code] = pair_of(code)
            pairs.append(pair)
        return [h for h, _ in pairs], [c for _, c in pairs]

    return coded_cells


def _cell_pair(value: Any) -> tuple[str, str]:
    return f"<td>{html.escape(cell_text(value))}</td>", _csv_value(value)


class RecordsText:
    """The practice's record tables as text (``TableText``), each made on first use."""

    def __init__(self, tables: Mapping[str, pd.DataFrame]) -> None:
        self._tables = tables
        self._text: dict[tuple[str, tuple[str, ...]], TableText] = {}

    def table(self, section: Section) -> TableText:
        key = (section.table, section.columns)
        text = self._text.get(key)
        if text is None:
            text = self._text[key] = TableText(self._tables[section.table], section.columns)
        return text


def _csv_value(value: Any) -> str:
    text = cell_text(value, for_csv=True)
    # Only text is neutralised: a negative number is no formula.
    return str(csv_cell(text)) if isinstance(value, str) else text


# How deep render_json breaks JSON into lines: the validation report's suites and each
# expectation's result get a line each; what lies deeper is written on that line.
_JSON_LINE_DEPTH = 4


def render_json(data: Any) -> bytes:
    """Stable, readable JSON bytes: keys sorted, objects and arrays broken into
    indented lines down to ``_JSON_LINE_DEPTH`` levels, deeper values on one line.

    The standard library's JSON encoder runs in C only without indentation, and
    indenting every level of a client's validation report cost more than the rest
    of its packet: the top levels are laid out here, the values below them encoded
    in C.
    """
    return (_json_lines(data, 0) + "\n").encode("utf-8")


_JSON_FLAT = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, allow_nan=False, default=str, separators=(", ", ": ")
)


def _json_lines(value: Any, level: int) -> str:
    if level >= _JSON_LINE_DEPTH or not isinstance(value, dict | list | tuple) or not value:
        return _JSON_FLAT.encode(value)
    inner = " " * (level + 1)
    if isinstance(value, dict):
        items = [
            f"{inner}{_JSON_FLAT.encode(str(key))}: {_json_lines(value[key], level + 1)}"
            for key in sorted(value, key=str)
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    items = [f"{inner}{_json_lines(item, level + 1)}" for item in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * level + "]"


# ---------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em;color:#1a1a1a;max-width:80em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
h3{font-size:1em;margin-top:1.2em}p.meta{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right}
.pass{color:#16632b}.fail{color:#a3161b;font-weight:bold}.na{color:#666}
.empty{color:#666;font-style:italic}nav a{margin-right:1em}
@media print{body{margin:0}nav{display:none}}
""".strip()


def html_page(title: str, subtitle: str, body: str) -> bytes:
    """A standalone HTML page (inline CSS, no scripts, nothing fetched)."""
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src 'self'; style-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="meta">{html.escape(subtitle)}</p>\n'
        f"{body}\n</body></html>\n"
    )
    return page.encode("utf-8")


def html_table(rows: pd.DataFrame, columns: Sequence[str], empty: str = "None on record.") -> str:
    """An escaped HTML table of ``rows``."""
    return TableText(rows, columns).html(range(len(rows)), empty)


def render_document_html(document: RecordDocument, who: str, text: RecordsText) -> bytes:
    """One document of the client's records (e.g. the session logs) as an HTML page."""
    parts = [
        '<nav><a href="index.html">All records</a><a href="../cover.pdf">Cover</a></nav>',
        f"<p>{html.escape(document.intro)}</p>",
    ]
    for section in document.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append(
            f'<p class="meta">{section.count} row(s); also as '
            f'<a href="{html.escape(section.csv_name)}">{html.escape(section.csv_name)}</a></p>'
        )
        parts.append(text.table(section).html(section.positions))
    return html_page(document.title, who, "\n".join(parts))


def render_records_index_html(
    documents: Sequence[RecordDocument], charts: Sequence[tuple[str, ChartSeries]], who: str
) -> bytes:
    """The records' front page: the documents, the charts, and what each file holds."""
    items = []
    for document in documents:
        count = sum(s.count for s in document.sections)
        csvs = ", ".join(
            f'<a href="{html.escape(s.csv_name)}">{html.escape(s.csv_name)}</a>'
            for s in document.sections
        )
        items.append(
            f'<tr><td><a href="{html.escape(document.slug)}.html">{html.escape(document.title)}</a>'
            f'</td><td class="num">{count}</td><td>{csvs}</td></tr>'
        )
    parts = [
        '<nav><a href="../cover.pdf">Cover</a><a href="../validation/data_docs.html">'
        'Validation report</a><a href="../findings.csv">Findings</a></nav>',
        "<h2>Documents</h2>",
        "<table><thead><tr><th>Document</th><th>Rows</th><th>CSV files</th></tr></thead>"
        f"<tbody>{''.join(items)}</tbody></table>",
        "<h2>Outcome-measure trends</h2>",
    ]
    if not charts:
        parts.append('<p class="empty">No outcome measure or measurable goal on record.</p>')
    for path, series in charts:
        alt = f"Trend of {series.instrument}"
        parts.append(
            f"<h3>{html.escape(series.instrument)}"
            f"{' (' + html.escape(series.direction) + ')' if series.direction else ''}</h3>"
            f'<img src="../{html.escape(path)}" alt="{html.escape(alt)}" width="640">'
        )
    return html_page("The client's records", who, "\n".join(parts))


def render_data_docs_html(validation: Mapping[str, Any], who: str) -> bytes:
    """The client's validation results in the manner of Great Expectations Data Docs."""
    stats = validation.get("statistics", {})
    overall = "Succeeded" if validation.get("success") else "Failed"
    parts = [
        '<nav><a href="../cover.pdf">Cover</a><a href="../records/index.html">Records</a>'
        '<a href="client_validation.json">JSON</a></nav>',
        f"<p>{html.escape(str(validation.get('about', '')))}</p>",
        "<h2>Overview</h2>",
        "<table><tbody>"
        f'<tr><th>Status</th><td class="{"pass" if validation.get("success") else "fail"}">'
        f"{overall}</td></tr>"
        f"<tr><th>Evaluated expectations</th><td>{stats.get('evaluated_expectations')}</td></tr>"
        f"<tr><th>Successful</th><td>{stats.get('successful_expectations')}</td></tr>"
        f"<tr><th>Unsuccessful</th><td>{stats.get('unsuccessful_expectations')}</td></tr>"
        f"<tr><th>Success percent</th><td>{_pct(stats.get('success_percent'))}</td></tr>"
        f"<tr><th>Great Expectations</th><td>{html.escape(str(validation.get('great_expectations_version')))}</td></tr>"
        "</tbody></table>",
    ]
    for suite in validation.get("suites", []):
        rows = []
        for entry in suite.get("results", []):
            config = entry["expectation_config"]
            result = entry["result"]
            meta = config.get("meta", {})
            if not result["evaluated_count"]:
                css, state = "na", "not evaluated"
            elif entry["success"]:
                css, state = "pass", "passed"
            else:
                css, state = "fail", "failed"
            failing = ", ".join(result["unexpected_index_list"])
            if failing and result.get("attribution") == "rule":
                failing += " (failed the rule; this check could not be singled out)"
            rows.append(
                "<tr>"
                f"<td>{html.escape(str(meta.get('rule_id', '')))}</td>"
                f"<td><code>{html.escape(str(config.get('type', '')))}</code><br>"
                f"{html.escape(_kwargs_text(config.get('kwargs', {})))}"
                f"{'<br>part: ' + html.escape(str(meta['part'])) if meta.get('part') else ''}</td>"
                f'<td class="{css}">{state}</td>'
                f'<td class="num">{result["evaluated_count"]} of {result["element_count"]}</td>'
                f'<td class="num">{result["unexpected_count"]}</td>'
                f"<td>{html.escape(failing)}</td></tr>"
            )
        css = "pass" if suite.get("success") else "fail"
        parts.append(
            f"<h2>{html.escape(str(suite.get('suite_name')))} "
            f'<span class="{css}">{"passed" if suite.get("success") else "failed"}</span></h2>'
            f'<p class="meta">Frame {html.escape(str(suite.get("frame")))}: one row per '
            f"{html.escape(str(suite.get('entity_type')))}; {suite.get('client_rows')} row(s) of this "
            f"client, {suite.get('practice_rows')} in the practice.</p>"
            "<table><thead><tr><th>Rule</th><th>Expectation</th><th>Status</th>"
            "<th>Rows evaluated</th><th>Unexpected</th><th>Failing records</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return html_page("Validation report (Great Expectations)", who, "\n".join(parts))


def _kwargs_text(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(kwargs.items()))


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f} %"


# ---------------------------------------------------------------------------
# Charts


@dataclass(frozen=True)
class ChartPlot:
    """Exactly what one chart draws (the test seam for "the chart has the right series")."""

    title: str
    measured_dates: tuple[str, ...]
    measured_values: tuple[float, ...]
    targets: tuple[tuple[str, float, str | None], ...]  # (label, value, target date)


def chart_plot(series: ChartSeries) -> ChartPlot:
    """The lines and markers of an instrument's chart."""
    unit = f" ({series.unit})" if series.unit else ""
    direction = f", {series.direction}" if series.direction else ""
    targets = tuple(
        (
            f"{target.term or 'goal'}-term goal {target.goal_id}: {cell_text(target.target_value)}"
            + (f" by {target.target_date}" if target.target_date else ""),
            float(target.target_value),
            target.target_date,
        )
        for target in series.targets
        if target.target_value is not None
    )
    return ChartPlot(
        title=f"{series.instrument}{unit}{direction}",
        measured_dates=tuple(p.assessed_on for p in series.points),
        measured_values=tuple(p.value for p in series.points),
        targets=targets,
    )


# The chart's geometry (SVG user units, about pixels): the plot area and the legend below.
_CHART_WIDTH = 640
_PLOT_LEFT, _PLOT_RIGHT, _PLOT_TOP, _PLOT_BOTTOM = 64, 620, 34, 272
_LEGEND_TOP = 312
_LEGEND_LINE = 15
# matplotlib's default colour cycle, from its third colour on for the goals (as before).
_MEASURED_COLOUR = "#1f4e79"
GOAL_COLOURS = (
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#1f77b4",
    "#ff7f0e",
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def render_chart_svg(plot: ChartPlot) -> bytes:
    """An instrument's trend with its goal targets as a standalone SVG.

    Drawn here as text (no plotting library, no figure per chart): the measured
    values as a line with a dot and its value at each assessment, each goal's
    target as a dashed line with a star at its target date, the title, both
    axes with their ticks and labels, and a legend. Numbers are written with
    fixed precision, so the same plot gives the same bytes.
    """
    # A value no axis can hold (infinite, NaN) is left out of the drawing; the
    # records' CSV and HTML still show it.
    measured = [
        (when, value)
        for when, value in zip(plot.measured_dates, plot.measured_values, strict=True)
        if math.isfinite(value)
    ]
    plot = ChartPlot(
        title=plot.title,
        measured_dates=tuple(when for when, _ in measured),
        measured_values=tuple(value for _, value in measured),
        targets=tuple(t for t in plot.targets if math.isfinite(t[1])),
    )
    days = [day_number(d) for d in plot.measured_dates]
    target_days = [day_number(t[2]) for t in plot.targets if t[2]]
    values = list(plot.measured_values) + [t[1] for t in plot.targets]
    legend = (["measured"] if days else []) + [t[0] for t in plot.targets]
    height = _LEGEND_TOP + max(len(legend), 1) * _LEGEND_LINE + 6
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_CHART_WIDTH} {height}" font-family="DejaVu Sans, Verdana, sans-serif" '
        'font-size="10" role="img">',
        f"<title>{xml_escape(plot.title)}</title>",
        f'<rect width="{_CHART_WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{(_PLOT_LEFT + _PLOT_RIGHT) / 2:.0f}" y="20" text-anchor="middle" '
        f'font-size="13">{xml_escape(plot.title)}</text>',
    ]
    if not values:
        out.append(
            f'<text x="{(_PLOT_LEFT + _PLOT_RIGHT) / 2:.0f}" y="{(_PLOT_TOP + _PLOT_BOTTOM) / 2:.0f}" '
            'text-anchor="middle">no data</text>'
        )
    else:
        low, high, y_ticks = value_axis(values)
        first, last, x_ticks = date_axis(days + target_days)

        def x(day: int) -> float:
            return _PLOT_LEFT + (day - first) / (last - first) * (_PLOT_RIGHT - _PLOT_LEFT)

        def y(value: float) -> float:
            return _PLOT_BOTTOM - (value - low) / (high - low) * (_PLOT_BOTTOM - _PLOT_TOP)

        out.append('<g stroke="#dddddd" stroke-width="0.6">')
        for tick in y_ticks:
            out.append(
                f'<line x1="{_PLOT_LEFT}" x2="{_PLOT_RIGHT}" y1="{_n(y(tick))}" y2="{_n(y(tick))}"/>'
            )
        for tick, _label in x_ticks:
            out.append(
                f'<line x1="{_n(x(tick))}" x2="{_n(x(tick))}" y1="{_PLOT_TOP}" y2="{_PLOT_BOTTOM}"/>'
            )
        out.append("</g>")
        out.append('<g class="y-ticks" text-anchor="end">')
        for tick in y_ticks:
            out.append(
                f'<text x="{_PLOT_LEFT - 5}" y="{_n(y(tick) + 3.5)}">{cell_text(tick)}</text>'
            )
        out.append('</g><g class="x-ticks" text-anchor="middle">')
        for tick, label in x_ticks:
            out.append(f'<text x="{_n(x(tick))}" y="{_PLOT_BOTTOM + 14}">{label}</text>')
        out.append("</g>")
        for number, (label, value, target_date) in enumerate(plot.targets):
            colour = GOAL_COLOURS[number % len(GOAL_COLOURS)]
            out.append(
                f'<g class="goal" stroke="{colour}" fill="{colour}"><title>{xml_escape(label)}</title>'
                f'<line x1="{_PLOT_LEFT}" x2="{_PLOT_RIGHT}" y1="{_n(y(value))}" y2="{_n(y(value))}" '
                'stroke-width="1" stroke-dasharray="5,3"/>'
            )
            if target_date:
                out.append(_star(x(day_number(target_date)), y(value)))
            out.append("</g>")
        if days:
            points = " ".join(
                f"{_n(x(d))},{_n(y(v))}" for d, v in zip(days, plot.measured_values, strict=True)
            )
            out.append(
                f'<g class="measured" fill="{_MEASURED_COLOUR}"><polyline points="{points}" '
                f'fill="none" stroke="{_MEASURED_COLOUR}" stroke-width="1.6"/>'
            )
            for when, day, value in zip(
                plot.measured_dates, days, plot.measured_values, strict=True
            ):
                out.append(
                    f'<circle cx="{_n(x(day))}" cy="{_n(y(value))}" r="3.5">'
                    f"<title>{xml_escape(when)}: {cell_text(value)}</title></circle>"
                    f'<text x="{_n(x(day))}" y="{_n(y(value) - 7)}" text-anchor="middle" '
                    f'font-size="8" fill="#1a1a1a">{cell_text(value)}</text>'
                )
            out.append("</g>")
    # The axes: a frame around the plot and what each axis holds.
    out.append(
        f'<rect x="{_PLOT_LEFT}" y="{_PLOT_TOP}" width="{_PLOT_RIGHT - _PLOT_LEFT}" '
        f'height="{_PLOT_BOTTOM - _PLOT_TOP}" fill="none" stroke="#333333" stroke-width="0.8"/>'
        f'<text x="{(_PLOT_LEFT + _PLOT_RIGHT) / 2:.0f}" y="{_PLOT_BOTTOM + 30}" '
        'text-anchor="middle">assessment or target date</text>'
        f'<text transform="translate(14 {(_PLOT_TOP + _PLOT_BOTTOM) / 2:.0f}) rotate(-90)" '
        'text-anchor="middle">value</text>'
    )
    out.append('<g class="legend">')
    for number, label in enumerate(legend):
        top = _LEGEND_TOP + number * _LEGEND_LINE
        if days and number == 0:
            style = f'stroke="{_MEASURED_COLOUR}" stroke-width="1.6"'
        else:
            colour = GOAL_COLOURS[(number - (1 if days else 0)) % len(GOAL_COLOURS)]
            style = f'stroke="{colour}" stroke-width="1" stroke-dasharray="5,3"'
        out.append(
            f'<line x1="{_PLOT_LEFT}" x2="{_PLOT_LEFT + 24}" y1="{top - 3.5}" y2="{top - 3.5}" {style}/>'
            f'<text x="{_PLOT_LEFT + 30}" y="{top}">{xml_escape(label)}</text>'
        )
    out.append("</g></svg>\n")
    return "\n".join(out).encode("utf-8")


def _n(value: float) -> str:
    """A coordinate with one decimal (fixed, so the bytes are stable)."""
    return f"{value:.1f}"


def _star(cx: float, cy: float, outer: float = 7.0) -> str:
    inner = outer * 0.4
    corners = []
    for k in range(10):
        radius = outer if k % 2 == 0 else inner
        angle = math.pi / 2 + k * math.pi / 5
        corners.append(f"{_n(cx + radius * math.cos(angle))},{_n(cy - radius * math.sin(angle))}")
    return f'<polygon class="target" points="{" ".join(corners)}"/>'


def day_number(day: str) -> int:
    return datetime.strptime(day[:10], "%Y-%m-%d").toordinal()


def value_axis(values: Sequence[float]) -> tuple[float, float, list[float]]:
    """The value axis: from low to high with room for the labels, and round ticks."""
    low, high = min(values), max(values)
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    span = high - low
    if not math.isfinite(span * 1.3):  # beyond a float's range: the ends only
        return low, high, [low, high]
    low, high = low - 0.15 * span, high + 0.15 * span  # room for the value labels
    raw = (high - low) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    tick = math.ceil(low / step) * step
    ticks = []
    while tick <= high + 1e-9 * step:
        ticks.append(round(tick, 10))
        tick += step
    return low, high, ticks


def date_axis(days: Sequence[int]) -> tuple[float, float, list[tuple[int, str]]]:
    """The date axis: the dates with a margin, and up to 7 ticks (month starts when
    the span is long enough, else days)."""
    first, last = min(days), max(days)
    pad = max((last - first) * 0.05, 3)
    # Within the calendar's first and last day (a margin may not reach past them).
    lo, hi = max(first - pad, 1), min(last + pad, date.max.toordinal())
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    start, end = datetime.fromordinal(math.ceil(lo)), datetime.fromordinal(math.floor(hi))
    months = (end.year - start.year) * 12 + end.month - start.month
    ticks: list[tuple[int, str]] = []
    if months >= 2:
        every = max(1, math.ceil(months / 6))
        year, month = start.year, start.month
        if start.day != 1:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        while year <= date.max.year:
            day = datetime(year, month, 1)
            if day > end:
                break
            label = _MONTHS[month - 1] + (f" {year}" if month == 1 or not ticks else "")
            ticks.append((day.toordinal(), label))
            for _ in range(every):
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    else:
        every = max(1, math.ceil((end.toordinal() - start.toordinal()) / 6))
        for number in range(start.toordinal(), end.toordinal() + 1, every):
            ticks.append((number, datetime.fromordinal(number).strftime("%Y-%m-%d")))
    return lo, hi, ticks


# ---------------------------------------------------------------------------
# PDF


@functools.cache
def font_names() -> tuple[str, str]:
    """Register a Unicode font (DejaVu Sans, shipped with matplotlib) once per process.

    ReportLab's built-in Helvetica knows Latin-1 only: names from the records
    may hold any character.
    """
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    folder = _dejavu_folder()
    for name, file in ((FONT, "DejaVuSans.ttf"), (FONT_BOLD, "DejaVuSans-Bold.ttf")):
        font = TTFont(name, str(folder / file))
        _keep_subsets(font.face)
        pdfmetrics.registerFont(font)
    pdfmetrics.registerFontFamily(
        FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD
    )
    return FONT, FONT_BOLD


def warm_up() -> None:
    """Load ReportLab and the fonts, and make the font subsets of ASCII text, in this
    process: a process that forks the practices' parts (:mod:`metaudit.pipeline.workers`)
    hands them over made, where each part would load and make them again (about 0.7 s a
    process)."""
    import io

    import reportlab.platypus  # ruff: ignore[unused-import]  (the covers' layout)
    from reportlab.pdfgen.canvas import Canvas

    regular, bold = font_names()
    canvas = Canvas(io.BytesIO())
    for name in (regular, bold):
        canvas.setFont(name, 10)
        canvas.drawString(10, 10, "MET Audit")
    canvas.save()


def _dejavu_folder() -> Path:
    """matplotlib's folder of DejaVu fonts, found without importing matplotlib (a third
    of a second a process, for a path)."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib (which ships the DejaVu fonts packets use) is missing")
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


def _keep_subsets(face: Any) -> None:
    """Make each embedded font subset once per process, not once per PDF, and lean.

    ReportLab embeds the characters a PDF uses as subsets of up to 256 glyphs; the
    first holds printable ASCII at its own codes, so PDFs of ASCII text embed the
    same subset, and building it (parsing and re-writing the TrueType tables) cost
    milliseconds per font and file. The subset's bytes depend only on its glyph
    list: they are kept by it (a few dozen distinct lists in a night).
    """
    make = face.makeSubset

    @functools.lru_cache(maxsize=64)
    def subset(codes: tuple[int, ...]) -> bytes:
        return lean_subset(make(list(codes)))

    face.makeSubset = lambda codes: subset(tuple(codes))
    # Compressing the subset into a cover's font stream cost as much again: the stream
    # keeps the compressed bytes of each subset (zlib gives the same bytes every time).
    add = face.addSubsetObjects

    def add_subset_objects(doc: Any, font_name: str, codes: Any) -> Any:
        reference = add(doc, font_name, codes)
        stream = doc.idToObject.get(f"fontFile:{face.filename}({font_name})")
        if stream is not None and stream.filters:
            stream.filters = [_KEPT_FLATE]
        return reference

    face.addSubsetObjects = add_subset_objects


class _KeptFlate:
    """ReportLab's FlateDecode filter, each result kept by its input (a font subset's
    bytes, the same object for the same subset: ``_keep_subsets``)."""

    pdfname = "FlateDecode"

    @staticmethod
    def encode(data: bytes | str) -> bytes:
        return _flate(data.encode("utf8") if isinstance(data, str) else data)


@functools.lru_cache(maxsize=64)
def _flate(data: bytes) -> bytes:
    import zlib

    return zlib.compress(data)


_KEPT_FLATE = _KeptFlate()


# The name table entries a font needs to be named (family, style, unique, full,
# version, PostScript name); DejaVu's others are its licence and URLs, 15 kB a subset.
_KEPT_NAME_IDS = frozenset({1, 2, 3, 4, 5, 6})


def lean_subset(data: bytes) -> bytes:
    """A font subset as a PDF needs it: without its hinting (the programs for rasterising
    at small pixel sizes on screen, which PDF viewers and printers scale past) and
    without the long entries of its name table. DejaVu's subset of ASCII drops from
    35 to 24 kB, 18 to 10 kB compressed: two fifths of a cover's bytes. The glyphs,
    their widths and their codes are untouched, and the same subset gives the same
    bytes (no timestamp is renewed)."""
    from fontTools.ttLib import TTFont as FontFile
    from fontTools.ttLib.tables import ttProgram

    font = FontFile(io.BytesIO(data), recalcTimestamp=False)
    for tag in ("fpgm", "prep", "cvt "):
        if tag in font:
            del font[tag]
    glyphs = font["glyf"]
    for name in glyphs.glyphOrder:
        glyph = glyphs[name]
        if hasattr(glyph, "program"):
            empty = ttProgram.Program()
            empty.fromBytecode(b"")
            glyph.program = empty
    if "name" in font:
        table = font["name"]
        table.names = [record for record in table.names if record.nameID in _KEPT_NAME_IDS]
    maxp = font["maxp"]
    if getattr(maxp, "tableVersion", 0) >= 0x00010000:
        maxp.maxZones = 1
        maxp.maxTwilightPoints = maxp.maxStorage = maxp.maxFunctionDefs = 0
        maxp.maxInstructionDefs = maxp.maxStackElements = maxp.maxSizeOfInstructions = 0
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@functools.cache
def _styles() -> dict[str, Any]:
    """The paragraph styles, made once per process (ReportLab only reads them)."""
    from reportlab.lib.styles import ParagraphStyle

    regular, bold = font_names()
    return {
        "title": ParagraphStyle("title", fontName=bold, fontSize=15, leading=19, spaceAfter=4),
        "h2": ParagraphStyle(
            "h2", fontName=bold, fontSize=11, leading=14, spaceBefore=8, spaceAfter=3
        ),
        "body": ParagraphStyle("body", fontName=regular, fontSize=8.5, leading=11),
        "small": ParagraphStyle("small", fontName=regular, fontSize=7.5, leading=9.5),
        "cell": ParagraphStyle("cell", fontName=regular, fontSize=7.5, leading=9),
        "cellbold": ParagraphStyle("cellbold", fontName=bold, fontSize=7.5, leading=9),
    }


def _p(text: str, style: Any) -> Any:
    """A paragraph of plain text: escaped for ReportLab's markup, line breaks kept."""
    from reportlab.platypus import Paragraph

    markup = "<br/>".join(xml_escape(line) for line in text.split("\n"))
    return Paragraph(markup, style, frags=_fragments(markup, style))


@functools.lru_cache(maxsize=512)
def _fragments(markup: str, style: Any) -> Any:
    """A paragraph's markup parsed (ReportLab's fragments; it reads them, never changes
    them): most of a cover's paragraphs (its notes, the table's headings) are the same
    on every cover, and parsing them was a tenth of its time."""
    from reportlab.platypus import Paragraph

    return Paragraph(markup, style).frags


# The longest text a table cell of a cover draws as a plain string (no wrapping): ids,
# file names, dates and counts; anything longer (a source's unusual id) wraps.
_SHORT_CELL = 24


def _short(text: str, style: Any) -> Any:
    """A cell's text as a plain string when it is short and one line, else a Paragraph."""
    return text if len(text) <= _SHORT_CELL and "\n" not in text else _p(text, style)


def _pdf_bytes(story: list[Any], title: str, subject: str, footer: str) -> bytes:
    from reportlab import rl_config
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    regular, _ = font_names()
    # Compressed streams stay binary: ASCII85 on top (ReportLab's default) only makes
    # the file larger and, in pure Python, cost a sixth of a cover's time.
    rl_config.useA85 = 0

    def on_page(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(regular, 7)
        canvas.drawString(15 * mm, 8 * mm, footer)
        canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"page {doc.page}")
        canvas.restoreState()

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=14 * mm,
        bottomMargin=16 * mm,
        title=title,
        subject=subject,
        author=GENERATOR,
        creator=GENERATOR,
        producer=GENERATOR,
        invariant=1,
        # The canvas's first font would be Helvetica, which PDFs reference but never embed.
        initialFontName=regular,
    )
    document.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


def _key_value_table(pairs: Iterable[tuple[str, str]], styles: Mapping[str, Any]) -> Any:
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Table, TableStyle

    data = [[_p(k, styles["cellbold"]), _p(v, styles["cell"])] for k, v in pairs]
    table = Table(data, colWidths=[45 * mm, 135 * mm])
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f0f0f0")),
                _cell_font(),
            ]
        )
    )
    return table


def _cell_font() -> tuple[Any, ...]:
    """A table's own font: ReportLab sets a cell's font (Helvetica, never embedded)
    even when a Paragraph draws the cell's text."""
    return ("FONTNAME", (0, 0), (-1, -1), font_names()[0])


# Narrow cells: ReportLab's default 6 pt side padding wraps "DOC-001".
_TIGHT: list[tuple[Any, ...]] = [
    ("LEFTPADDING", (0, 0), (-1, -1), 3),
    ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ("TOPPADDING", (0, 0), (-1, -1), 2),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
]

_STATUS_COLOURS = {PASS: "#16632b", FAIL: "#a3161b", NOT_APPLICABLE: "#555555"}


# The rule table's columns (mm) and its text: 7.5 pt on 9 pt lines.
_RULE_COLUMNS_MM = (19, 44, 17, 25, 75)
_CELL_SIZE, _CELL_LEADING, _CELL_PADDING = 7.5, 9, 3


_RULE_HEADER = ("Rule", "Title", "Severity", "Status", "Detail")
_CELL_TOP, _CELL_BOTTOM = 2, 2  # padding above and below a cell's text


def _rule_table(statuses: Sequence[RuleStatus]) -> Any:
    """The cover's 50 rules: a table of plain text, drawn by ``RuleTable``.

    The text is wrapped here (the titles, the same on every cover, once per
    process); ReportLab's Table with a Paragraph per cell parsed markup and laid
    out every cell again on each pass, and was most of a cover's time.
    """
    from reportlab.lib.units import mm

    widths = tuple(w * mm for w in _RULE_COLUMNS_MM)
    rows = []
    for status in statuses:
        shown = list(status.messages[:COVER_MESSAGES_PER_RULE])
        if len(status.messages) > COVER_MESSAGES_PER_RULE:
            shown.append(
                f"... and {len(status.messages) - COVER_MESSAGES_PER_RULE} more (see findings.csv)"
            )
        cells = (
            (status.rule_id,),
            _wrapped_title(status.title, widths[1]),
            (status.severity,),
            (STATUS_LABELS[status.status],),
            _wrap(" ".join(shown), widths[4]),
        )
        rows.append((cells, _STATUS_COLOURS[status.status]))
    return _new_rule_table(widths, rows)


def _rule_table_class() -> type:
    """RuleTable, a flowable made on first use (ReportLab is imported only to build)."""
    from reportlab.lib import colors
    from reportlab.platypus import Flowable

    class RuleTable(Flowable):  # type: ignore[misc]
        """Rows of wrapped text in a grid, split across pages with the header repeated."""

        def __init__(
            self, widths: tuple[float, ...], rows: list[tuple[tuple[tuple[str, ...], ...], str]]
        ) -> None:
            super().__init__()
            self.hAlign = "CENTER"  # as ReportLab's tables above it
            self.widths = widths
            self.rows = rows
            self.header_height = _CELL_LEADING + _CELL_TOP + _CELL_BOTTOM
            self.heights = [
                max(len(lines) for lines in cells) * _CELL_LEADING + _CELL_TOP + _CELL_BOTTOM
                for cells, _ in rows
            ]

        def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
            self.width = sum(self.widths)
            self.height = self.header_height + sum(self.heights)
            return self.width, self.height

        def split(self, available_width: float, available_height: float) -> list[Any]:
            room = available_height - self.header_height
            taken = 0
            for height in self.heights:
                if room < height:
                    break
                room -= height
                taken += 1
            if taken == 0:
                return []
            if taken == len(self.rows):
                return [self]
            return [
                RuleTable(self.widths, self.rows[:taken]),
                RuleTable(self.widths, self.rows[taken:]),
            ]

        def draw(self) -> None:
            canvas = self.canv
            regular, bold = font_names()
            lefts = [sum(self.widths[:k]) for k in range(len(self.widths))]
            top = self.height
            canvas.saveState()
            canvas.setFillColor(colors.HexColor("#e6e6e6"))
            canvas.rect(
                0, top - self.header_height, self.width, self.header_height, stroke=0, fill=1
            )
            canvas.setFillColor(colors.black)
            lines: list[tuple[float, float, str, str, str]] = []  # x, y, font, colour, text
            for left, title in zip(lefts, _RULE_HEADER, strict=True):
                lines.append((left, top, bold, "#000000", title))
            row_tops = [top - self.header_height]
            for (cells, colour), height in zip(self.rows, self.heights, strict=True):
                row_top = row_tops[-1]
                for column, (left, cell) in enumerate(zip(lefts, cells, strict=True)):
                    font, ink = (bold, colour) if column == 3 else (regular, "#000000")
                    for number, text in enumerate(cell):
                        lines.append((left, row_top - number * _CELL_LEADING, font, ink, text))
                row_tops.append(row_top - height)
            # PDF text operators written here: ReportLab's text object encodes every
            # string in Python (its font subsets), a third of the cover's time.
            ops = ["q BT"]
            font = ink = ""
            doc = canvas._doc
            for left, cell_top, line_font, line_ink, line in lines:
                if line_font != font:
                    font = line_font
                    select = f"{_subset_name(font, doc)}+0 {_CELL_SIZE:g} Tf"
                    ops.append(select)
                if line_ink != ink:
                    ink = line_ink
                    ops.append(f"{rgb(ink)} rg")
                x, y = left + _CELL_PADDING, cell_top - _CELL_TOP - _CELL_SIZE
                ops.append(f"1 0 0 1 {x:.2f} {y:.2f} Tm {shown(font, line, doc, select)}")
            ops.append("ET Q")
            canvas.addLiteral(" ".join(ops))
            # The grid: a line under the header and each row, and the column edges.
            canvas.setStrokeColor(colors.grey)
            canvas.setLineWidth(0.3)
            bottom = row_tops[-1]
            for y in (top, *row_tops):
                canvas.line(0, y, self.width, y)
            for x in (*lefts, self.width):
                canvas.line(x, top, x, bottom)
            canvas.restoreState()

    return RuleTable


# PDF string syntax: a backslash and unbalanced parentheses are escaped.
PDF_ESCAPES = str.maketrans({"\\": "\\\\", "(": "\\(", ")": "\\)"})


def rgb(colour: str) -> str:
    """``#rrggbb`` as PDF colour components (``0.122 0.306 0.475``)."""
    value = colour.lstrip("#")
    return " ".join(f"{int(value[k : k + 2], 16) / 255:.3f}" for k in (0, 2, 4))


def _subset_name(font_name: str, doc: Any) -> str:
    """The PDF name of a font in a ReportLab document (``/F1``; its subsets are
    ``/F1+0``, ``/F1+1`` ...); registers the font with the document."""
    from reportlab.pdfbase import pdfmetrics

    name: str = pdfmetrics.getFont(font_name).getSubsetInternalName(0, doc)
    return name.rsplit("+", 1)[0]


def shown(font_name: str, text: str, doc: Any, select: str) -> str:
    """PDF operators that show ``text`` in a font whose subset 0 is selected
    (``select``), and leave it selected. Printable ASCII is its own code in the
    font's first subset (ReportLab's "ASCII readable" subsets); other text is
    encoded by the font (``TTFont.splitString``), subset by subset."""
    if text.isascii() and text.isprintable():
        return f"({text.translate(PDF_ESCAPES)}) Tj"
    from reportlab.lib.rl_accel import escapePDF
    from reportlab.pdfbase import pdfmetrics

    font = pdfmetrics.getFont(font_name)
    size = select.rsplit(" ", 2)[-2]
    prefix = _subset_name(font_name, doc)
    parts = [
        f"{prefix}+{subset} {size} Tf ({escapePDF(codes)}) Tj"
        for subset, codes in font.splitString(text, doc)
    ]
    return " ".join([*parts, select])


@functools.cache
def _rule_table_type() -> type:
    return _rule_table_class()


def _new_rule_table(widths: tuple[float, ...], rows: list[Any]) -> Any:
    return _rule_table_type()(widths, rows)


def _wrap(text: str, width: float) -> tuple[str, ...]:
    """``text`` broken into lines that fit a cell of ``width`` points (at blanks)."""
    from reportlab.lib.utils import simpleSplit

    if not text:
        return ()
    regular, _ = font_names()
    return tuple(simpleSplit(text, regular, _CELL_SIZE, width - 2 * _CELL_PADDING))


@functools.lru_cache(maxsize=256)
def _wrapped_title(title: str, width: float) -> tuple[str, ...]:
    return _wrap(title, width)


def _signed_for_auditors(signing_key: str, styles: Mapping[str, Any]) -> Any:
    """The cover's line on the Ed25519 signature: the fingerprint an auditor compares."""
    return _p(
        f"Signed with {signing_key}. Compare it with the fingerprint the practice gives you; "
        "VERIFY.txt tells how to check the packet with OpenSSL and sha256sum.",
        styles["small"],
    )


def render_cover_pdf(cover: Cover) -> bytes:
    """The client packet's cover: who, payer, referral, episode, and all 50 rules' status."""
    from reportlab.lib.units import mm
    from reportlab.platypus import Spacer

    styles = _styles()
    counts = cover.counts()
    story: list[Any] = [
        _p(f"MET audit packet: client {cover.client_id}", styles["title"]),
        _p(
            f"{cover.practice_name} (practice {cover.practice_id}); records as of {cover.as_of}; "
            f"audit period {cover.period_start} to {cover.period_end}",
            styles["body"],
        ),
    ]
    if cover.records_unchanged_since:
        story.append(
            _p(
                f"Records unchanged since {cover.records_unchanged_since}. This packet stays "
                "in force on later as-of dates until the client's records, findings, rules, "
                "settings or signing key change.",
                styles["body"],
            )
        )
    if cover.demo_key:
        story.append(
            _p(
                "DEMO PACKET: signed with the published demo key; its signature proves nothing.",
                styles["cellbold"],
            )
        )
    if cover.signing_key:
        story.append(_signed_for_auditors(cover.signing_key, styles))
    story.append(Spacer(1, 3 * mm))
    client = cover.client_name or "name not recorded"
    if cover.date_of_birth:
        client += f", born {cover.date_of_birth}"
    if cover.client_status:
        client += f"; status {cover.client_status}"
    pairs: list[tuple[str, str]] = [
        ("Practice", f"{cover.practice_name} ({cover.practice_id})"),
        ("Client", f"{cover.client_id}: {client}"),
        ("Payer", "\n".join(cover.payers)),
        ("Referral", "\n".join(cover.referrals)),
    ]
    pairs.extend(cover.episode)
    severities = ", ".join(
        f"{cover.findings_by_severity.get(s, 0)} {s}" for s in rulebook.SEVERITY_ORDER
    )
    pairs.append(
        (
            "Compliance",
            f"{counts[PASS]} rules pass, {counts[FAIL]} fail, {counts[NOT_APPLICABLE]} not "
            f"applicable; findings: {severities}",
        )
    )
    story.append(_key_value_table(pairs, styles))
    story.append(_p("Status rule by rule", styles["h2"]))
    story.append(
        _p(
            "Pass: the client's records were checked by the rule and none failed. Fail: the "
            "rule failed for the record(s) named. Not applicable: none of the client's records "
            "falls under the rule on the audit date. Every finding is in findings.csv.",
            styles["small"],
        )
    )
    story.append(_rule_table(cover.statuses))
    story.append(Spacer(1, 3 * mm))
    story.append(
        _p(
            "Contents: cover.pdf (this page); records.pdf (the client's records in one PDF, "
            "with an index); records/ (the same records as HTML and CSV, "
            "with outcome-measure charts in charts/); validation/ (the Great Expectations results "
            "for this client, JSON and HTML); findings.csv; manifest.json (every file's size and "
            "SHA-256, signed with HMAC-SHA256; check with: metaudit verify PACKET.zip).",
            styles["small"],
        )
    )
    footer = f"MET audit packet, practice {cover.practice_id}, client {cover.client_id}, as of {cover.as_of}"
    return _pdf_bytes(
        story,
        f"MET audit packet {cover.client_id} {cover.as_of}",
        "Client compliance status, rule by rule",
        footer,
    )


@dataclass(frozen=True)
class PracticeCover:
    """What the practice packet's cover states."""

    practice_id: str
    practice_name: str
    period: str
    as_of: str
    clients: pd.DataFrame  # the client summary rows (clients.csv)
    rule_counts: pd.DataFrame  # rule_id, title, severity, open on as_of, seen in the month
    demo_key: bool = False
    signing_key: str | None = None  # the Ed25519 key's id and fingerprint, or None


def render_practice_cover_pdf(cover: PracticeCover) -> bytes:
    """The practice packet's cover: the month's client packets and findings per rule."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Spacer, Table, TableStyle

    styles = _styles()
    story: list[Any] = [
        _p(f"MET audit packet: practice {cover.practice_id}, {cover.period}", styles["title"]),
        _p(f"{cover.practice_name}; month to date, as of {cover.as_of}", styles["body"]),
    ]
    if cover.demo_key:
        story.append(
            _p(
                "DEMO PACKET: signed with the published demo key; its signature proves nothing.",
                styles["cellbold"],
            )
        )
    if cover.signing_key:
        story.append(_signed_for_auditors(cover.signing_key, styles))
    story.append(_p("Client packets", styles["h2"]))
    columns = ("client_id", "packet", "rules_failed", "critical", "warning", "notice")
    # Ids, file names and counts never wrap: drawn as plain strings in the cell font,
    # not as one Paragraph a cell (a Paragraph costs more than the rest of the cover).
    cell, cellbold = styles["cell"], styles["cellbold"]
    grid = [
        ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6e6")),
        ("FONT", (0, 0), (-1, -1), cell.fontName, cell.fontSize, cell.leading),
        ("FONT", (0, 0), (-1, 0), cellbold.fontName, cellbold.fontSize, cellbold.leading),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    rows: list[list[Any]] = [[heading(c) for c in columns]]
    for record in cover.clients[list(columns)].astype(object).itertuples(index=False, name=None):
        rows.append([_short(cell_text(v), cell) for v in record])
    if len(rows) == 1:
        story.append(_p("No client had activity in the period.", styles["body"]))
    else:
        table = Table(
            rows, colWidths=[28 * mm, 62 * mm, 22 * mm, 22 * mm, 22 * mm, 22 * mm], repeatRows=1
        )
        table.setStyle(TableStyle(grid + _TIGHT))
        story.append(table)
    story.append(Spacer(1, 3 * mm))
    story.append(_p("Findings of the month, rule by rule", styles["h2"]))
    rule_columns = ("rule_id", "title", "severity", "open_on_as_of", "seen_in_month")
    rows = [[heading(c) for c in rule_columns]]
    for rule_id, title, *rest in (
        cover.rule_counts[list(rule_columns)].astype(object).itertuples(index=False, name=None)
    ):
        # Only a rule's title may need more than one line.
        rows.append(
            [_short(cell_text(rule_id), cell), _p(cell_text(title), cell)]
            + [_short(cell_text(v), cell) for v in rest]
        )
    table = Table(rows, colWidths=[18 * mm, 90 * mm, 18 * mm, 27 * mm, 27 * mm], repeatRows=1)
    table.setStyle(TableStyle(grid + _TIGHT))
    story.append(table)
    story.append(Spacer(1, 3 * mm))
    story.append(
        _p(
            "Contents: cover.pdf; clients.csv (each client packet's file, size, SHA-256 and "
            "status counts); findings.csv (the findings open on the as-of date, in the findings "
            "format); findings_month.csv (every finding seen on an audit date of the month, with "
            "first and last date seen); manifest.json (signed).",
            styles["small"],
        )
    )
    footer = (
        f"MET practice packet, practice {cover.practice_id}, {cover.period}, as of {cover.as_of}"
    )
    return _pdf_bytes(
        story,
        f"MET practice packet {cover.practice_id} {cover.period}",
        "Practice compliance for the month",
        footer,
    )


def section_csv(section: Section, text: RecordsText) -> bytes:
    """A document section as CSV."""
    return text.table(section).csv(section.positions)
