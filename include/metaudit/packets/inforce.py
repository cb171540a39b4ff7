"""Which client packet is in force on an as-of date: the signed per-date index.

A client whose evidence did not change keeps the packet built on an earlier
date. Its file still sits at ``<practice>/<as_of>/<client>.zip`` for every
later date (a hard link to the same file, or a copy where the file system has
none), and the nightly run signs, per practice and date, the list of packets
in force that day:

    <packets_dir>/<practice_id>/in-force/<as_of>.json

    {"format": "metaudit-in-force/2", "kind": "in-force", "practice_id": ...,
     "as_of": ..., "key_id": ..., "demo_key": ...,
     "base": {"as_of": D0, "signature": the base's signature},
     "packets": {"<client_id>": {"built_as_of": D0, "records_unchanged_since": D,
                                 "evidence": digest, "records": digest,
                                 "manifest_signature": ..., "sha256": ..., "size": ...,
                                 "summary": {...}}},
     "dropped": [client ids of the base no longer in force],
     "source": {"partition": digest, "view_rows": {table: rows}, "reference": digest},
     "signature": HMAC-SHA256 (as a manifest's)}

``source`` (when the night judged every listed client from one partition) names the
practice's records the entries' ``records`` digests were taken from: the SHA-256 of
the partition files and the as-of view's row counts. A later night whose partition and
view are those takes the digests from here rather than hashing every record again
(:class:`metaudit.packets.evidence.RecordHashes`).

A date's list is its base's, less ``dropped``, with ``packets`` over it. The base
is a full list signed once and never rewritten, kept beside the indexes:

    <packets_dir>/<practice_id>/in-force/bases/<as_of>-<signature[:16]>.json

so an unchanged night writes the few entries that changed, not some 600 bytes
for every client of the practice (a new base is made when the changes pass a
quarter of the list). An index of format 1 (no base: ``packets`` is the whole
list) is read as before.

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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from metaudit.packets.errors import PacketError
from metaudit.packets.signing import key_id, signature
from metaudit.paths import fsync_dir, id_name, write_atomic

log = logging.getLogger(__name__)

IN_FORCE_FORMAT = "metaudit-in-force/2"
IN_FORCE_KIND = "in-force"
IN_FORCE_DIR = "in-force"
BASE_FORMAT = "metaudit-in-force-base/1"
BASE_KIND = "in-force-base"
BASES_DIR = "bases"
# A date's changes against its base past this share of the list: a new base is made.
REBASE_SHARE = 0.25
# Far above a practice's clients (an entry is about 600 bytes).
MAX_INDEX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InForce:
    """One date's signed index: client id -> the entry of its packet in force."""

    practice_id: str
    as_of: str
    packets: Mapping[str, Mapping[str, Any]]
    # The records the entries' digests were taken from (the index's ``source``), or None.
    source: Mapping[str, Any] | None = None


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


def bases_dir(packets_dir: Path, practice_id: str) -> Path:
    """``<packets_dir>/<practice_id>/in-force/bases``."""
    return in_force_dir(packets_dir, practice_id) / BASES_DIR


def base_path(packets_dir: Path, practice_id: str, as_of: str, signature_hex: str) -> Path:
    """The file of the base made as of ``as_of`` whose signature is ``signature_hex``."""
    day = date.fromisoformat(as_of).isoformat()
    tag = signature_hex[:16].lower()
    if len(tag) != 16 or any(c not in "0123456789abcdef" for c in tag):
        raise PacketError(f"not a base signature: {signature_hex[:20]!r}")
    return bases_dir(packets_dir, practice_id) / f"{day}-{tag}.json"


