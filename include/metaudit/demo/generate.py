"""``generate``: write a demo network with known defects, and the findings they must cause.

The clean network is written in chunks straight from the vectorised generator;
then one host client per selected defect is built, broken, and written. The
ground truth lands beside the database: ``X.sqlite`` gets ``X.truth.jsonl`` (one
expected finding a line) and ``X.meta.json`` (parameters and row counts).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from tqdm import tqdm

from metaudit import __version__
from metaudit.demo import arrow as ar
from metaudit.demo.cohort import Cohort, Expected, Row, build_host
from metaudit.demo.defects import Defect, select
from metaudit.demo.episodes import build_chunk
from metaudit.demo.network import CHUNK_CLIENTS, plan_network
from metaudit.demo.writer import DemoTargetError, open_sink
from metaudit.spec.contract import DATE, TABLES, TIMESTAMP
from metaudit.spec.findings import SEVERITY_RANK

log = logging.getLogger(__name__)

# Bumped whenever the same seed would give a different database.
GENERATOR_VERSION = "1"
DEFAULT_TRUTH_PATH = Path("demo.truth.jsonl")
# Sessions of one defect host before D and after (see metaudit.demo.cohort).
HOST_SESSIONS = 20

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?")


@dataclass
class GenerationReport:
    """What ``generate`` wrote: where, how many rows, and the findings the audit must find."""

    target: str
    as_of: date
    seed: int
    database: Path | None
    truth_path: Path
    meta_path: Path
    row_counts: dict[str, int]
    expected: list[Expected]
    defects: list[str]
    seconds: float
    clients: int = 0
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())

    def __str__(self) -> str:
        return (
            f"{self.target}: {self.total_rows:,} rows ({self.row_counts.get('sessions', 0):,} "
            f"sessions, {self.clients:,} clients), {len(self.defects)} defects, "
            f"{len(self.expected)} expected findings at {self.as_of.isoformat()} "
            f"(truth {self.truth_path}) in {self.seconds:.1f}s"
        )


def generate(
    target: str,
    *,
    as_of: date,
    seed: int = 7,
    practices: int = 3,
    sessions: int = 20_000,
    defects: str | Iterable[str] = "all",
    progress: bool = True,
    drop_existing: bool = True,
    truth_path: str | Path | None = None,
) -> GenerationReport:
    """Write a demo practice network into ``target`` and its ground truth beside it.

    ``target`` is a SQLAlchemy URL or a bare file path (SQLite). About
    ``sessions`` sessions are spread over ``practices`` practices; ``defects`` is
    'all', 'none', or names of the catalogue (``metaudit.demo.DEFECTS``) or rule
    ids, as a comma list or an iterable. Each defect is injected on a client of
    its own. The truth goes to ``X.truth.jsonl`` beside a SQLite file ``X.*``,
    else to ``truth_path`` (default ./demo.truth.jsonl); the meta file sits next
    to it. Records dated after ``as_of`` exist (future sessions, assessments,
    claims) and must cause no finding at ``as_of``.
    """
    started = time.perf_counter()
    chosen = select(defects)
    url = _url(target)
    engine = sa.create_engine(url)
    database = _database_file(engine)
    truth, meta_path = _truth_paths(database, truth_path)

    if database is None and engine.dialect.name == "sqlite":
        raise DemoTargetError("an in-memory SQLite database would vanish with the run; give a file")
    # Each defect host brings about HOST_SESSIONS sessions; the bulk makes up the rest.
    bulk_sessions = max(sessions - HOST_SESSIONS * len(chosen), (sessions + 1) // 2)
    net = plan_network(as_of, seed=seed, practices=practices, sessions=bulk_sessions)
    with_keys = not any(d.duplicates_keys for d in chosen)
    text_columns = sorted({col for d in chosen for col in d.unreadable})
    sink = open_sink(
        engine, with_keys=with_keys, text_columns=text_columns, drop_existing=drop_existing
    )
    counts = dict.fromkeys(TABLES, 0)
    n_clients = len(net.clients)
    bar = tqdm(
        total=n_clients + len(chosen),
        unit="client",
        desc="demo network",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        for name, data in (
            ("practices", net.practices),
            ("staff", net.staff),
            ("providers", net.providers),
        ):
            sink.write(name, data)
            counts[name] += data.num_rows
        for lo in range(0, n_clients, CHUNK_CLIENTS):
            hi = min(lo + CHUNK_CLIENTS, n_clients)
            for name, data in build_chunk(net, lo, hi).items():
                sink.write(name, data)
                counts[name] += data.num_rows
            bar.update(hi - lo)
            bar.set_postfix(rows=f"{sum(counts.values()):,}")

        cohort = Cohort(net=net, as_of=as_of)
        expected: list[Expected] = []
        for index, entry in enumerate(chosen):
            host = build_host(cohort, entry.name, index, active=entry.active, preauth=entry.preauth)
            expected.extend(entry.inject(cohort, host))
            bar.update(1)
        for name, rows in cohort.rows.items():
            data = cohort_table(name, rows, _allowed_unreadable(chosen))
            sink.write(name, data)
            counts[name] += data.num_rows
    except BaseException:
        sink.discard()
        raise
    finally:
        bar.close()
    sink.close()

    expected = sort_expected(expected)
    seconds = time.perf_counter() - started
    shown = engine.url.render_as_string(hide_password=True)
    meta = {
        "generator": "metaudit.demo",
        "generator_version": GENERATOR_VERSION,
        "metaudit_version": __version__,
        "target": shown,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "practices": practices,
        "sessions": sessions,
        "sessions_written": counts["sessions"],
        "clients": n_clients + len(chosen),
        "defects": [d.name for d in chosen],
        "rules_injected": sorted({e.rule_id for e in expected}),
        "expected_findings": len(expected),
        "primary_keys": with_keys,
        "text_columns": [f"{t}.{c}" for t, c in text_columns],
        "row_counts": counts,
        "total_rows": sum(counts.values()),
        "seconds": round(seconds, 1),
    }
    write_truth(truth, expected)
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("demo network: %s rows into %s in %.1fs", f"{sum(counts.values()):,}", shown, seconds)
    return GenerationReport(
        target=shown,
        as_of=as_of,
        seed=seed,
        database=database,
        truth_path=truth,
        meta_path=meta_path,
        row_counts=counts,
        expected=expected,
        defects=[d.name for d in chosen],
        seconds=seconds,
        clients=n_clients + len(chosen),
        meta=meta,
    )


def _url(target: str) -> str:
    """A SQLAlchemy URL: as given, or ``sqlite:///`` + the absolute path of a bare file path."""
    if "://" in target:
        return target
    path = Path(target).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _database_file(engine: sa.Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return Path(database)
    return None


def _truth_paths(database: Path | None, truth_path: str | Path | None) -> tuple[Path, Path]:
    if truth_path is not None:
        truth = Path(truth_path)
    elif database is not None:
        truth = database.with_suffix(".truth.jsonl")
    else:
        truth = DEFAULT_TRUTH_PATH
    name = truth.name
    stem = name[: -len(".truth.jsonl")] if name.endswith(".truth.jsonl") else truth.stem
    return truth, truth.with_name(stem + ".meta.json")


def _allowed_unreadable(chosen: list[Defect]) -> set[tuple[str, str]]:
    return {col for d in chosen for col in d.unreadable}


def cohort_table(name: str, rows: list[Row], allowed_unreadable: set[tuple[str, str]]) -> pa.Table:
    """The host rows of ``name`` as an Arrow table; a column holding an unreadable value is text.

    Only the columns a selected defect declares may hold unreadable values: the
    PostgreSQL schema makes exactly those text, and a typed column would refuse
    anything else.
    """
    table = TABLES[name]
    columns: dict[str, pa.Array] = {}
    for column in table.columns:
        values = [row.get(column.name) for row in rows]
        wanted = ar.storage_type(name, column.name)
        if all(_readable(v, wanted, column.type) for v in values):
            columns[column.name] = pa.array(values, type=wanted)
            continue
        if (name, column.name) not in allowed_unreadable:
            raise AssertionError(f"{name}.{column.name} holds an undeclared unreadable value")
        columns[column.name] = pa.array(
            [None if v is None else str(v) for v in values], pa.string()
        )
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def _readable(value: Any, wanted: pa.DataType, column_type: str) -> bool:
    """Whether a clean column of Arrow type ``wanted`` can hold ``value`` as it is."""
    if value is None:
        return True
    if pa.types.is_integer(wanted):
        return isinstance(value, int) and not isinstance(value, bool)
    if pa.types.is_floating(wanted):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if not isinstance(value, str):
        return False
    if column_type == DATE:
        return _ISO_DATE.fullmatch(value) is not None
    if column_type == TIMESTAMP:
        return _ISO_STAMP.fullmatch(value) is not None
    return True


def sort_expected(expected: list[Expected]) -> list[Expected]:
    """One finding per (practice, rule, entity), sorted as findings are (practice nulls last)."""
    from metaudit.spec import rulebook

    unique: dict[tuple[str | None, str, str, str], Expected] = {}
    for e in expected:
        unique.setdefault((e.practice_id, e.rule_id, e.entity_type, e.entity_id), e)

    def key(e: Expected) -> tuple[Any, ...]:
        severity = rulebook.RULES[e.rule_id].severity if e.rule_id in rulebook.RULES else ""
        return (
            e.practice_id is None,
            e.practice_id or "",
            SEVERITY_RANK.get(severity, 9),
            e.rule_id,
            e.entity_id,
            e.entity_type,
        )

    return sorted(unique.values(), key=key)


def write_truth(path: Path, expected: list[Expected]) -> None:
    """Write the expected findings as JSON Lines (an empty file for a clean network)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for e in expected:
            out.write(json.dumps(e.as_dict(), sort_keys=False) + "\n")
    tmp.replace(path)


def read_truth(path: str | Path) -> list[Expected]:
    """Read a truth file back."""
    found = []
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                found.append(Expected(**json.loads(line)))
    return found
