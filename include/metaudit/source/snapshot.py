"""Per-practice typed partitions of a source: what extract hands to each practice's validate.

Extract reads and types the source once, streaming into practice groups
(:mod:`metaudit.source.stream`), and splits each group here into one partition per
practice: every typed table restricted
to the practice's rows (tables that belong to no practice, such as providers,
whole), the masks of unreadable values that the as-of view needs, and the
practice's data-quality findings. A partition is a folder of Arrow IPC files
(``<table>.arrow``, zstd level 1; pandas dtypes kept through Arrow's pandas
metadata) and a ``manifest.json`` naming each table's row count and dtypes, so a
reader can tell a damaged partition from a good one. Arrow IPC rather than
Parquet: a partition lives for one night and is written once and read once or
twice, and IPC writes and reads it in half Parquet's time at the same size.

The findings whose practice is unknown (rows whose parent is missing, so no
practice can be named) belong to no partition: they are the run's own and are
written beside the partitions.

pandas and pyarrow are imported inside the functions: the DAG file names
:class:`PartitionError` in its retry policy, which imports this module when
Airflow parses the DAG.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaudit.errors import MetAuditError
from metaudit.paths import id_name, private_dir, private_tree
from metaudit.spec.findings import Finding, read_findings, to_jsonl, write_atomic

if TYPE_CHECKING:
    import pandas as pd

    from metaudit.source.quality import TypedSource

log = logging.getLogger(__name__)

PARTITION_FORMAT = 2
SUFFIX = ".arrow"
MANIFEST = "manifest.json"
DQ_FINDINGS = "dq_findings.jsonl"


class PartitionError(MetAuditError):
    """A practice's partition is missing, unreadable or not what its manifest says.

    Retrying the practice does not help: the partition has to be extracted again.
    """


def partition_of(typed: TypedSource, practice_id: str) -> TypedSource:
    """One practice's share of a typed source (in memory): its rows of every table that
    names a practice, every row of the tables that do not, and its data-quality findings."""
    return _split(typed, [practice_id])[practice_id]


def unattributed_findings(typed: TypedSource) -> list[Finding]:
    """The data-quality findings that name no practice (a row whose parent is missing)."""
    return [f for f in typed.findings if f.practice_id is None]


def write_partitions(
    typed: TypedSource, practice_ids: Iterable[str], as_of: str, root: Path
) -> dict[str, Path]:
    """Write one partition per practice under ``root`` (a folder per practice); return the
    folders. Each folder is replaced as a whole, so a reader never sees half of one."""
    wanted = sorted(set(practice_ids))
    shares = _arrow_shares(typed, wanted)
    return {
        practice_id: write_partition(
            shares[practice_id], practice_id, as_of, root / id_name(practice_id, "practice id")
        )
        for practice_id in wanted
    }


@dataclass(frozen=True)
class ArrowTable:
    """One table of a partition as it is written: the rows as an Arrow table, their
    masks of unreadable values when any is set (None: none is), and the pandas dtypes
    of both, which the manifest states."""

    rows: Any
    masks: Any | None
    dtypes: dict[str, str]
    mask_dtypes: dict[str, str]


@dataclass(frozen=True)
class ArrowPartition:
    """A practice's partition ready to write (:func:`write_partition`)."""

    tables: dict[str, ArrowTable]
    findings: list[Finding]


def _arrow_shares(typed: TypedSource, practice_ids: list[str]) -> dict[str, ArrowPartition]:
    """Each practice's share of ``typed`` as Arrow tables: each table converted once and
    its practices' rows taken from it (what :func:`_split` and converting each share
    give, in half the time: a pandas take and a conversion per practice and table cost
    more than the rows)."""
    import numpy as np

    from metaudit.source.rows import positions_by

    tables: dict[str, dict[str, ArrowTable]] = {p: {} for p in practice_ids}
    empty = np.array([], dtype=np.intp)
    for name, frame in typed.tables.items():
        whole = _WholeTable(frame, typed.unreadable[name])
        if "practice_id" not in frame.columns:
            # Tables that belong to no practice (providers) go to every practice whole.
            for practice_id in practice_ids:
                tables[practice_id][name] = whole.rows(None)
            continue
        positions = positions_by(frame, "practice_id")
        for practice_id in practice_ids:
            tables[practice_id][name] = whole.rows(positions.get(practice_id, empty))
    findings: dict[str, list[Finding]] = {p: [] for p in practice_ids}
    for finding in typed.findings:
        if finding.practice_id in findings:
            findings[finding.practice_id].append(finding)
    return {p: ArrowPartition(tables[p], findings[p]) for p in practice_ids}


