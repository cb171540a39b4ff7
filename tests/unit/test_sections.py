"""The one section validator: declared keys, defaults, bounds, every problem by path."""

from __future__ import annotations

import pytest

from metaudit.errors import Problems, SettingsError
from metaudit.spec.sections import (
    BOOL,
    CHOICE,
    CUSTOM,
    NUMBER,
    TEXT,
    Field,
    validate_section,
)

FIELDS = (
    Field("enabled", BOOL, default=True),
    Field("mode", CHOICE, default="cms", allowed=("cms", "ama")),
    Field("days", NUMBER, default=7, minimum=1, whole=True, unit="days"),
    Field("wait", NUMBER, default=1.0, above=0, maximum=60, unit="seconds"),
    Field("pointers", NUMBER, default=4, minimum=1, maximum=4, whole=True),
    Field("folder", TEXT, what="a folder path"),
)


def test_an_absent_or_empty_section_gives_the_defaults() -> None:
    for raw in (None, {}):
        values, problems = validate_section("demo", raw, FIELDS)
        assert not problems.items
        assert values == {
            "enabled": True,
            "mode": "cms",
            "days": 7,
            "wait": 1.0,
            "pointers": 4,
            "folder": None,
        }


def test_values_are_normalised() -> None:
    raw = {"enabled": False, "mode": " AMA ", "days": 3.0, "wait": 2, "folder": "/x"}
    values, problems = validate_section("demo", raw, FIELDS)
    assert not problems.items
    assert values["mode"] == "ama" and values["enabled"] is False
    assert values["days"] == 3 and isinstance(values["days"], int)
    assert values["wait"] == pytest.approx(2.0) and isinstance(values["wait"], float)


def test_every_problem_is_named_once_by_its_path() -> None:
    raw = {
        "enabled": "yes",
        "mode": "both",
        "days": True,
        "wait": 0,
        "pointers": 5,
        "folder": 3,
        "dayz": 1,
    }
    values, problems = validate_section("demo", raw, FIELDS)
    assert problems.items == [
        "demo.dayz: unknown key (did you mean 'days'?); "
        "keys: enabled, mode, days, wait, pointers, folder",
        "demo.enabled: must be true or false, got 'yes'",
        "demo.mode: must be one of cms, ama, got 'both'",
        "demo.days: must be a whole number of days >= 1, got true",
        "demo.wait: must be a number of seconds > 0 and <= 60, got 0",
        "demo.pointers: must be a whole number between 1 and 4, got 5",
        "demo.folder: must be a folder path, got 3",
    ]
    # A key with a problem keeps its default, so the caller can go on.
    assert values["days"] == 7 and values["mode"] == "cms"
    with pytest.raises(SettingsError, match="demo config: 7 problems"):
        problems.raise_if_any("demo config")


def test_a_section_that_is_no_mapping_is_one_problem() -> None:
    values, problems = validate_section("demo", ["a"], FIELDS[:2])
    assert problems.items == ["demo: must be a mapping with keys enabled, mode, got ['a']"]
    assert values == {"enabled": True, "mode": "cms"}


def test_null_is_absent_unless_the_field_checks_it() -> None:
    fields = (
        Field("days", NUMBER, default=7, minimum=0, whole=True, null_is_default=False),
        Field("folder", TEXT),
    )
    values, problems = validate_section("demo", {"days": None, "folder": None}, fields)
    assert problems.items == ["demo.days: must be a whole number >= 0, got null"]
    assert values["folder"] is None


def test_required_keys_and_custom_checks_and_shared_problems() -> None:
    def even(value: object, path: str, problems: Problems) -> int | None:
        if not isinstance(value, int) or value % 2:
            problems.add(path, f"must be even, got {value!r}")
            return None
        return value

    fields = (Field("name", TEXT, required=True), Field("n", CUSTOM, default=0, check=even))
    shared = Problems()
    values, problems = validate_section("a", {"n": 3}, fields, shared)
    assert problems is shared
    validate_section("b", {"name": "x", "other": 1}, fields, shared, report_unknown=False)
    assert shared.items == ["a.name: is required", "a.n: must be even, got 3"]
    assert values["n"] == 0
