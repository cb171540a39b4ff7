"""A task's practices in forked processes (metaudit.pipeline.workers).

What a part returns comes back in the parts' order; its errors come back as they
were raised when they pickle, named otherwise; a part whose process dies fails
with its practices named while the other parts finish; its log records reach the
parent's handlers; and the parts are balanced by the partitions' bytes.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from metaudit.mail.errors import MailUnavailableError
from metaudit.pipeline import workers
from metaudit.pipeline.workers import PartFailedError, run_beside, run_parts, split_by_size

log = logging.getLogger("metaudit.tests.workers")


def test_parts_are_balanced_by_size_and_keep_the_items_order() -> None:
    items = [
        {"id": name, "size": size} for name, size in zip("abcdef", [9, 1, 5, 4, 3, 2], strict=True)
    ]
    parts = split_by_size(items, 2, lambda item: int(item["size"]))
    assert [[i["id"] for i in part] for part in parts] == [["a", "e"], ["b", "c", "d", "f"]]
    assert [sum(i["size"] for i in part) for part in parts] == [12, 12]
    # Never an empty part, never more parts than items.
    assert len(split_by_size(items[:1], 4, lambda item: 1)) == 1
    assert split_by_size([], 3, lambda item: 1) == []
    with pytest.raises(ValueError, match=">= 1"):
        split_by_size(items, 0, lambda item: 1)


def test_partition_bytes_counts_its_files(tmp_path: Path) -> None:
    (tmp_path / "a.arrow").write_bytes(b"x" * 10)
    (tmp_path / "b.arrow").write_bytes(b"y" * 5)
    assert workers.partition_bytes(tmp_path) == 15
    assert workers.partition_bytes(tmp_path / "missing") == 0


def test_each_part_runs_in_its_own_process_and_returns_in_order() -> None:
    parent = os.getpid()
    captured = {"by the fork, not by pickling": lambda value: value * 2}

    def work(numbers: list[int]) -> tuple[int, list[int]]:
        return os.getpid(), [captured["by the fork, not by pickling"](n) for n in numbers]

    outcomes = run_parts([(["PR1"], [1, 2]), (["PR2", "PR3"], [3])], work)
    assert [o.practices for o in outcomes] == [("PR1",), ("PR2", "PR3")]
    assert [o.value[1] for o in outcomes] == [[2, 4], [6]]
    pids = {o.value[0] for o in outcomes}
    assert len(pids) == 2 and parent not in pids
    assert all(o.error is None for o in outcomes)


def test_an_error_comes_back_as_raised_and_the_other_parts_finish() -> None:
    def work(name: str) -> str:
        if name == "flaky":
            raise MailUnavailableError("SendGrid answered 503")
        return name

    flaky, fine = run_parts([(["PR1"], "flaky"), (["PR2"], "fine")], work)
    # The type survives: the task's retry policy judges the error itself.
    assert isinstance(flaky.error, MailUnavailableError)
    assert "503" in str(flaky.error)
    assert (fine.value, fine.error) == ("fine", None)


class _Unpicklable(Exception):
    def __init__(self, message: str, handle: Any) -> None:
        super().__init__(message)
        self.handle = handle

    def __reduce__(self) -> Any:
        raise TypeError("holds a handle")


def test_an_error_that_does_not_pickle_comes_back_named() -> None:
    def work(_: None) -> None:
        raise _Unpicklable("the store's connection broke", object())

    (outcome,) = run_parts([(["PR1"], None)], work)
    assert isinstance(outcome.error, PartFailedError)
    assert "_Unpicklable: the store's connection broke" in str(outcome.error)


def test_a_process_that_dies_fails_its_practices_named() -> None:
    def work(name: str) -> str:
        if name == "dies":
            os.kill(os.getpid(), signal.SIGKILL)
        return name

    dead, alive = run_parts([(["PR1", "PR2"], "dies"), (["PR3"], "lives")], work)
    assert isinstance(dead.error, PartFailedError)
    assert "auditing practice(s) PR1, PR2 ended without a result" in str(dead.error)
    assert f"exit code -{int(signal.SIGKILL)}" in str(dead.error)
    assert alive.value == "lives"


def test_a_part_s_log_records_reach_the_parent_s_handlers(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library another test ran may have configured logging with its existing loggers
    # disabled (import-linter's does), this one among them.
    monkeypatch.setattr(log, "disabled", False)

    def work(name: str) -> str:
        log.info("practice %s: audited in process %d", name, os.getpid())
        try:
            raise ValueError("a bad date")
        except ValueError:
            log.exception("practice %s: with its traceback", name)
        return name

    with caplog.at_level(logging.INFO, logger="metaudit.tests.workers"):
        run_parts([(["PR1"], "PR1"), (["PR2"], "PR2")], work)
    messages = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert sorted(m.split(":")[0] for m in messages) == ["practice PR1"] * 2 + ["practice PR2"] * 2
    assert all(str(os.getpid()) not in m for m in messages if "audited" in m)
    assert any("ValueError: a bad date" in m for m in messages)


def test_run_beside_runs_the_work_while_this_process_does_something_else() -> None:
    done: list[str] = []
    assert run_beside(lambda: os.getpid(), meanwhile=lambda: done.append("loaded")) != os.getpid()
    assert done == ["loaded"]
    with pytest.raises(MailUnavailableError):
        run_beside(_raise_unavailable, meanwhile=lambda: None)


def _raise_unavailable() -> None:
    raise MailUnavailableError("SendGrid answered 503")
