"""A task's practices audited in several processes at once (METAUDIT_AUDIT_PROCESSES).

`airflow dags test`, the embedded default, runs a DAG's tasks one after another in
one process, so each `audit` task had the machine to itself and used one core of
it. With N processes a task splits its practices into N parts of about equal
records (:func:`split_by_size`, by partition bytes) and audits each part in a
process forked from the task's (:func:`run_parts`): the imports already made, Great
Expectations' included, are shared rather than paid again.

A forked part computes and writes files and the results store only: it makes no
Airflow call (the connections and keys were read by the task before the fork). Its
log records are relayed to the task's own handlers, so they stay in the task log.
What a part returns, and the errors of its practices, come back pickled; an error
that does not survive pickling comes back as a :class:`PartFailedError` naming it.
A part whose process dies (killed, out of memory) fails its practices, each named,
and the task's other parts still finish.
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
import multiprocessing
import os
import pickle
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from metaudit.errors import MetAuditError

log = logging.getLogger(__name__)

T = TypeVar("T")


class PartFailedError(MetAuditError):
    """A forked part of a task failed in a way that could not be handed back as it was."""


@dataclass(frozen=True)
class PartOutcome:
    """What one part gave back: ``value`` when its function returned, else ``error``."""

    practices: tuple[str, ...]
    value: Any = None
    error: BaseException | None = None


def partition_bytes(partition: str | Path) -> int:
    """The bytes of a practice's partition on disk (0 when it cannot be read: the part
    that reads it reports why)."""
    try:
        return sum(entry.stat().st_size for entry in os.scandir(partition) if entry.is_file())
    except OSError:
        return 0


def split_by_size(items: Sequence[T], parts: int, size: Callable[[T], int]) -> list[list[T]]:
    """``items`` in at most ``parts`` parts of about equal total ``size``: the largest
    first, each to the lightest part so far. Each part keeps the items' order; no part
    is empty."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    bins: list[list[int]] = [[] for _ in range(min(parts, len(items)))]
    loads = [0] * len(bins)
    for index in sorted(range(len(items)), key=lambda i: size(items[i]), reverse=True):
        lightest = loads.index(min(loads))
        bins[lightest].append(index)
        loads[lightest] += size(items[index])
    return [[items[i] for i in sorted(part)] for part in bins if part]


def values(outcomes: Sequence[PartOutcome]) -> list[Any]:
    """What every part returned, in order; or the first part's error, raised."""
    for outcome in outcomes:
        if outcome.error is not None:
            raise outcome.error
    return [outcome.value for outcome in outcomes]


def run_beside(work: Callable[[], Any], meanwhile: Callable[[], None]) -> Any:
    """``work()`` in a forked process while this one runs ``meanwhile()``; returns what
    ``work`` returned, or raises what it raised (see :func:`portable`)."""
    (value,) = values(run_parts([((), None)], lambda _: work(), meanwhile=meanwhile))
    return value


def run_parts(
    parts: Sequence[tuple[Sequence[str], Any]],
    work: Callable[[Any], Any],
    *,
    meanwhile: Callable[[], None] | None = None,
) -> list[PartOutcome]:
    """Run ``work(argument)`` for each ``(practices, argument)`` of ``parts``, each in a
    forked process of its own, all at once (and ``meanwhile()`` here while they run);
    wait for every one. The outcomes come back in the parts' order. ``work`` and
    ``argument`` reach the child by the fork, not by pickling; what ``work`` returns must
    pickle."""
    context = multiprocessing.get_context("fork")
    records: Any = context.Queue()
    listener = logging.handlers.QueueListener(records, _Relay())
    listener.start()
    children = []
    # What the children inherit is left out of their garbage collections: a collection
    # walks every object and so writes to every page of them, copying the parent's
    # memory into each child (Python's gc.freeze, made for a fork).
    gc.freeze()
    try:
        for practices, argument in parts:
            receive, send = context.Pipe(duplex=False)
            child = context.Process(
                target=_child,
                args=(send, records, work, argument),
                name=f"metaudit-part-{practices[0] if practices else 'task'}",
                daemon=False,
            )
            child.start()
            send.close()
            children.append((tuple(practices), child, receive))
        gc.unfreeze()
        if meanwhile is not None:
            meanwhile()
        outcomes = [_collect(practices, child, receive) for practices, child, receive in children]
    finally:
        gc.unfreeze()
        for _, child, receive in children:
            if child.is_alive():
                child.kill()
            child.join()
            receive.close()
        listener.stop()
        records.close()
    return outcomes


def _collect(practices: tuple[str, ...], child: Any, receive: Any) -> PartOutcome:
    try:
        payload = receive.recv_bytes()
    except EOFError:
        child.join()
        return PartOutcome(
            practices,
            error=PartFailedError(
                f"the forked process {_what(practices)} ended without a result "
                f"(exit code {child.exitcode}; killed, or out of memory?)"
            ),
        )
    child.join()
    kind, body = pickle.loads(payload)
    if kind == "value":
        return PartOutcome(practices, value=body)
    return PartOutcome(practices, error=body)


def _what(practices: Sequence[str]) -> str:
    return f"auditing practice(s) {', '.join(practices)}" if practices else "of this task"


def _child(send: Any, records: Any, work: Callable[[Any], Any], argument: Any) -> None:
    """In the forked process: log through the parent, run, send back what came out."""
    _log_through(records)
    try:
        try:
            payload = pickle.dumps(("value", work(argument)))
        except BaseException as exc:  # handed back whole: the parent decides
            log.debug("part failed", exc_info=True)
            payload = pickle.dumps(("error", portable(exc)))
        send.send_bytes(payload)
    finally:
        send.close()
        records.close()
        records.join_thread()


def portable(exc: BaseException) -> BaseException:
    """``exc`` when it survives pickling unchanged in type, else a PartFailedError that
    names it and carries its message and traceback text."""
    try:
        again = pickle.loads(pickle.dumps(exc))
        if type(again) is type(exc):
            return again
    except Exception:
        pass
    described = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return PartFailedError(f"{described} (in a forked audit process)")


def _log_through(records: Any) -> None:
    """The child's log records go to the parent's handlers (through ``records``), not to
    the handlers it inherited: those may write to the task's log channel, which two
    processes must not write to at once."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(records))
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


class _Relay(logging.Handler):
    """In the parent: a child's record handled as if the parent had logged it."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
