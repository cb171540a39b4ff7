"""Reading and typing a source in bounded memory: one streaming pass, rows spooled by
practice group to disk, the network-wide data-quality rules judged from compact key sets.

The whole network is never held. Each table arrives in batches
(:func:`metaudit.source.reader.iter_table_batches`), and each batch is typed
(:func:`metaudit.source.quality.type_table`), attributed to its client and
practice, judged for DQ-002 and DQ-003 and written to its practice group's spool
file before the next batch is read. What outlives a batch is small:

- for every table that other tables link to, its keys (the first row of each) as a
  sorted fixed-width byte array (:class:`KeyIndex`), with the client each key's row
  belongs to: a link is judged (DQ-002) and a row attributed (rulebook reading 8)
  against it, as the whole-network typing does (``positions`` of the first row);
- while a keyed table streams, its keys and their rows' practice and client codes,
  so DQ-001 (duplicate keys) is judged over the whole table at its end; the later
  rows of a duplicated key are then left out when a group is read back;
- the small network tables (practices, staff, providers) and the clients table,
  typed in memory: clients decide the groups, and every group gets the three
  network tables whole (a session's staff member or a referral's provider may
  be another practice's, as in the whole-network check).

Tables are read in the contract's order, where a linked table always comes before
the tables that link to it (checked at import). Groups pack whole practices
(sorted by id) up to ``clients_per_group`` clients; rows that reach no practice
go with the first group. :meth:`StreamedSource.read_group` gives a group back as a
:class:`~metaudit.source.quality.TypedSource` equal to the whole-network typed
source restricted to the group's rows (same rows, order, dtypes and masks).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from metaudit.paths import private_dir
from metaudit.source.quality import (
    _CLIENT_TABLES,
    TypedSource,
    dq_findings,
    key_duplicates,
    type_table,
)
from metaudit.spec.contract import PARENT_OF, TABLES, Table
from metaudit.spec.findings import Finding

log = logging.getLogger(__name__)

# A group holds about this many clients' records (a client has some 30 sessions and
# 360 rows in the demo network: 5,000 clients is about 1.8 M rows, well under 1 GiB
# typed). Whole practices only: a larger practice is a group of its own.
CLIENTS_PER_GROUP = 5_000

# Tables kept in memory and given whole to every group (small; other practices' rows
# are what a link may name).
NETWORK_TABLES = ("practices", "staff", "providers")

# Tables other tables link to: their keys outlive their stream.
LINKED = frozenset(c.references for t in TABLES.values() for c in t.foreign_keys if c.references)

_TABLE_AT = {name: at for at, name in enumerate(TABLES)}
_RULE_AT = {"DQ-003": 0, "DQ-002": 1, "DQ-001": 2}

_ROW = "__row"
_BAD = "__unreadable__"


def _check_order() -> None:
    seen: set[str] = set()
    for name, table in TABLES.items():
        for column in table.foreign_keys:
            assert column.references in seen, f"{name}.{column.name} links forward"
        seen.add(name)


_check_order()


# ---------------------------------------------------------------------------
# Key sets


def _fixed_bytes(strings: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """Strings as a numpy ``S{width}`` array, zero-padded (a longer string or NA: empty).

    Built from the Arrow buffers in slices, never a Python object per value.
    """
    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    out = np.zeros((len(strings), width), dtype=np.uint8)
    at = 0
    step = 1 << 20
    for chunk in chunks:
        for start in range(0, len(chunk), step):
            part = chunk.slice(start, step)
            count = len(part)
            _, offsets_buffer, data_buffer = part.buffers()
            large = pa.types.is_large_string(part.type) or pa.types.is_large_binary(part.type)
            kind = np.dtype(np.int64 if large else np.int32)
            offsets = np.frombuffer(
                offsets_buffer, dtype=kind, count=count + 1, offset=part.offset * kind.itemsize
            ).astype(np.int64)
            lengths = np.diff(offsets)
            fits = lengths <= width
            if part.null_count:
                fits &= np.asarray(part.is_valid(), dtype=bool)
            data = (
                np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(1, np.uint8)
            )
            columns = np.arange(width)
            index = offsets[:-1, None] + columns
            take = fits[:, None] & (columns < lengths[:, None])
            block = np.zeros((count, width), dtype=np.uint8)
            block[take] = data[index[take]]
            out[at : at + count] = block
            at += count
    return out.view(f"S{width}").reshape(len(strings)) if width else out.reshape(-1)


def _arrow(values: pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    return pa.array(values.astype(pd.StringDtype("pyarrow")).array)


class KeyIndex:
    """Unique, non-null string keys and the position of each: ``find`` maps values to
    positions (-1: no such key, or NA), exactly as a hash lookup of the strings would.

    Keys are held as one sorted fixed-width byte array (about the keys' own size) and
    searched with numpy. Keys longer than 64 bytes, or holding a NUL (which the
    fixed-width form cannot tell from padding), are held in a dict instead.
    """

    _LONGEST = 64

    def __init__(self, keys: pa.Array | pa.ChunkedArray) -> None:
        self.size = len(keys)
        self._dict: dict[str, int] | None = None
        longest = pc.max(pc.binary_length(keys)).as_py() if self.size else 0
        nul = bool(pc.any(pc.match_substring(keys, "\x00")).as_py()) if self.size else False
        if longest > self._LONGEST or nul:
            self._dict = {key: at for at, key in enumerate(keys.to_pylist())}
            self._width = 0
            return
        self._width = max(int(longest), 1)
        fixed = _fixed_bytes(keys, self._width)
        self._order = np.argsort(fixed, kind="stable")
        self._sorted = fixed[self._order]

    def find(self, values: pd.Series | pa.Array | pa.ChunkedArray) -> np.ndarray:
        strings = _arrow(values)
        count = len(strings)
        if self.size == 0 or count == 0:
            return np.full(count, -1, dtype=np.intp)
        if self._dict is not None:
            table = self._dict
            return np.array([table.get(v, -1) for v in strings.to_pylist()], dtype=np.intp)
        valid = pc.and_(
            pc.less_equal(pc.binary_length(strings), self._width),
            pc.invert(pc.match_substring(strings, "\x00")),
        )
        ok = np.asarray(valid.fill_null(False), dtype=bool)
        fixed = _fixed_bytes(strings, self._width)
        # Sorted needles walk the sorted keys in order: far fewer cache misses.
        order = np.argsort(fixed, kind="stable")
        at = np.searchsorted(self._sorted, fixed[order])
        at = np.minimum(at, self.size - 1)
        hit = self._sorted[at] == fixed[order]
        found = np.full(count, -1, dtype=np.intp)
        found[order] = np.where(hit, self._order[at], -1)
        found[~ok] = -1
        return found


# ---------------------------------------------------------------------------
# The streamed source


class _Codes:
    """Dense integer codes of practice ids (few: the network's practices)."""

    def __init__(self) -> None:
        self.code: dict[str, int] = {}
        self.values: list[str] = []

    def encode(self, values: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(values.astype("string"))
        mapped = np.empty(len(uniques) + 1, dtype=np.int32)
        for at, value in enumerate(uniques.tolist()):
            text = str(value)
            if text not in self.code:
                self.code[text] = len(self.values)
                self.values.append(text)
            mapped[at] = self.code[text]
        mapped[-1] = -1
        return mapped[codes]

    def strings(self, codes: np.ndarray) -> pd.Series:
        table = pa.array(self.values, type=pa.string())
        picked = table.take(pa.array(codes, mask=codes < 0))
        return pd.Series(pd.arrays.ArrowStringArray(picked))


@dataclass
class _Parent:
    """A linked table's keys and, per key, the client its first row belongs to."""

    index: KeyIndex
    client: np.ndarray | None = None  # position in the clients' keys, -1: none


@dataclass
class _Keys:
    """A keyed table's keys while it streams (for DQ-001 at its end)."""

    keys: list[pa.Array] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    practice: list[np.ndarray] = field(default_factory=list)
    client: list[np.ndarray] = field(default_factory=list)


@dataclass
class StreamedSource:
    """A source typed into practice groups on disk, with its data-quality findings.

    ``groups`` lists each group's practice ids; rows reaching no practice (and
    practices with no client) belong to the first group. ``close`` removes the spool.
    """

    folder: Path
    groups: list[list[str]]
    findings: list[Finding]
    practice_ids: list[str]
    seconds: dict[str, float]
    _network: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
    _empty: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
    _later: dict[str, np.ndarray]
    _group_of: dict[str, int]
    _client_group: dict[str, int] = field(default_factory=dict)
    _owns_folder: bool = True

    def group_of(self, practice_id: str | None) -> int:
        """The group holding a practice's rows (the first for no or unknown practice)."""
        if practice_id is None:
            return 0
        return self._group_of.get(practice_id, 0)

    def finding_group(self, finding: Finding) -> int:
        """The group whose records a finding is about: its client's, else its practice's.

        A finding's money at risk (its exposure) is found among its client's records,
        which a finding's practice does not always name: a client row repeated under
        another (or no) practice has a finding for that practice.
        """
        if finding.client_id is not None and finding.client_id in self._client_group:
            return self._client_group[finding.client_id]
        return self.group_of(finding.practice_id)

    def read_group(self, group: int, by_client: bool = False) -> TypedSource:
        """One group's typed tables (network tables whole) and its data-quality findings:
        those of its practices, or with ``by_client`` those :meth:`finding_group` gives it."""
        import pyarrow.ipc as ipc

        tables: dict[str, pd.DataFrame] = {}
        unreadable: dict[str, pd.DataFrame] = {}
        for name in TABLES:
            if name in self._network:
                values, bad = self._network[name]
                tables[name], unreadable[name] = values.copy(), bad.copy()
                continue
            path = self.folder / f"g{group}" / f"{name}.arrows"
            if not path.exists():
                values, bad = self._empty[name]
                tables[name], unreadable[name] = values.copy(), bad.copy()
                continue
            with pa.memory_map(str(path)) as source:
                spooled = ipc.open_stream(source).read_all()
            tables[name], unreadable[name] = _unspool(spooled, self._later.get(name))
            del spooled
        owner = self.finding_group if by_client else (lambda f: self.group_of(f.practice_id))
        findings = [f for f in self.findings if owner(f) == group]
        return TypedSource(tables=tables, unreadable=unreadable, findings=findings)

    def close(self) -> None:
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> StreamedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unspool(spooled: pa.Table, later: np.ndarray | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = spooled.to_pandas()
    rows = frame.pop(_ROW).to_numpy()
    bad_columns = [c for c in frame.columns if str(c).startswith(_BAD)]
    bad = frame[bad_columns]
    bad.columns = [str(c)[len(_BAD) :] for c in bad_columns]
    values = frame.drop(columns=bad_columns)
    if later is not None and len(later):
        keep = ~np.isin(rows, later)
        values, bad = values[keep], bad[keep]
    return values.reset_index(drop=True), bad.reset_index(drop=True)


def _spoolable(values: pd.DataFrame, bad: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    marks = bad.copy()
    marks.columns = [f"{_BAD}{c}" for c in bad.columns]
    out = pd.concat([values, marks], axis=1)
    out[_ROW] = rows
    return out


class _Spool:
    """One IPC stream writer per group for the table being streamed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[int, object] = {}
        self.schema: pa.Schema | None = None
        self.name = ""

    def start(self, name: str) -> None:
        self.name, self.schema, self.writers = name, None, {}

    def write(self, group: int, frame: pd.DataFrame) -> None:
        import pyarrow.ipc as ipc

        if self.schema is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self.schema = table.schema
        else:
            table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        writer = self.writers.get(group)
        if writer is None:
            folder = self.folder / f"g{group}"
            if not folder.exists():
                private_dir(folder)
            options = ipc.IpcWriteOptions(compression="lz4")
            path = folder / f"{self.name}.arrows"
            writer = ipc.new_stream(str(path), self.schema, options=options)
            path.chmod(0o600)  # health records: owner-only, whatever the umask
            self.writers[group] = writer
        writer.write_table(table)  # type: ignore[attr-defined]

    def finish(self) -> None:
        for writer in self.writers.values():
            writer.close()  # type: ignore[attr-defined]
        self.writers = {}


def stream_source(
    batches: Iterator[tuple[str, pd.DataFrame]],
    as_of: str,
    *,
    folder: Path | None = None,
    clients_per_group: int = CLIENTS_PER_GROUP,
) -> StreamedSource:
    """Type a source's batches (every contract table, in the contract's order) into
    practice groups spooled under ``folder`` (a private temporary folder when None).

    The findings are those of :func:`metaudit.source.quality.type_source` on the whole
    source (the same rows, attributions and messages; their order may differ, and
    every consumer sorts them).
    """
    owns = folder is None
    root = Path(tempfile.mkdtemp(prefix="metaudit-stream-")) if folder is None else folder
    private_dir(root)
    try:
        return _Streamer(root, as_of, clients_per_group, owns).run(batches)
    except BaseException:
        if owns:
            shutil.rmtree(root, ignore_errors=True)
        raise


class _Streamer:
    def __init__(self, folder: Path, as_of: str, clients_per_group: int, owns: bool) -> None:
        self.folder = folder
        self.as_of = as_of
        self.per_group = max(1, clients_per_group)
        self.owns = owns
        self.codes = _Codes()
        self.parents: dict[str, _Parent] = {}
        self.findings: list[Finding] = []
        self.network: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
        self.empty: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
        self.later: dict[str, np.ndarray] = {}
        self.group_of: dict[str, int] = {}
        self.client_group: dict[str, int] = {}
        self.group_of_code = np.zeros(0, dtype=np.int32)
        self.groups: list[list[str]] = [[]]
        self.client_ids: pa.Array = pa.array([], type=pa.string())
        self.client_practice = np.zeros(0, dtype=np.int32)
        self.spool = _Spool(folder)
        self.seconds = {"read": 0.0, "type": 0.0}

    # -- the pass -----------------------------------------------------------------------

    def run(self, batches: Iterator[tuple[str, pd.DataFrame]]) -> StreamedSource:
        current: str | None = None
        held: list[tuple[pd.DataFrame, pd.DataFrame, np.ndarray]] = []
        keys = _Keys()
        offset = 0
        done: list[str] = []
        iterator = iter(batches)
        while True:
            started = time.perf_counter()
            try:
                name, raw = next(iterator)
            except StopIteration:
                name, raw = None, None  # type: ignore[assignment]
            self.seconds["read"] += time.perf_counter() - started
            started = time.perf_counter()
            if name != current:
                if current is not None:
                    self._end_table(current, held, keys)
                    done.append(current)
                if name is None:
                    self.seconds["type"] += time.perf_counter() - started
                    break
                if name in done:
                    raise ValueError(f"table {name} streamed twice")
                current, held, keys, offset = name, [], _Keys(), 0
                self.spool.start(name)
            assert raw is not None and name is not None
            offset = self._batch(name, raw.reset_index(drop=True), offset, held, keys)
            del raw
            self.seconds["type"] += time.perf_counter() - started
        missing = [name for name in TABLES if name not in done]
        if missing:
            raise ValueError(f"tables not streamed: {', '.join(missing)}")
        # The whole-network typing's order: table by table, DQ-003, DQ-002 then DQ-001,
        # each in row order (what the batches gave, in order, for each table and rule).
        self.findings.sort(
            key=lambda f: (_TABLE_AT[f.entity_id.split(":", 1)[0]], _RULE_AT[f.rule_id])
        )
        return StreamedSource(
            folder=self.folder,
            groups=self.groups,
            findings=self.findings,
            practice_ids=self._practice_ids(),
            seconds=self.seconds,
            _network=self.network,
            _empty=self.empty,
            _later=self.later,
            _group_of=self.group_of,
            _client_group=self.client_group,
            _owns_folder=self.owns,
        )

    def _practice_ids(self) -> list[str]:
        practices = self.network["practices"][0]["practice_id"]
        return sorted(practices.dropna().astype(str).tolist())

    def _batch(
        self,
        name: str,
        raw: pd.DataFrame,
        offset: int,
        held: list[tuple[pd.DataFrame, pd.DataFrame, np.ndarray]],
        keys: _Keys,
    ) -> int:
        table = TABLES[name]
        typed = type_table(table, raw)
        frame = typed.values
        count = len(frame)
        rows = np.arange(offset, offset + count, dtype=np.int64)
        links = {
            column.name: self.parents[column.references or ""].index.find(frame[column.name])
            for column in table.foreign_keys
        }
        client = self._attribute(name, frame, links)
        self.findings.extend(
            dq_findings(table, frame, typed.unreadable, typed.missing, links, self.as_of)
        )
        practice = (
            self.codes.encode(frame["practice_id"])
            if "practice_id" in frame.columns
            else np.full(count, -1, dtype=np.int32)
        )
        keep = np.ones(count, dtype=bool)
        if table.key:
            present = frame[table.key].notna().to_numpy()
            keep = present
            keys.keys.append(_arrow(frame[table.key][present]))
            keys.rows.append(rows[present])
            keys.practice.append(practice[present])
            if client is not None:
                keys.client.append(client[present])
        values, bad = frame, typed.unreadable
        if not keep.all():
            values, bad, rows, practice = values[keep], bad[keep], rows[keep], practice[keep]
        if name not in self.empty:
            self.empty[name] = (values.iloc[:0].reset_index(drop=True), bad.iloc[:0].copy())
        if name in NETWORK_TABLES or name == "clients":
            held.append((values, bad, rows))
        else:
            self._route(values, bad, rows, practice)
        return offset + count

    def _attribute(
        self, name: str, frame: pd.DataFrame, links: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        """Add client_id and practice_id as the whole-network typing does (reading 8);
        return each row's client (a position in the clients' keys, -1: none)."""
        if name in _CLIENT_TABLES:
            row = links["client_id"]
            frame["client_id"] = frame["client_id"].where(row >= 0)
        elif name in PARENT_OF:
            link, parent_name = PARENT_OF[name]
            parent_row = links[link]
            mapped = self.parents[parent_name].client
            assert mapped is not None, parent_name
            row = np.full(len(parent_row), -1, dtype=np.intp)
            known = parent_row >= 0
            row[known] = mapped[parent_row[known]]
            picked = self.client_ids.take(pa.array(row, mask=row < 0))
            frame["client_id"] = pd.Series(pd.arrays.ArrowStringArray(picked), index=frame.index)
        else:
            return None
        codes = np.full(len(row), -1, dtype=np.int32)
        codes[row >= 0] = self.client_practice[row[row >= 0]]
        strings = self.codes.strings(codes)
        strings.index = frame.index
        frame["practice_id"] = strings
        return row

    def _route(
        self, values: pd.DataFrame, bad: pd.DataFrame, rows: np.ndarray, practice: np.ndarray
    ) -> None:
        if not len(values):
            return
        known = np.zeros(len(self.codes.values) + 1, dtype=np.int32)
        size = min(len(self.group_of_code), len(known) - 1)
        known[:size] = self.group_of_code[:size]
        group = known[practice]  # code -1 reads the last slot: the first group
        spooled = _spoolable(values.reset_index(drop=True), bad.reset_index(drop=True), rows)
        if (group == group[0]).all():
            self.spool.write(int(group[0]), spooled)
            return
        for number, at in pd.Series(group).groupby(group, sort=True).indices.items():
            self.spool.write(int(number), spooled.iloc[at])

    # -- a table's end -----------------------------------------------------------------

    def _end_table(
        self,
        name: str,
        held: list[tuple[pd.DataFrame, pd.DataFrame, np.ndarray]],
        keys: _Keys,
    ) -> None:
        table = TABLES[name]
        self.spool.finish()
        later = np.zeros(0, dtype=np.int64)
        firsts: tuple[pa.ChunkedArray, np.ndarray | None] | None = None
        if table.key:
            later, firsts = self._duplicates(table, keys)
            self.later[name] = later
        if name in NETWORK_TABLES or name == "clients":
            values = pd.concat([h[0] for h in held]) if held else self.empty[name][0]
            bad = pd.concat([h[1] for h in held]) if held else self.empty[name][1]
            rows = np.concatenate([h[2] for h in held]) if held else np.zeros(0, np.int64)
            if len(later):
                keep = ~np.isin(rows, later)
                values, bad, rows = values[keep], bad[keep], rows[keep]
            values, bad = values.reset_index(drop=True), bad.reset_index(drop=True)
            held.clear()
            if name == "clients":
                self._clients(values, bad, rows)
            else:
                self.network[name] = (values, bad)
                if name in LINKED:
                    self.parents[name] = _Parent(KeyIndex(_arrow(values[table.key or ""])))
            return
        if name in LINKED:
            assert firsts is not None, name
            unique_keys, unique_client = firsts
            self.parents[name] = _Parent(KeyIndex(unique_keys), unique_client)

    def _duplicates(
        self, table: Table, keys: _Keys
    ) -> tuple[np.ndarray, tuple[pa.ChunkedArray, np.ndarray | None]]:
        """DQ-001 over the whole table; (rows of later duplicates, (keys of first rows,
        their clients))."""
        chunks = [c.cast(pa.large_string()) for c in keys.keys]
        every_key = pa.chunked_array(chunks, type=pa.large_string())
        series = pd.Series(pd.arrays.ArrowExtensionArray(every_key)).astype(
            pd.StringDtype("pyarrow")
        )
        rows = np.concatenate(keys.rows) if keys.rows else np.zeros(0, np.int64)
        practice = np.concatenate(keys.practice) if keys.practice else np.zeros(0, np.int32)
        client = np.concatenate(keys.client) if keys.client else None
        keys.keys.clear()
        duplicated, later = key_duplicates(series)
        dup = duplicated.to_numpy(dtype=bool)
        late = later.to_numpy(dtype=bool)
        first_dup = dup & ~late
        if first_dup.any():
            at = np.flatnonzero(first_dup)
            self.findings.extend(self._dq001(table, series.iloc[at], practice[at], client, at))
        kept = ~late
        unique = every_key.filter(pa.array(kept)) if late.any() else every_key
        unique_client = client[kept] if client is not None else None
        if table.name == "clients":
            unique_client = None
        return rows[late], (unique, unique_client)

    def _dq001(
        self,
        table: Table,
        key: pd.Series,
        practice: np.ndarray,
        client: np.ndarray | None,
        at: np.ndarray,
    ) -> list[Finding]:
        frame = pd.DataFrame({table.key or "": key.reset_index(drop=True)})
        if table.name in ("practices", "staff", "clients") or client is not None:
            frame["practice_id"] = self.codes.strings(practice)
        if table.name == "clients":
            frame["client_id"] = frame[table.key or ""]
        elif client is not None:
            row = client[at]
            picked = self.client_ids.take(pa.array(row, mask=row < 0))
            frame["client_id"] = pd.Series(pd.arrays.ArrowStringArray(picked))
        from metaudit.source.quality import finding_rows

        return finding_rows("DQ-001", table, frame, None, self.as_of)

    def _clients(self, values: pd.DataFrame, bad: pd.DataFrame, rows: np.ndarray) -> None:
        """The clients' keys and practices; the practice groups; the clients spooled."""
        self.client_ids = pa.array(values["client_id"].array).cast(pa.string())
        if isinstance(self.client_ids, pa.ChunkedArray):
            self.client_ids = self.client_ids.combine_chunks()
        practice = self.codes.encode(values["practice_id"])
        self.client_practice = practice
        self.parents["clients"] = _Parent(KeyIndex(self.client_ids))
        counts = pd.Series(practice[practice >= 0]).value_counts()
        named = sorted((self.codes.values[code], int(n)) for code, n in counts.items())
        groups: list[list[str]] = []
        size = self.per_group
        for practice_id, clients in named:
            if not groups or size + clients > self.per_group:
                groups.append([])
                size = 0
            groups[-1].append(practice_id)
            size += clients
        self.groups = groups or [[]]
        self.group_of = {p: number for number, members in enumerate(groups) for p in members}
        self.group_of_code = np.zeros(len(self.codes.values), dtype=np.int32)
        for practice_id, number in self.group_of.items():
            self.group_of_code[self.codes.code[practice_id]] = number
        self.client_group = dict(
            zip(
                self.client_ids.to_pylist(),
                np.append(self.group_of_code, 0)[practice].tolist(),
                strict=True,
            )
        )
        self._route(values, bad, rows, practice)
        self.spool.finish()
        log.info("%d clients of %d practices in %d group(s)", len(values), len(named), len(groups))
