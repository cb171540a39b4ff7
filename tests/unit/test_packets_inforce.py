"""The signed per-date index of the packets in force: a date states its changes against
a base (a full list signed once, never rewritten), so an unchanged night writes almost
nothing; every reader sees the whole list."""

from __future__ import annotations

import json
from pathlib import Path

from metaudit.packets.inforce import (
    base_path,
    bases_dir,
    in_force_path,
    listed_raw,
    read_in_force,
    write_in_force,
)
from metaudit.packets.signing import signature

KEY = b"k" * 32


def _entry(client: str, built: str) -> dict[str, object]:
    return {"built_as_of": built, "sha256": client * 4, "size": 100}


def _clients(n: int, built: str) -> dict[str, dict[str, object]]:
    return {f"CL-{i:03}": _entry(f"CL-{i:03}", built) for i in range(n)}


def _stored(root: Path, day: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(in_force_path(root, "PR-1", day).read_text())
    return data


def _whole(root: Path, day: str) -> dict[str, object]:
    index, problem = read_in_force(root, "PR-1", day, KEY)
    assert problem is None and index is not None
    assert listed_raw(root, "PR-1", day) == dict(index.packets)
    return dict(index.packets)


def test_an_unchanged_night_writes_no_entry_and_reads_whole(tmp_path: Path) -> None:
    first = _clients(40, "2026-03-01")
    write_in_force(tmp_path, "PR-1", "2026-03-01", first, key=KEY)
    write_in_force(tmp_path, "PR-1", "2026-03-02", first, key=KEY)
    day2 = _stored(tmp_path, "2026-03-02")
    assert day2["packets"] == {} and day2["dropped"] == []
    assert day2["base"] == _stored(tmp_path, "2026-03-01")["base"]
    assert _whole(tmp_path, "2026-03-02") == first
    assert len(list(bases_dir(tmp_path, "PR-1").iterdir())) == 1


def test_a_night_states_what_changed_and_what_left(tmp_path: Path) -> None:
    first = _clients(40, "2026-03-01")
    write_in_force(tmp_path, "PR-1", "2026-03-01", first, key=KEY)
    second = dict(first)
    second["CL-005"] = _entry("CL-005", "2026-03-02")
    second["CL-900"] = _entry("CL-900", "2026-03-02")
    del second["CL-007"]
    write_in_force(tmp_path, "PR-1", "2026-03-02", second, key=KEY)
    stored = _stored(tmp_path, "2026-03-02")
    assert sorted(stored["packets"]) == ["CL-005", "CL-900"]  # type: ignore[arg-type]
    assert stored["dropped"] == ["CL-007"]
    assert _whole(tmp_path, "2026-03-02") == second
    # The first date reads as it was written.
    assert _whole(tmp_path, "2026-03-01") == first


def test_many_changes_make_a_new_base(tmp_path: Path) -> None:
    first = _clients(40, "2026-03-01")
    write_in_force(tmp_path, "PR-1", "2026-03-01", first, key=KEY)
    changed = _clients(40, "2026-03-02")  # every client rebuilt (a new rulebook, say)
    write_in_force(tmp_path, "PR-1", "2026-03-02", changed, key=KEY)
    stored = _stored(tmp_path, "2026-03-02")
    assert stored["packets"] == {} and stored["base"]["as_of"] == "2026-03-02"  # type: ignore[index]
    assert _whole(tmp_path, "2026-03-02") == changed
    assert len(list(bases_dir(tmp_path, "PR-1").iterdir())) == 2


def test_a_rerun_of_an_earlier_date_leaves_the_later_dates_intact(tmp_path: Path) -> None:
    first = _clients(20, "2026-03-01")
    write_in_force(tmp_path, "PR-1", "2026-03-01", first, key=KEY)
    write_in_force(tmp_path, "PR-1", "2026-03-02", first, key=KEY)
    # The first date rerun with other packets: its own list changes, the second's not.
    rerun = _clients(20, "2026-03-01b")
    write_in_force(tmp_path, "PR-1", "2026-03-01", rerun, key=KEY)
    assert _whole(tmp_path, "2026-03-01") == rerun
    assert _whole(tmp_path, "2026-03-02") == first


def test_another_key_an_edit_or_a_lost_base_is_said(tmp_path: Path) -> None:
    first = _clients(10, "2026-03-01")
    write_in_force(tmp_path, "PR-1", "2026-03-01", first, key=KEY)
    index, problem = read_in_force(tmp_path, "PR-1", "2026-03-01", b"x" * 32)
    assert index is None and problem is not None and "signature does not match" in problem
    base = _stored(tmp_path, "2026-03-01")["base"]
    where = base_path(tmp_path, "PR-1", base["as_of"], base["signature"])  # type: ignore[index]
    listed = json.loads(where.read_text())
    listed["packets"]["CL-001"]["size"] = 1
    where.write_text(json.dumps(listed))
    index, problem = read_in_force(tmp_path, "PR-1", "2026-03-01", KEY)
    assert index is None and problem is not None and "signature does not match" in problem
    # A base signed by the key, but not the one the index names, is refused too.
    listed["signature"] = signature(listed, KEY)
    where.write_text(json.dumps(listed))
    index, problem = read_in_force(tmp_path, "PR-1", "2026-03-01", KEY)
    assert index is None and problem is not None and "not the base the index names" in problem
    where.unlink()
    index, problem = read_in_force(tmp_path, "PR-1", "2026-03-01", KEY)
    assert index is None and problem is not None and "is missing" in problem
    assert listed_raw(tmp_path, "PR-1", "2026-03-01") == {}


def test_an_index_of_the_first_format_still_reads(tmp_path: Path) -> None:
    whole = _clients(5, "2026-02-01")
    index = {
        "format": "metaudit-in-force/1",
        "kind": "in-force",
        "practice_id": "PR-1",
        "as_of": "2026-02-01",
        "key_id": "x",
        "demo_key": False,
        "packets": whole,
    }
    index["signature"] = signature(index, KEY)
    path = in_force_path(tmp_path, "PR-1", "2026-02-01")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(index))
    assert _whole(tmp_path, "2026-02-01") == whole
    # The next night after it makes its own base.
    write_in_force(tmp_path, "PR-1", "2026-02-02", whole, key=KEY)
    assert _stored(tmp_path, "2026-02-02")["base"]["as_of"] == "2026-02-02"  # type: ignore[index]
    assert _whole(tmp_path, "2026-02-02") == whole