def _base_ref(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(as_of, signature) of an index's base, or None for a whole list (format 1)."""
    base = data.get("base")
    if not isinstance(base, dict):
        return None
    day, sig = base.get("as_of"), base.get("signature")
    if not isinstance(day, str) or not isinstance(sig, str):
        raise ValueError("its base is not named by date and signature")
    return day, sig


def write_in_force(
    packets_dir: Path,
    practice_id: str,
    as_of: str,
    packets: Mapping[str, Mapping[str, Any]],
    *,
    key: bytes,
    demo_key: bool = False,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Sign and write the date's index (atomically), once the date's packet files it
    names are on disk (their folder fsynced: links made without a sync of their own).
    ``source``: the records every entry's ``records`` digest was taken from (the module's
    docstring), only when that holds for every entry.

    Against the base of the latest earlier date when tonight changes little of it, else
    against a new base (written first, never rewritten: a rerun of an earlier date leaves
    the later dates' bases as they were)."""
    tonight = {client: dict(packets[client]) for client in sorted(packets)}
    signed_by = key_id(key)
    base = _usable_base(packets_dir, practice_id, as_of, key)
    changed: dict[str, dict[str, Any]] = {}
    dropped: list[str] = []
    if base is not None:
        base_day, base_sig, listed = base
        changed = {c: e for c, e in tonight.items() if listed.get(c) != e}
        dropped = sorted(set(listed) - set(tonight))
        if len(changed) + len(dropped) > max(8, REBASE_SHARE * len(tonight)):
            base = None
    if base is None:
        made: dict[str, Any] = {
            "format": BASE_FORMAT,
            "kind": BASE_KIND,
            "practice_id": practice_id,
            "as_of": as_of,
            "key_id": signed_by,
            "demo_key": demo_key,
            "packets": tonight,
        }
        made["signature"] = signature(made, key)
        path = base_path(packets_dir, practice_id, as_of, made["signature"])
        if not path.exists():
            write_atomic(path, _text(made))
        base_day, base_sig, changed, dropped = as_of, made["signature"], {}, []
    index: dict[str, Any] = {
        "format": IN_FORCE_FORMAT,
        "kind": IN_FORCE_KIND,
        "practice_id": practice_id,
        "as_of": as_of,
        "key_id": signed_by,
        "demo_key": demo_key,
        "base": {"as_of": base_day, "signature": base_sig},
        "packets": changed,
        "dropped": dropped,
    }
    if source is not None:
        index["source"] = dict(source)
    index["signature"] = signature(index, key)
    path = in_force_path(packets_dir, practice_id, as_of)
    fsync_dir(path.parent.parent / path.stem)
    write_atomic(path, _text(index))
    return path


def _text(document: Mapping[str, Any]) -> str:
    return (
        json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    )


def _usable_base(
    packets_dir: Path, practice_id: str, as_of: str, key: bytes
) -> tuple[str, str, Mapping[str, Mapping[str, Any]]] | None:
    """The base of the latest earlier date's index, when it verifies under ``key``."""
    earlier = [day for day in index_dates(packets_dir, practice_id) if day < as_of]
    if not earlier:
        return None
    data = read_raw(in_force_path(packets_dir, practice_id, earlier[-1]))
    try:
        ref = _base_ref(data) if data is not None else None
    except ValueError:
        return None
    if ref is None:
        return None
    listed, problem = _read_base(packets_dir, practice_id, ref[0], ref[1], key)
    return None if listed is None or problem else (ref[0], ref[1], listed)


def read_raw(path: Path) -> dict[str, Any] | None:
    """An index as stored, unverified (for listing only), or None when missing or unreadable."""
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def listed_raw(packets_dir: Path, practice_id: str, as_of: str) -> dict[str, Any]:
    """The date's list of packets in force as stored (its base's with its changes),
    unverified: for listing only (the packets page verifies what it serves)."""
    data = read_raw(in_force_path(packets_dir, practice_id, as_of))
    if data is None:
        return {}
    packets = data.get("packets")
    changes = {str(k): v for k, v in packets.items()} if isinstance(packets, dict) else {}
    try:
        ref = _base_ref(data)
        if ref is None:
            return changes
        base = read_raw(base_path(packets_dir, practice_id, ref[0], ref[1])) or {}
    except (ValueError, PacketError):
        return {}
    listed = base.get("packets")
    dropped = data.get("dropped")
    return _applied(
        {str(k): v for k, v in listed.items()} if isinstance(listed, dict) else {},
        {str(c) for c in dropped} if isinstance(dropped, list) else set(),
        changes,
    )


def _applied(
    base: Mapping[str, Any], dropped: Collection[str], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """A date's list: its base's, less the clients it drops, with its changed entries over it."""
    whole = {client: entry for client, entry in base.items() if client not in dropped}
    whole.update(changes)
    return whole


def _version(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def read_in_force(
    packets_dir: Path, practice_id: str, as_of: str, key: bytes
) -> tuple[InForce | None, str | None]:
    """The date's list of packets in force when its index (and the index's base) are
    signed under ``key`` for this practice and date, else None and why (None and None
    when there is no index)."""
    path = in_force_path(packets_dir, practice_id, as_of)
    # Verified once per version of the files: a listing checks many packets of one date.
    version = _version(path)
    if version is None:
        return None, None
    signed, problem = _read_verified(str(path), version, practice_id, as_of, key)
    if signed is None:
        return None, problem
    if signed.base is None:  # format 1: the whole list
        return InForce(practice_id, as_of, signed.packets, signed.source), None
    day, sig = signed.base
    try:
        where = base_path(packets_dir, practice_id, day, sig)
    except (PacketError, ValueError) as exc:
        return None, f"{path.name}: {exc}"
    base_version = _version(where)
    if base_version is None:
        return None, f"{path.name}: its base of {day} ({where.name}) is missing"
    return _merged(str(path), version, str(where), base_version, practice_id, as_of, key)


@dataclass(frozen=True)
class _Signed:
    """An index whose own signature held: its entries, its base and what it drops."""

    packets: Mapping[str, Mapping[str, Any]]
    base: tuple[str, str] | None
    dropped: tuple[str, ...]
    source: Mapping[str, Any] | None = None


@lru_cache(maxsize=256)
def _read_verified(
    name: str, version: tuple[int, int, int], practice_id: str, as_of: str, key: bytes
) -> tuple[_Signed | None, str | None]:
    path = Path(name)
    data, problem = _signed_document(path, key, IN_FORCE_KIND, practice_id, as_of)
    if data is None:
        return None, problem
    try:
        base = _base_ref(data)
    except ValueError as exc:
        return None, f"{path.name}: {exc}"
    dropped = data.get("dropped", [])
    if base is not None and not (
        isinstance(dropped, list) and all(isinstance(c, str) for c in dropped)
    ):
        return None, f"{path.name}: its list of dropped clients is not a list of ids"
    packets = data["packets"]
    source = data.get("source")
    return (
        _Signed(
            packets,
            base,
            tuple(dropped) if base is not None else (),
            source if isinstance(source, dict) else None,
        ),
        None,
    )


def _signed_document(
    path: Path, key: bytes, kind: str, practice_id: str, as_of: str
) -> tuple[dict[str, Any] | None, str | None]:
    """An index or a base whose signature holds under ``key``, for this practice and date,
    its ``packets`` a mapping of entries; else None and why."""
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
        data.get("kind") != kind
        or data.get("practice_id") != practice_id
        or data.get("as_of") != as_of
    ):
        return None, f"{path.name}: signed for another practice or date"
    packets = data.get("packets")
    if not isinstance(packets, dict):
        return None, f"{path.name}: has no packet list"
    data["packets"] = {str(k): v for k, v in packets.items() if isinstance(v, dict)}
    return data, None


@lru_cache(maxsize=256)
def _read_base_file(
    name: str, version: tuple[int, int, int], practice_id: str, as_of: str, sig: str, key: bytes
) -> tuple[Mapping[str, Mapping[str, Any]] | None, str | None]:
    path = Path(name)
    data, problem = _signed_document(path, key, BASE_KIND, practice_id, as_of)
    if data is None:
        return None, problem
    if not hmac.compare_digest(str(data["signature"]).lower(), sig.lower()):
        return None, f"{path.name}: not the base the index names (another signature)"
    packets: Mapping[str, Mapping[str, Any]] = data["packets"]
    return packets, None


def _read_base(
    packets_dir: Path, practice_id: str, as_of: str, sig: str, key: bytes
) -> tuple[Mapping[str, Mapping[str, Any]] | None, str | None]:
    try:
        where = base_path(packets_dir, practice_id, as_of, sig)
    except (PacketError, ValueError) as exc:
        return None, str(exc)
    version = _version(where)
    if version is None:
        return None, f"{where.name} is missing"
    return _read_base_file(str(where), version, practice_id, as_of, sig, key)


@lru_cache(maxsize=256)
def _merged(
    name: str,
    version: tuple[int, int, int],
    base_name: str,
    base_version: tuple[int, int, int],
    practice_id: str,
    as_of: str,
    key: bytes,
) -> tuple[InForce | None, str | None]:
    signed, problem = _read_verified(name, version, practice_id, as_of, key)
    if signed is None or signed.base is None:
        return None, problem or f"{Path(name).name}: has no base"
    day, sig = signed.base
    listed, problem = _read_base_file(base_name, base_version, practice_id, day, sig, key)
    if listed is None:
        return None, f"{Path(name).name}: its base of {day}: {problem}"
    whole = _applied(listed, set(signed.dropped), signed.packets)
    return InForce(practice_id, as_of, whole, signed.source), None


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