class _WholeTable:
    """A typed table and its masks converted to Arrow once, to take rows from."""

    def __init__(self, frame: pd.DataFrame, unreadable: pd.DataFrame) -> None:
        import numpy as np
        import pyarrow as pa

        self.table = pa.Table.from_pandas(frame, preserve_index=False)
        self.dtypes, self.mask_dtypes = _dtypes(frame), _dtypes(unreadable)
        # Which rows hold an unreadable value: almost none, so the masks are converted
        # only when some row does.
        self.flagged = (
            unreadable.to_numpy(dtype=bool).any(axis=1)
            if unreadable.size
            else np.zeros(len(frame), dtype=bool)
        )
        self.masks = (
            pa.Table.from_pandas(unreadable, preserve_index=False) if self.flagged.any() else None
        )

    def rows(self, positions: Any | None) -> ArrowTable:
        """The rows at ``positions`` (None: every row), with their masks when one of
        them holds an unreadable value."""
        if positions is None:
            return ArrowTable(self.table, self.masks, self.dtypes, self.mask_dtypes)
        masks = None
        if self.masks is not None and self.flagged[positions].any():
            masks = self.masks.take(positions)
        return ArrowTable(self.table.take(positions), masks, self.dtypes, self.mask_dtypes)


def write_partition(
    part: TypedSource | ArrowPartition, practice_id: str, as_of: str, folder: Path
) -> Path:
    """Write a partition into ``folder`` (built aside, then renamed into place)."""
    if not isinstance(part, ArrowPartition):
        part = ArrowPartition(
            {
                name: _WholeTable(f, part.unreadable[name]).rows(None)
                for name, f in part.tables.items()
            },
            list(part.findings),
        )
    private_dir(folder.parent)
    building = folder.parent / f".{folder.name}.building-{uuid.uuid4().hex[:8]}"
    building.mkdir(mode=0o700)
    try:
        tables: dict[str, Any] = {}
        for name, table in part.tables.items():
            _write_table(table.rows, building / name)
            # Almost every mask holds no unreadable value: the manifest says so instead of
            # a file (half the files of a partition, which a small practice pays for).
            if table.masks is not None:
                _write_table(table.masks, building / f"{name}.unreadable")
            tables[name] = {
                "rows": table.rows.num_rows,
                "dtypes": table.dtypes,
                "unreadable_dtypes": table.mask_dtypes,
                "unreadable_file": table.masks is not None,
            }
        (building / DQ_FINDINGS).write_text(to_jsonl(part.findings), encoding="utf-8")
        manifest = {
            "format": PARTITION_FORMAT,
            "practice_id": practice_id,
            "as_of": as_of,
            "dq_findings": len(part.findings),
            "tables": tables,
        }
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        # Health records: owner-only, whatever pyarrow and the umask made of them.
        private_tree(building)
        _swap_into_place(building, folder)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info(
        "partition %s as of %s: %d rows in %d tables -> %s",
        practice_id,
        as_of,
        sum(t["rows"] for t in tables.values()),
        len(tables),
        folder,
    )
    return folder


def read_partition(folder: Path, practice_id: str | None = None) -> TypedSource:
    """Read a partition back as a TypedSource, checked against its manifest.

    Raises PartitionError naming the folder and what is wrong when the partition is
    missing, damaged, or belongs to another practice.
    """
    import pyarrow as pa

    from metaudit.source.quality import TypedSource

    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PartitionError(f"partition {folder} has no readable {MANIFEST}: {exc}") from exc
    if manifest.get("format") != PARTITION_FORMAT:
        raise PartitionError(f"partition {folder} has format {manifest.get('format')!r}")
    if practice_id is not None and manifest.get("practice_id") != practice_id:
        raise PartitionError(
            f"partition {folder} holds practice {manifest.get('practice_id')!r}, "
            f"not {practice_id!r}"
        )
    tables: dict[str, pd.DataFrame] = {}
    unreadable: dict[str, pd.DataFrame] = {}
    # What was read, hashed as read: tables, types and masks as the manifest lists them,
    # then each file's bytes. The same digest is the same records, whatever the date.
    digest = hashlib.sha256(b"metaudit-partition/1")
    digest.update(json.dumps(manifest["tables"], sort_keys=True).encode("utf-8"))
    for name, spec in manifest["tables"].items():
        try:
            frame = _read_table(folder / name, digest=digest).to_pandas()
            if spec.get("unreadable_file", True):
                masks = _read_table(folder / f"{name}.unreadable", digest=digest).to_pandas()
            else:
                masks = _no_unreadable(spec["unreadable_dtypes"], spec["rows"])
        except (OSError, pa.ArrowException) as exc:
            raise PartitionError(f"partition {folder}: table {name} unreadable: {exc}") from exc
        if len(frame) != spec["rows"] or len(masks) != spec["rows"]:
            raise PartitionError(
                f"partition {folder}: table {name} has {len(frame)} rows, "
                f"its manifest says {spec['rows']}"
            )
        if _dtypes(frame) != spec["dtypes"] or _dtypes(masks) != spec["unreadable_dtypes"]:
            raise PartitionError(f"partition {folder}: table {name} lost its column types")
        tables[name] = frame
        unreadable[name] = masks
    try:
        findings = read_findings(folder / DQ_FINDINGS)
    except (OSError, ValueError, TypeError) as exc:
        raise PartitionError(f"partition {folder}: {DQ_FINDINGS} unreadable: {exc}") from exc
    if len(findings) != manifest["dq_findings"]:
        raise PartitionError(f"partition {folder}: {DQ_FINDINGS} is incomplete")
    return TypedSource(
        tables=tables, unreadable=unreadable, findings=findings, digest=digest.hexdigest()
    )


