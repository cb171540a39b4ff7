"""The packets on disk, as the packets page lists them: find, filter, page, verify.

The folder layout (:mod:`metaudit.packets.layout`) is the index: practice
folders, then as-of date folders, then one zip per client, plus one
``practice-YYYY-MM.zip`` per practice and month. A listing reads only the
folders its filter needs (the practices the user may see, the as-of date asked
for), so a year of nightly packets does not make every page scan everything.

Folder and file names are ids, percent-encoded when they hold other characters
than letters, digits, ``.``, ``_`` and ``-``. A name that does not encode back
to itself (a stray file, a hand-made folder) is not a packet and is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from metaudit.packets.errors import PacketError
from metaudit.packets.inforce import in_force_path, listed_raw
from metaudit.packets.layout import client_packet_path, practice_packet_path
from metaudit.packets.verify import (
    CLIENT,
    MONTH_FILE,
    PRACTICE,
    PacketPlace,
    is_date_folder,
)
from metaudit.paths import id_name, id_of_name


@dataclass(frozen=True)
class PacketEntry:
    """One packet file: what it is (from its place in the folder) and its size and time."""

    kind: str  # CLIENT or PRACTICE
    practice_id: str
    client_id: str | None  # client packets only
    as_of: str | None  # client packets: the as-of date of the folder
    month: str | None  # practice packets: YYYY-MM
    path: Path
    size: int
    modified: datetime
    mtime_ns: int
    # Client packets in force on a later date than they were built (the date's index,
    # metaudit.packets.inforce; unverified here, the verdict checks it): the build date
    # and the first date from which the client's records stood as in the packet.
    built_as_of: str | None = None
    records_unchanged_since: str | None = None

    @property
    def relative(self) -> str:
        """The path below the packets folder (ids only: no PHI)."""
        if self.kind == CLIENT:
            return f"{id_name(self.practice_id, 'practice id', PacketError)}/{self.as_of}/{self.path.name}"
        return f"{id_name(self.practice_id, 'practice id', PacketError)}/{self.path.name}"

    @property
    def period(self) -> str:
        """The as-of date of a client packet, the month of a practice packet."""
        return (self.as_of if self.kind == CLIENT else self.month) or ""


@dataclass(frozen=True)
class Verdict:
    """Whether a packet verifies under the deployment's key, and why not."""

    intact: bool
    detail: str


def _decoded(name: str) -> str | None:
    """The id a file or folder name stands for, or None when the name is not one we write."""
    return id_of_name(name)


def _in_force(packets_dir: Path, practice_id: str, as_of: str) -> dict[str, Any]:
    """The date's index of the packets in force as stored (client id -> entry), read once
    per change of the file."""
    path = in_force_path(packets_dir, practice_id, as_of)
    try:
        stamp = path.stat().st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return _index_of(str(packets_dir), practice_id, as_of, stamp)


@lru_cache(maxsize=1024)
def _index_of(packets_dir: str, practice_id: str, as_of: str, mtime_ns: int) -> dict[str, Any]:
    # A date's index names its base, which is never rewritten: the index's time suffices.
    return listed_raw(Path(packets_dir), practice_id, as_of)


