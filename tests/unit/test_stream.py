"""The streaming read and typing (metaudit.source.stream) against the whole-network one.

A small demo network, made hostile where streaming could go wrong: a duplicated key
whose rows fall in different batches and different practices, a row whose parent is
missing (no practice), a child of a duplicated parent. Read in small batches into
one-practice groups, it must give exactly what typing the whole source gives:
the same findings in the same order, every group the whole typed tables' rows of
its practices, and the same check.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from metaudit.check.engine import check_typed, load_source, run_check
from metaudit.source.reader import iter_table_batches
from metaudit.source.stream import NETWORK_TABLES, KeyIndex, stream_source
from metaudit.spec.contract import TABLES

AS_OF = date(2026, 3, 31)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from metaudit.demo import generate

    path = tmp_path_factory.mktemp("stream") / "network.sqlite"
    generate(str(path), as_of=AS_OF, sessions=3_000, practices=5, progress=False)
    with sqlite3.connect(path) as conn:
        other_client = conn.execute(
            "SELECT c.client_id FROM clients c WHERE c.practice_id <> "
            "(SELECT practice_id FROM clients ORDER BY client_id LIMIT 1) LIMIT 1"
        ).fetchone()[0]
        # The first session's key again, at the end of the table, for another practice's
        # client: DQ-001 across batches and groups; the first row is the one kept.
        conn.execute(
            "INSERT INTO sessions SELECT session_id, ?, staff_id, session_date, status, "
            "timed_minutes, client_response, notes, signed_at FROM sessions "
            "ORDER BY rowid LIMIT 1",
            (other_client,),
        )
        # A session whose client does not exist (no practice), with a service.
        conn.execute(
            "INSERT INTO sessions SELECT 'SE-ORPHAN', 'CL-GONE', staff_id, session_date, "
            "status, timed_minutes, client_response, notes, signed_at FROM sessions LIMIT 1"
        )
        conn.execute(
            "INSERT INTO session_services SELECT 'SE-ORPHAN', cpt_code, minutes "
            "FROM session_services LIMIT 1"
        )
        # A client key twice (the later row in another practice): DQ-001 on clients.
        conn.execute(
            "INSERT INTO clients SELECT client_id, ?, first_name, last_name, date_of_birth, "
            "status FROM clients ORDER BY rowid LIMIT 1",
            ("PR-ELSEWHERE",),
        )
    return path


def _restricted(frame: pd.DataFrame, members: list[str], first: bool) -> pd.Series:
    practice = frame["practice_id"]
    chosen = practice.isin(members).fillna(False).to_numpy(dtype=bool).copy()
    if first:
        chosen |= practice.isna().to_numpy()
    return pd.Series(chosen)


def test_streamed_groups_are_the_whole_typed_source_split(source: Path, tmp_path: Path) -> None:
    whole = load_source(source, AS_OF)
    batches = iter_table_batches(source, batch_rows=700)
    with stream_source(batches, AS_OF.isoformat(), folder=tmp_path, clients_per_group=1) as st:
        # One group a practice; the duplicate client row of PR-ELSEWHERE is left out (DQ-001).
        assert st.groups == [["PR0001"], ["PR0002"], ["PR0003"], ["PR0004"], ["PR0005"]]
        assert [f.to_dict() for f in st.findings] == [f.to_dict() for f in whole.findings]
        rules = {f.rule_id for f in st.findings}
        assert {"DQ-001", "DQ-002"} <= rules
        for number, members in enumerate(st.groups):
            part = st.read_group(number)
            for name in TABLES:
                values, bad = whole.tables[name], whole.unreadable[name]
                if name not in NETWORK_TABLES:
                    keep = _restricted(values, members, number == 0).to_numpy()
                    values = values[keep].reset_index(drop=True)
                    bad = bad[keep].reset_index(drop=True)
                pd.testing.assert_frame_equal(part.tables[name], values, check_exact=True)
                pd.testing.assert_frame_equal(part.unreadable[name], bad, check_exact=True)
            owned = [f for f in whole.findings if st.group_of(f.practice_id) == number]
            assert [f.to_dict() for f in part.findings] == [f.to_dict() for f in owned]


@pytest.mark.parametrize("practices", [None, ["PR0002", "PR0004"]])
def test_the_check_by_groups_is_the_whole_check(source: Path, practices: list[str] | None) -> None:
    whole = check_typed(load_source(source, AS_OF), AS_OF, practices)
    grouped = run_check(source, AS_OF, practices, clients_per_group=1)
    assert [f.to_dict() for f in grouped.findings] == [f.to_dict() for f in whole.findings]
    assert grouped.practice_ids == whole.practice_ids
    assert whole.exposure is not None and grouped.exposure is not None
    pd.testing.assert_frame_equal(grouped.exposure, whole.exposure)
    assert whole.deadlines is not None and grouped.deadlines is not None
    pd.testing.assert_frame_equal(grouped.deadlines, whole.deadlines)
    assert set(grouped.validations) == set(whole.validations)


def test_a_key_index_finds_exactly_the_keys() -> None:
    keys = pa.array(["SE01", "SE1", "a", "é-long", "SE10", "x" * 70])
    index = KeyIndex(keys.slice(0, 5))
    values = pa.array(["SE1", None, "SE10", "SE100", "é-long", "", "SE01", "SE1\x00", "a"])
    assert index.find(values).tolist() == [1, -1, 4, -1, 3, -1, 0, -1, 2]
    # Keys too long for the fixed-width form (or holding a NUL): a dict, same answers.
    long = KeyIndex(keys)
    assert long.find(pa.array(["x" * 70, "SE1", "x" * 69, None])).tolist() == [5, 1, -1, -1]
    nul = KeyIndex(pa.array(["a\x00", "a"]))
    assert nul.find(pa.array(["a", "a\x00", "b"])).tolist() == [1, 0, -1]
    assert KeyIndex(pa.array([], type=pa.string())).find(pa.array(["a"])).tolist() == [-1]


def test_extract_streams_into_the_partitions_of_the_whole_typing(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metaudit.pipeline import stages
    from metaudit.source import stream
    from metaudit.source.snapshot import partition_of, read_partition

    monkeypatch.setenv("METAUDIT_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(stream, "CLIENTS_PER_GROUP", 1)  # a group per practice
    whole = load_source(source, AS_OF)
    wanted = ["PR0001", "PR0003", "PR0005"]
    work = stages.extract(str(source), AS_OF, wanted)
    assert [w["practice_id"] for w in work] == wanted
    for item in work:
        back = read_partition(Path(item["partition"]), item["practice_id"])
        expected = partition_of(whole, item["practice_id"])
        for name in TABLES:
            pd.testing.assert_frame_equal(back.tables[name], expected.tables[name])
            pd.testing.assert_frame_equal(back.unreadable[name], expected.unreadable[name])
        assert [f.to_dict() for f in back.findings] == [f.to_dict() for f in expected.findings]
    # The spool is gone; the partitions and nothing else are left.
    folder = Path(work[0]["partition"]).parent
    assert sorted(p.name for p in folder.iterdir()) == wanted