def read_partition_columns(folder: Path, table: str, columns: list[str]) -> pd.DataFrame:
    """A few columns of one table of a partition (without reading the rest)."""
    import pyarrow as pa

    try:
        frame: pd.DataFrame = _read_table(folder / table, columns).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise PartitionError(f"partition {folder}: table {table} unreadable: {exc}") from exc
    return frame


def _write_table(table: Any, stem: Path) -> None:
    import pyarrow.feather as feather

    feather.write_feather(table, str(stem) + SUFFIX, compression="zstd", compression_level=1)


def _read_table(stem: Path, columns: list[str] | None = None, digest: Any = None) -> Any:
    """One table file; ``digest`` (a hashlib object) is fed the file's bytes as read."""
    import pyarrow as pa
    import pyarrow.feather as feather

    path = str(stem) + SUFFIX
    if digest is None:
        return feather.read_table(path, columns=columns, memory_map=False)
    data = Path(path).read_bytes()
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)
    return feather.read_table(pa.BufferReader(data), columns=columns)


def write_unattributed(findings: list[Finding], path: Path) -> Path:
    """Write the run-level findings that name no practice (JSON Lines, atomically)."""
    write_atomic(path, to_jsonl(findings))
    return path


def _split(typed: TypedSource, practice_ids: list[str]) -> dict[str, TypedSource]:
    """Every wanted practice's share, grouping each table once (not once per practice)."""
    import numpy as np

    from metaudit.source.quality import TypedSource
    from metaudit.source.rows import positions_by

    shares: dict[str, dict[str, pd.DataFrame]] = {p: {} for p in practice_ids}
    masks: dict[str, dict[str, pd.DataFrame]] = {p: {} for p in practice_ids}
    empty = np.array([], dtype=np.intp)
    for name, frame in typed.tables.items():
        unreadable = typed.unreadable[name]
        if "practice_id" not in frame.columns:
            # Tables that belong to no practice (providers) go to every practice whole.
            for practice_id in practice_ids:
                shares[practice_id][name] = frame
                masks[practice_id][name] = unreadable
            continue
        positions = positions_by(frame, "practice_id")
        for practice_id in practice_ids:
            rows = positions.get(practice_id, empty)
            shares[practice_id][name] = frame.iloc[rows].reset_index(drop=True)
            masks[practice_id][name] = unreadable.iloc[rows].reset_index(drop=True)
    findings: dict[str, list[Finding]] = {p: [] for p in practice_ids}
    for finding in typed.findings:
        if finding.practice_id in findings:
            findings[finding.practice_id].append(finding)
    return {
        p: TypedSource(tables=shares[p], unreadable=masks[p], findings=findings[p])
        for p in practice_ids
    }


def _no_unreadable(dtypes: dict[str, str], rows: int) -> pd.DataFrame:
    """The mask of a table without unreadable values: every cell False, in its dtypes."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {column: np.zeros(rows, dtype=dtype) for column, dtype in dtypes.items()},
        index=pd.RangeIndex(rows),
    )


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {str(column): str(dtype) for column, dtype in frame.dtypes.items()}


def _swap_into_place(building: Path, folder: Path) -> None:
    """Replace ``folder`` by ``building`` with renames (the old one is removed after)."""
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        folder.rename(old)
    building.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def combine(parts: Sequence[TypedSource]) -> TypedSource:
    """Several practices' partitions as one typed source (what one task of the nightly run
    checks at once): their rows of every table that names a practice, one copy of the
    tables that do not (every partition holds them whole), and their findings."""
    import pandas as pd

    from metaudit.source.quality import TypedSource

    if len(parts) == 1:
        return parts[0]
    tables: dict[str, pd.DataFrame] = {}
    unreadable: dict[str, pd.DataFrame] = {}
    for name, first in parts[0].tables.items():
        if "practice_id" not in first.columns:
            tables[name], unreadable[name] = first, parts[0].unreadable[name]
            continue
        tables[name] = pd.concat([part.tables[name] for part in parts], ignore_index=True)
        unreadable[name] = pd.concat([part.unreadable[name] for part in parts], ignore_index=True)
    findings = [finding for part in parts for finding in part.findings]
    return TypedSource(tables=tables, unreadable=unreadable, findings=findings)
