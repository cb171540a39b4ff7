"""Packet content as plain data: activity, applicability, chart series, code linkage, paths."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from metaudit.packets.archive import zip_bytes
from metaudit.packets.build import client_packet_path, packet_options, practice_packet_path
from metaudit.packets.content import (
    audit_period,
    chart_series,
    claim_linkage,
    clients_with_activity,
    evaluated_mask,
    row_fails,
)
from metaudit.packets.errors import PacketError
from metaudit.packets.render import chart_plot, render_chart_svg
from metaudit.paths import id_name

D = pd.Timestamp("2026-03-31")


def _dates(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values)), dtype="datetime64[ns]")


def _view() -> SimpleNamespace:
    clients = pd.DataFrame({"client_id": pd.array(["A", "B", "C", "D", "E"], dtype="string")})
    sessions = pd.DataFrame(
        {
            "client_id": pd.array(["A", "B", "E", "X"], dtype="string"),
            "status": pd.array(
                ["completed", "cancelled", "completed", "completed"], dtype="string"
            ),
            # A: first day of the period; B: cancelled; E: one day too early; X: no client row.
            "session_date": _dates("2026-03-01", "2026-03-30", "2026-02-28", "2026-03-30"),
        }
    )
    lines = pd.DataFrame(
        {"client_id": pd.array(["C"], dtype="string"), "service_date": _dates("2026-03-31")}
    )
    assessments = pd.DataFrame(
        {
            "client_id": pd.array(["D", "B"], dtype="string"),
            "assessed_on": _dates("2026-03-15", None),
        }
    )
    return SimpleNamespace(
        as_of=D,
        tables={
            "clients": clients,
            "sessions": sessions,
            "claim_lines": lines,
            "assessments": assessments,
        },
    )


def test_activity_is_a_completed_session_claim_line_or_assessment_within_the_period():
    assert audit_period(D, 31) == (pd.Timestamp("2026-03-01"), D)
    assert clients_with_activity(_view(), 31) == ["A", "C", "D"]
    # One day longer and E's session of 02-28 counts too.
    assert clients_with_activity(_view(), 32) == ["A", "C", "D", "E"]
    with pytest.raises(PacketError, match="activity_days"):
        audit_period(D, 0)


def test_evaluated_rows_follow_gx_skipping_of_missing_values():
    rows = pd.DataFrame(
        {
            "entity_id": ["a", "b", "c"],
            "x": pd.array([True, None, False], dtype="boolean"),
            "A": pd.array([1.0, None, None], dtype="Float64"),
            "B": pd.array([1.0, 2.0, None], dtype="Float64"),
        }
    )
    in_set = {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "x"}}
    not_null = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}}
    pair = {"type": "expect_column_pair_values_a_to_be_greater_than_b"}
    assert evaluated_mask(in_set, rows).tolist() == [True, False, True]
    assert evaluated_mask(not_null, rows).tolist() == [True, True, True]
    either = {
        **pair,
        "kwargs": {"column_A": "A", "column_B": "B", "ignore_row_if": "either_value_is_missing"},
    }
    neither = {**pair, "kwargs": {"column_A": "A", "column_B": "B", "ignore_row_if": "neither"}}
    default = {**pair, "kwargs": {"column_A": "A", "column_B": "B"}}
    assert evaluated_mask(either, rows).tolist() == [True, False, False]
    assert evaluated_mask(neither, rows).tolist() == [True, True, True]
    assert evaluated_mask(default, rows).tolist() == [True, True, False]


def test_row_fails_tells_apart_the_parts_of_one_rule():
    between = {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "n", "min_value": 1},
    }
    assert row_fails(between, {"n": 0}) is True
    assert row_fails(between, {"n": 1}) is False
    assert row_fails(between, {"n": pd.NA}) is False  # skipped, so not failed
    in_set = {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "ok", "value_set": [True]},
    }
    assert row_fails(in_set, {"ok": False}) is True
    assert row_fails(in_set, {"ok": True}) is False
    not_null = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "s"}}
    assert row_fails(not_null, {"s": None}) is True
    pair = {
        "type": "expect_column_pair_values_a_to_be_greater_than_b",
        "kwargs": {
            "column_A": "due",
            "column_B": "done",
            "or_equal": True,
            "ignore_row_if": "neither",
        },
    }
    day = pd.Timestamp("2026-03-02")
    assert row_fails(pair, {"due": day, "done": day}) is False
    assert row_fails(pair, {"due": day, "done": day + pd.Timedelta(days=1)}) is True
    assert row_fails(pair, {"due": day, "done": pd.NaT}) is True  # evaluated with a missing side
    npi = {"type": "expect_column_values_to_be_valid_npi", "kwargs": {"column": "npi"}}
    assert row_fails(npi, {"npi": "1234567893"}) is False
    assert row_fails(npi, {"npi": "1234567890"}) is True
    assert (
        row_fails({"type": "expect_something_custom", "kwargs": {"column": "n"}}, {"n": 1}) is None
    )


def _records() -> dict[str, pd.DataFrame]:
    assessments = pd.DataFrame(
        {
            "assessment_id": ["AS-1", "AS-2", "AS-3"],
            "assessed_on": _dates("2026-01-10", "2026-02-09", "2026-03-11"),
            "kind": pd.array(["initial", "reassessment", "reassessment"], dtype="string"),
        }
    )
    measures = pd.DataFrame(
        {
            "measure_id": ["OM-1", "OM-2", "OM-3", "OM-4", "OM-5"],
            "assessment_id": ["AS-1", "AS-2", "AS-2", "AS-3", "AS-1"],
            "instrument": pd.array(["TUG", "tug ", "TUG", "TUG", "GRIP"], dtype="string"),
            "value": pd.array([14.0, 12.0, 13.0, 11.0, 20.0], dtype="Float64"),
            "unit": pd.array(["s", "s", "s", "s", "kg"], dtype="string"),
        }
    )
    goals = pd.DataFrame(
        {
            "goal_id": ["G-1", "G-2", "G-3"],
            "term": pd.array(["short", "long", "long"], dtype="string"),
            "instrument": pd.array(["TUG", "LEFS", None], dtype="string"),
            "target_value": pd.array([12.0, 60.0, 5.0], dtype="Float64"),
            "target_date": _dates("2026-02-28", "2026-05-01", None),
        }
    )
    return {"assessments": assessments, "outcome_measures": measures, "goals": goals}


def test_chart_series_per_instrument_with_goal_targets():
    series = {s.instrument: s for s in chart_series(_records())}
    # LEFS has a goal but no measure yet; a goal without an instrument charts nothing.
    assert sorted(series) == ["GRIP", "LEFS", "TUG"]
    tug = series["TUG"]
    assert [(p.assessed_on, p.value) for p in tug.points] == [
        ("2026-01-10", 14.0),
        ("2026-02-09", 12.5),  # 12 and 13 at one assessment, averaged
        ("2026-03-11", 11.0),
    ]
    assert tug.unit == "s" and tug.direction == "lower is better"
    assert [(t.goal_id, t.term, t.target_value, t.target_date) for t in tug.targets] == [
        ("G-1", "short", 12.0, "2026-02-28")
    ]
    assert series["GRIP"].direction == "higher is better" and not series["GRIP"].targets
    assert not series["LEFS"].points and series["LEFS"].targets[0].target_value == pytest.approx(
        60.0
    )

    plot = chart_plot(tug)
    assert plot.measured_dates == ("2026-01-10", "2026-02-09", "2026-03-11")
    assert plot.measured_values == (14.0, 12.5, 11.0)
    assert plot.targets == (("short-term goal G-1: 12 by 2026-02-28", 12.0, "2026-02-28"),)
    assert plot.title == "TUG (s), lower is better"
    svg = render_chart_svg(plot)
    assert render_chart_svg(plot) == svg


def test_a_chart_draws_its_series_goal_lines_title_and_axes():
    import xml.etree.ElementTree as ET

    from metaudit.packets.render import ChartPlot

    plot = ChartPlot(
        title="TUG (s), lower is better <&>",
        measured_dates=("2026-01-10", "2026-02-09", "2026-03-11"),
        measured_values=(14.0, 12.5, 11.0),
        targets=(
            ("short-term goal G-1: 12 by 2026-02-28", 12.0, "2026-02-28"),
            ("long-term goal G-9: 9", 9.0, None),
        ),
    )
    svg = render_chart_svg(plot)
    root = ET.fromstring(svg)  # well-formed, the title escaped
    ns = {"s": "http://www.w3.org/2000/svg"}
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "TUG (s), lower is better <&>" in texts
    assert {"14", "12.5", "11"} <= set(texts)  # each measure labelled
    assert "measured" in texts and "long-term goal G-9: 9" in texts  # the legend
    assert any("date" in t for t in texts) and "value" in texts  # the axes' labels
    assert any(t.startswith("Feb") for t in texts)  # the date ticks
    (line,) = root.findall(".//s:g[@class='measured']/s:polyline", ns)
    xs = [float(p.split(",")[0]) for p in line.get("points").split()]
    ys = [float(p.split(",")[1]) for p in line.get("points").split()]
    assert xs == sorted(xs) and ys == sorted(ys)  # later dates right, lower values lower
    goals = root.findall(".//s:g[@class='goal']", ns)
    assert len(goals) == 2 and all(g.find("s:line", ns).get("stroke-dasharray") for g in goals)
    assert len(root.findall(".//s:polygon[@class='target']", ns)) == 1  # one target date
    # The 12 goal line lies between the 12.5 and 11 points.
    goal_y = float(goals[0].find("s:line", ns).get("y1"))
    assert ys[1] < goal_y < ys[2]
    # Values no axis holds, dates at the calendar's ends: still a well-formed chart.
    odd = ChartPlot(
        "odd",
        ("0001-01-01", "9999-12-31", "2026-01-01"),
        (float("inf"), 1e308, -1e308),
        (("goal: nan", float("nan"), "0001-01-01"), ("goal", 5.0, "9999-12-31")),
    )
    odd_root = ET.fromstring(render_chart_svg(odd))
    assert len(odd_root.findall(".//s:circle", ns)) == 2
    empty = ET.fromstring(render_chart_svg(ChartPlot("X", (), (), ())))
    assert "no data" in [
        "".join(t.itertext()) for t in empty.iter("{http://www.w3.org/2000/svg}text")
    ]


def test_claim_linkage_resolves_each_pointer_to_the_claims_diagnosis():
    records = {
        "claim_lines": pd.DataFrame(
            {
                "claim_id": ["C-1", "C-1"],
                "line_id": ["L-1", "L-2"],
                "line_no": [1, 2],
                "service_date": _dates("2026-03-02", "2026-03-02"),
                "cpt_code": ["97110", "97530"],
                "units": [2, 1],
                "diagnosis_pointers": pd.array(["A, b", None], dtype="string"),
            }
        ),
        "claim_diagnoses": pd.DataFrame(
            {
                "claim_id": ["C-1"],
                "pointer": pd.array(["A"], dtype="string"),
                "icd10_code": ["M17.11"],
            }
        ),
    }
    linkage = claim_linkage(records)
    assert linkage[["line_id", "pointer", "icd10_code"]].astype(object).where(
        linkage[["line_id", "pointer", "icd10_code"]].notna(), None
    ).values.tolist() == [["L-1", "A", "M17.11"], ["L-1", "b", None], ["L-2", None, None]]


def test_names_hold_ids_only_and_odd_ids_are_encoded_not_merged(tmp_path):
    path = client_packet_path(tmp_path, "PR-1", "2026-03-31", "CL-1")
    assert path == tmp_path / "PR-1" / "2026-03-31" / "CL-1.zip"
    assert practice_packet_path(tmp_path, "PR-1", "2026-03-31").name == "practice-2026-03.zip"
    assert id_name("a/b", "client id", PacketError) == "a%2Fb"
    assert id_name("a_b", "client id", PacketError) != id_name("a/b", "client id", PacketError)
    assert id_name("..", "client id", PacketError) == "%2E."
    with pytest.raises(PacketError):
        id_name("", "client id", PacketError)
    with pytest.raises(PacketError, match="safe path"):
        zip_bytes({"../evil.txt": b"x"}, D.date())


def test_packet_options_read_the_configuration_and_refuse_unknown_keys(tmp_path, monkeypatch):
    from metaudit.errors import SettingsError
    from metaudit.spec.settings import Settings

    monkeypatch.delenv("METAUDIT_PACKETS_DIR", raising=False)
    settings = Settings.from_dict({"packets": {"dir": str(tmp_path / "p"), "activity_days": 45}})
    options = packet_options(settings)
    assert options.packets_dir == tmp_path / "p" and options.activity_days == 45
    assert packet_options(settings, tmp_path / "q").packets_dir == tmp_path / "q"
    with pytest.raises(SettingsError, match="unknown key"):
        packet_options(Settings.from_dict({"packets": {"folder": "x"}}))
    with pytest.raises(SettingsError, match="activity_days"):
        packet_options(Settings.from_dict({"packets": {"activity_days": 0}}))


def test_csv_cells_that_begin_like_a_formula_are_neutralised_and_json_stays_exact():
    import csv
    import io
    import json

    from metaudit.packets.render import render_csv
    from metaudit.spec.findings import Finding, to_csv, to_jsonl

    hostile = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "=1+2"]
    hostile += ["@SUM(A1)", "-2+3", "\tx"]
    rows = pd.DataFrame({"name": hostile, "score": [-3] * len(hostile)})
    cells = list(csv.reader(io.StringIO(render_csv(rows, ["name", "score"]).decode())))
    carriage = pd.DataFrame({"name": ["\rx"]})
    assert render_csv(carriage, ["name"]) == b"name\n'\rx\n"
    assert [row[0] for row in cells[1:]] == ["'" + value for value in hostile]
    assert {row[1] for row in cells[1:]} == {"-3"}  # a negative number is no formula
    finding = Finding(
        as_of="2026-03-31",
        practice_id="=PR",
        rule_id="DOC-001",
        severity="warning",
        entity_type="session",
        entity_id="+S1",
        client_id="@CL",
        message="plain",
    )
    [row] = list(csv.DictReader(io.StringIO(to_csv([finding]))))
    assert (row["practice_id"], row["entity_id"], row["client_id"]) == ("'=PR", "'+S1", "'@CL")
    assert row["fingerprint"] == "'DOC-001|session|+S1"[1:]  # begins with D: unchanged
    exact = json.loads(to_jsonl([finding]))
    assert (exact["practice_id"], exact["entity_id"], exact["client_id"]) == ("=PR", "+S1", "@CL")


@pytest.mark.parametrize(
    "dtype", ["datetime64[us]", "datetime64[s]", "datetime64[ns]", "UTC", "America/New_York"]
)
def test_dates_formatted_at_once_read_as_each_value_formatted_alone(dtype):
    from metaudit.packets.render import cell_text, datetime_texts

    days = [
        "2026-03-31",
        "2026-03-31 10:11:12.999999",
        "1969-12-31 23:59:59.5",  # before 1970: the fraction is dropped, not rounded
        "1900-01-01",
        "1000-01-01 00:00:00.1",
    ]
    if dtype in {"datetime64[ns]", "America/New_York"}:
        days = days[:-1]  # nanoseconds hold 1677..2262; the zone's rules too
    values = pd.Series(pd.to_datetime(days, format="ISO8601"))
    if dtype.startswith("datetime64"):
        values = values.astype(dtype)
    else:
        values = values.dt.tz_localize(dtype)
    _, uniques = pd.factorize(values)
    assert datetime_texts(uniques) == [cell_text(v) for v in values.astype(object)]
    # strftime does not pad a year before 1000: such a column is formatted value by value.
    early = pd.Series(pd.to_datetime(["0999-01-01 00:00:01", "2026-01-01"], format="ISO8601"))
    assert datetime_texts(pd.factorize(early)[1]) == ["999-01-01T00:00:01", "2026-01-01"]


def test_a_client_row_reads_its_columns_as_plain_values():
    from metaudit.packets.content import PracticeMaterial

    view = SimpleNamespace(
        as_of=pd.Timestamp("2026-03-31"),
        practices=pd.DataFrame({"practice_id": ["P1"]}),
        tables={
            "referrals": pd.DataFrame({"referral_id": ["R1"], "client_id": ["C1"]}),
            "sessions": pd.DataFrame(
                {
                    "session_id": ["S2", "S1", "S3"],
                    "client_id": ["C1", "C1", "C2"],
                    "session_date": pd.to_datetime(["2026-03-02", None, "2026-03-01"]),
                    "status": pd.array(["completed", None, "completed"], dtype="string"),
                }
            ),
            "staff": pd.DataFrame({"staff_id": ["ST1"]}),
            "providers": pd.DataFrame({"provider_id": ["PV1"]}),
        },
    )
    material = PracticeMaterial(view, [], pd.Series(dtype="datetime64[us]"))  # type: ignore[arg-type]
    rows = material.rows("sessions", "C1")
    # In document order (date, then id; a missing date last), as plain values.
    assert [dict(r) for r in rows] == [
        {
            "session_id": "S2",
            "client_id": "C1",
            "session_date": pd.Timestamp("2026-03-02"),
            "status": "completed",
        },
        {"session_id": "S1", "client_id": "C1", "session_date": pd.NaT, "status": pd.NA},
    ]
    assert rows[0].get("no such column") is None
    with pytest.raises(KeyError):
        rows[0]["no such column"]


def test_a_few_rows_are_sorted_as_pandas_sorts_them(monkeypatch):
    # A client's share of a table is sorted in Python (below SMALL_FRAME rows): the same
    # order as sort_values(kind="stable", na_position="last"), missing keys last per key.
    import numpy as np

    from metaudit.packets import content

    rng = np.random.default_rng(3)
    days = [None, "2026-03-01", "2026-03-02", "2026-02-28"]
    for count in (2, 5, 40, 400):
        frame = pd.DataFrame(
            {
                "session_date": pd.to_datetime(pd.Series(rng.choice(days, count).tolist())),
                "session_id": pd.array(
                    rng.choice(["S1", "S10", "S2", None, "é"], count).tolist(), dtype="string"
                ),
                "seq": pd.array(rng.choice([3, 1, None], count).tolist(), dtype="Int64"),
                "payload": range(count),
            }
        )
        for name in ("sessions", "referral_diagnoses"):
            shaped = (
                frame.rename(columns={"session_id": "referral_id"}) if name != "sessions" else frame
            )
            few = content._sorted(name, shaped)
            monkeypatch.setattr(content, "SMALL_FRAME", 0)
            many = content._sorted(name, shaped)
            monkeypatch.undo()
            pd.testing.assert_frame_equal(few, many)