def _entry(
    path: Path,
    kind: str,
    practice_id: str,
    client_id: str | None,
    period: str,
    in_force: Mapping[str, Any] | None = None,
) -> PacketEntry | None:
    try:
        stat = path.stat()
    except FileNotFoundError:  # removed by a rebuild between listing and stat
        return None
    listed = (in_force or {}).get(client_id or "")
    listed = listed if isinstance(listed, dict) else {}
    return PacketEntry(
        kind=kind,
        practice_id=practice_id,
        client_id=client_id,
        as_of=period if kind == CLIENT else None,
        month=period if kind == PRACTICE else None,
        path=path,
        size=stat.st_size,
        modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        mtime_ns=stat.st_mtime_ns,
        built_as_of=_text(listed.get("built_as_of")),
        records_unchanged_since=_text(listed.get("records_unchanged_since")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _scandir(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            yield from entries
    except (FileNotFoundError, NotADirectoryError):
        return


class PacketCatalog:
    """The packets below one folder."""

    def __init__(self, packets_dir: Path) -> None:
        self.packets_dir = Path(packets_dir)

    def practices(self) -> list[str]:
        """Practice ids that have a packet folder."""
        found = []
        for item in _scandir(self.packets_dir):
            if item.is_dir(follow_symlinks=False):
                practice_id = _decoded(item.name)
                if practice_id is not None:
                    found.append(practice_id)
        return sorted(found)

    def as_of_dates(self, practice_ids: Iterable[str]) -> list[str]:
        """The as-of dates with client packets of any of these practices, newest first."""
        dates: set[str] = set()
        for practice_id in practice_ids:
            for item in _scandir(self._practice_dir(practice_id)):
                if item.is_dir(follow_symlinks=False) and is_date_folder(item.name):
                    dates.add(item.name)
        return sorted(dates, reverse=True)

    def find(
        self,
        practice_ids: Iterable[str],
        *,
        client_id: str | None = None,
        as_of: str | None = None,
        kind: str | None = None,
    ) -> list[PacketEntry]:
        """Packets of these practices matching the filter: newest period first, then by
        practice, practice packet before client packets, then by client."""
        found: list[PacketEntry] = []
        for practice_id in sorted(set(practice_ids)):
            folder = self._practice_dir(practice_id)
            for item in _scandir(folder):
                if item.is_dir(follow_symlinks=False):
                    if kind == PRACTICE or not is_date_folder(item.name):
                        continue
                    if as_of is not None and item.name != as_of:
                        continue
                    found.extend(self._client_packets(practice_id, item.name, client_id))
                elif item.is_file(follow_symlinks=False) and kind != CLIENT and client_id is None:
                    match = MONTH_FILE.fullmatch(item.name)
                    if match is None:
                        continue
                    if as_of is not None and not as_of.startswith(match.group(1)):
                        continue
                    entry = _entry(Path(item.path), PRACTICE, practice_id, None, match.group(1))
                    if entry is not None:
                        found.append(entry)
        found.sort(key=lambda e: (e.kind != PRACTICE, e.client_id or ""))
        found.sort(key=lambda e: e.practice_id)
        found.sort(key=lambda e: e.period, reverse=True)
        return found

    def _client_packets(
        self, practice_id: str, as_of: str, client_id: str | None
    ) -> Iterator[PacketEntry]:
        folder = self._practice_dir(practice_id) / as_of
        if client_id is not None:
            entry = self.client_packet(practice_id, as_of, client_id)
            if entry is not None:
                yield entry
            return
        in_force = _in_force(self.packets_dir, practice_id, as_of)
        for item in _scandir(folder):
            if not (item.is_file(follow_symlinks=False) and item.name.endswith(".zip")):
                continue
            client = _decoded(item.name[: -len(".zip")])
            if client is None:
                continue
            entry = _entry(Path(item.path), CLIENT, practice_id, client, as_of, in_force)
            if entry is not None:
                yield entry

    def client_packet(self, practice_id: str, as_of: str, client_id: str) -> PacketEntry | None:
        """The client's packet of that as-of date, or None when there is none."""
        path = client_packet_path(self.packets_dir, practice_id, as_of, client_id)
        in_force = _in_force(self.packets_dir, practice_id, as_of)
        return self._existing(path, CLIENT, practice_id, client_id, as_of, in_force)

    def practice_packet(self, practice_id: str, month: str) -> PacketEntry | None:
        """The practice's packet of that month (YYYY-MM), or None when there is none."""
        path = practice_packet_path(self.packets_dir, practice_id, f"{month}-01")
        return self._existing(path, PRACTICE, practice_id, None, month)

    def _existing(
        self,
        path: Path,
        kind: str,
        practice_id: str,
        client_id: str | None,
        period: str,
        in_force: Mapping[str, Any] | None = None,
    ) -> PacketEntry | None:
        # The path is built from validated, encoded ids; a symlink planted in the folder
        # could still point elsewhere, so only regular files inside the folder count.
        if path.is_symlink() or not path.is_file():
            return None
        if not path.resolve().is_relative_to(self.packets_dir.resolve()):
            return None
        return _entry(path, kind, practice_id, client_id, period, in_force)

    def _practice_dir(self, practice_id: str) -> Path:
        return self.packets_dir / id_name(practice_id, "practice id", PacketError)


def place_of(entry: PacketEntry) -> PacketPlace:
    """What the page and the download claim a packet is: where it was found."""
    return PacketPlace(
        kind=entry.kind,
        practice_id=entry.practice_id,
        client_id=entry.client_id,
        as_of=entry.as_of,
        month=entry.month,
    )


def verdict(entry: PacketEntry, key: bytes) -> Verdict:
    """Check a packet against its manifest and its place, as ``metaudit verify`` does
    (the same function); cached while the file is unchanged, so a listing reads a packet
    once per change, in chunks."""
    return _verdict(
        str(entry.path), entry.size, entry.mtime_ns, _index_stamp(entry), key, place_of(entry)
    )


def _index_stamp(entry: PacketEntry) -> int:
    """The mtime of the index a client packet's verdict also depends on (0 without one)."""
    if entry.kind != CLIENT or entry.as_of is None:
        return 0
    packets_dir = entry.path.parent.parent.parent
    try:
        return in_force_path(packets_dir, entry.practice_id, entry.as_of).stat().st_mtime_ns
    except (OSError, PacketError):
        return 0


def served_verdict(entry: PacketEntry, data: bytes, sha256: str, key: bytes) -> Verdict:
    """The verdict of the very bytes a download serves (a file swapped after the listing
    is judged as it is sent), cached by their SHA-256."""
    place = place_of(entry)
    cached = _served.get((sha256, key, place))
    if cached is None:
        cached = _checked(entry.path, key, place, data)
        if len(_served) >= 4096:
            _served.clear()
        _served[sha256, key, place] = cached
    return cached


_served: dict[tuple[str, bytes, PacketPlace], Verdict] = {}


@lru_cache(maxsize=4096)
def _verdict(
    path: str, size: int, mtime_ns: int, index_ns: int, key: bytes, place: PacketPlace
) -> Verdict:
    # size, mtime_ns and the index's mtime are part of the cache key: a rebuilt or altered
    # file, or a rewritten index of its date, is checked again.
    return _checked(Path(path), key, place, None)


def _checked(path: Path, key: bytes, place: PacketPlace, data: bytes | None) -> Verdict:
    from metaudit.packets.verify import verify_packet

    try:
        result = verify_packet(path, key, place=place, data=data)
    except PacketError as exc:
        return Verdict(False, str(exc))
    if result.intact:
        demo = " (demo key: proves nothing)" if result.demo_key else ""
        since = ""
        if result.in_force_on:
            since = (
                f"; built as of {result.manifest.get('as_of')}, in force on {result.in_force_on}"
            )
        # Which signatures held: the auditor's Ed25519 one only when a signing key built it.
        signed = (
            f"HMAC and Ed25519 (key {result.ed25519_key_id}) signatures valid"
            if result.ed25519_key_id
            else "HMAC signature valid, no Ed25519 signature"
        )
        return Verdict(True, f"verified: {result.files_checked} files, {signed}{demo}{since}")
    shown = "; ".join(result.problems[:3])
    more = f" (+{len(result.problems) - 3} more)" if len(result.problems) > 3 else ""
    return Verdict(False, f"does not verify: {shown}{more}")
