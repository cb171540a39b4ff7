"""Which client packet is in force on an as-of date: the signed per-date index.

A client whose evidence did not change keeps the packet built on an earlier
date. Its file still sits at ``<practice>/<as_of>/<client>.zip`` for every
later date (a hard link to the same file, or a copy where the file system has
none), and the nightly run signs, per practice and date, the list of packets
in force that day:

    <packets_dir>/<practice_id>/in-force/<as_of>.json

    {"format": "metaudit-in-force/1", "kind": "in-force", "practice_id": ...,
     "as_of": ..., "key_id": ..., "demo_key": ...,
     "packets": {"<client_id>": {"built_as_of": D0, "records_unchanged_since": D,
                                 "evidence": digest, "records": digest,
                                 "manifest_signature": ..., "sha256": ..., "size": ...,
                                 "summary": {...}}},
     "signature": HMAC-SHA256 (as a manifest's)}

``metaudit verify`` and the packets page accept a packet built as of D0 at a
later date D when that date's index, signed under the deployment's key, names
the packet (its manifest's signature) for the client: a packet copied by hand
to another date proves nothing there. The index is also what the next night
compares tonight's evidence with, so deciding "unchanged" reads no old packet.

Kept apart from the builders: the packets page and ``verify`` import no pandas.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from metaudit.packets.errors import PacketError
from metaudit.packets.signing import key_id, signature
from metaudit.paths import fsync_dir, id_name, write_atomic

log = logging.getLogger(__name__)

IN_FORCE_FORMAT = "metaudit-in-force/1"
IN_FORCE_KIND = "in-force"
IN_FORCE_DIR = "in-force"
# Far above a practice's clients (an entry is about 600 bytes).
MAX_INDEX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InForce:
    """One date's signed index: client id -> the entry of its packet in force."""

    practice_id: str
    as_of: str
    packets: Mapping[str, Mapping[str, Any]]


def in_force_dir(packets_dir: Path, practice_id: str) -> Path:
    """``<packets_dir>/<practice_id>/in-force``."""
    return Path(packets_dir) / id_name(practice_id, "practice id", PacketError) / IN_FORCE_DIR


def in_force_path(packets_dir: Path, practice_id: str, as_of: str) -> Path:
    """``<packets_dir>/<practice_id>/in-force/<as_of>.json``."""
    return in_force_dir(packets_dir, practice_id) / f"{date.fromisoformat(as_of).isoformat()}.json"


def index_dates(packets_dir: Path, practice_id: str) -> list[str]:
    """The as-of dates with an index, oldest first."""
    found = []
    folder = in_force_dir(packets_dir, practice_id)
    try:
        names = [p.name for p in folder.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            found.append(date.fromisoformat(name[: -len(".json")]).isoformat())
        except ValueError:
            continue
    return sorted(found)


def write_in_force(
    packets_dir: Path,
    practice_id: str,
    as_of: str,
    packets: Mapping[str, Mapping[str, Any]],
    *,
    key: bytes,
    demo_key: bool = False,
) -> Path:
    """Sign and write the date's index (atomically), once the date's packet files it
    names are on disk (their folder fsynced: links made without a sync of their own)."""
    index: dict[str, Any] = {
        "format": IN_FORCE_FORMAT,
        "kind": IN_FORCE_KIND,
        "practice_id": practice_id,
        "as_of": as_of,
        "key_id": key_id(key),
        "demo_key": demo_key,
        "packets": {client: dict(packets[client]) for client in sorted(packets)},
    }
    index["signature"] = signature(index, key)
    path = in_force_path(packets_dir, practice_id, as_of)
    fsync_dir(path.parent.parent / path.stem)
    text = json.dumps(index, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)
    write_atomic(path, text + "\n")
    return path


def read_raw(path: Path) -> dict[str, Any] | None:
    """An index as stored, unverified (for listing only), or None when missing or unreadable."""
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_in_force(
    packets_dir: Path, practice_id: str, as_of: str, key: bytes
) -> tuple[InForce | None, str | None]:
    """The date's index when it is signed under ``key`` for this practice and date, else
    None and why (None and None when there is no index)."""
    path = in_force_path(packets_dir, practice_id, as_of)
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    # Verified once per version of the file: a listing checks many packets of one date.
    version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return _read_verified(str(path), version, practice_id, as_of, key)


@lru_cache(maxsize=256)
def _read_verified(
    name: str, version: tuple[int, int, int], practice_id: str, as_of: str, key: bytes
) -> tuple[InForce | None, str | None]:
    path = Path(name)
    data = read_raw(path)
    if data is None:
        return None, f"{path.name}: unreadable"
    stored = data.get("signature")
    try:
        expected = signature(data, key)
    except (TypeError, ValueError):
        return None, f"{path.name}: cannot be canonicalised"
    if not isinstance(stored, str) or not hmac.compare_digest(stored.lower(), expected):
        return None, f"{path.name}: signature does not match (altered, or signed with another key)"
    if (
        data.get("kind") != IN_FORCE_KIND
        or data.get("practice_id") != practice_id
        or data.get("as_of") != as_of
    ):
        return None, f"{path.name}: signed for another practice or date"
    packets = data.get("packets")
    if not isinstance(packets, dict):
        return None, f"{path.name}: has no packet list"
    entries = {str(k): v for k, v in packets.items() if isinstance(v, dict)}
    return InForce(practice_id=practice_id, as_of=as_of, packets=entries), None


def in_force_entry(
    packets_dir: Path, practice_id: str, as_of: str, client_id: str, key: bytes
) -> tuple[Mapping[str, Any] | None, str | None]:
    """The client's entry in the date's signed index, or None and why."""
    index, problem = read_in_force(packets_dir, practice_id, as_of, key)
    if index is None:
        return None, problem or f"no index of the packets in force on {as_of}"
    entry = index.packets.get(client_id)
    if entry is None:
        return None, f"the index of {as_of} lists no packet of client {client_id}"
    return entry, None


def link_into_place(source: Path, target: Path, *, sync: bool = True) -> str:
    """Make ``target`` the same file as ``source``: a hard link (no bytes written), or a
    copy where the file system has no hard links (another device, a FAT or SMB share).
    Atomic: a reader of ``target`` sees the old file or the new one. Returns "linked",
    "copied" or "same" (already the same file). ``sync=False`` leaves the folder's fsync
    to the caller (one for a night's links: :func:`write_in_force` makes them durable
    before the index that names them)."""
    import os
    import tempfile

    if target.exists() and Path(source).samefile(target):
        return "same"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".link", dir=target.parent)
    os.close(fd)
    Path(tmp).unlink()
    try:
        os.link(source, tmp)
    except OSError as exc:
        log.info("no hard link for %s (%s): copying it", target, exc)
        write_atomic(target, source.read_bytes())
        return "copied"
    try:
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync:
        fsync_dir(target.parent)
    return "linked"
