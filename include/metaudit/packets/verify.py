"""Check an audit packet against its signed manifest (``metaudit verify``).

A packet is intact when its manifest's signature matches under the
deployment's key and the zip holds exactly the files the manifest lists, each
with the listed size and SHA-256. Every problem is collected, so one run names
every file missing, added or altered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaudit.packets.errors import PacketError
from metaudit.packets.signing import MANIFEST_NAME, key_id, signature, verification_key


@dataclass
class Verification:
    """The outcome of checking one packet: ``problems`` empty means intact."""

    packet: str
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    files_checked: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line for an intact packet: what it is and that it checks out."""
        manifest = self.manifest
        who = f"client {manifest.get('client_id')}" if manifest.get("client_id") else "practice"
        if manifest.get("period"):
            who += f" packet for {manifest['period']}"
        demo = " (demo key: proves nothing)" if manifest.get("demo_key") else ""
        return (
            f"{self.packet}: intact; {self.files_checked} files match the manifest, "
            f"signature valid (key {manifest.get('key_id')}){demo}; {who} of practice "
            f"{manifest.get('practice_id')} as of {manifest.get('as_of')}"
        )


def verify_packet(path: Path, key: bytes | str | None = None) -> Verification:
    """Check ``path`` against its manifest with ``key`` (default ``METAUDIT_PACKET_KEY``).

    Raises PacketKeyError without a key and PacketError when the file cannot be
    opened at all; every other problem lands in ``Verification.problems``.
    """
    secret = verification_key(key)
    result = Verification(packet=str(path))
    if not path.is_file():
        raise PacketError(f"no such packet file: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        result.problems.append(f"not a readable zip archive ({exc})")
        return result
    with archive:
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
        for name, count in sorted(Counter(names).items()):
            if count > 1:
                result.problems.append(f"{name}: stored {count} times in the zip (added)")
        if MANIFEST_NAME not in names:
            result.problems.append(f"{MANIFEST_NAME}: missing")
            return result
        manifest = _read_manifest(archive, result)
        if manifest is None:
            return result
        result.manifest = manifest
        _check_signature(manifest, secret, result)
        listed = _listed_files(manifest, result)
        present = set(names) - {MANIFEST_NAME}
        for name in sorted(set(listed) - present):
            result.problems.append(f"{name}: missing")
        for name in sorted(present - set(listed)):
            result.problems.append(f"{name}: added (not in the manifest)")
        for name in sorted(present & set(listed)):
            _check_file(archive, name, listed[name], result)
    return result


def _read_manifest(archive: zipfile.ZipFile, result: Verification) -> dict[str, Any] | None:
    try:
        data = json.loads(archive.read(MANIFEST_NAME).decode("utf-8"))
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        UnicodeDecodeError,
        ValueError,
        OSError,
    ) as exc:
        result.problems.append(f"{MANIFEST_NAME}: unreadable ({exc})")
        return None
    if not isinstance(data, dict):
        result.problems.append(f"{MANIFEST_NAME}: not a JSON object")
        return None
    return data


def _check_signature(manifest: dict[str, Any], key: bytes, result: Verification) -> None:
    stored = manifest.get("signature")
    if not isinstance(stored, str):
        result.problems.append(f"{MANIFEST_NAME}: has no signature")
        return
    try:
        expected = signature(manifest, key)
    except (TypeError, ValueError) as exc:
        result.problems.append(f"{MANIFEST_NAME}: cannot be canonicalised ({exc})")
        return
    if not hmac.compare_digest(stored.lower(), expected):
        hint = ""
        if manifest.get("key_id") not in (None, key_id(key)):
            hint = f"; it names key {manifest.get('key_id')}, yours is {key_id(key)}"
        result.problems.append(
            f"{MANIFEST_NAME}: signature does not match (altered, or signed with another key{hint})"
        )


def _listed_files(manifest: dict[str, Any], result: Verification) -> dict[str, dict[str, Any]]:
    rows = manifest.get("files")
    if not isinstance(rows, list):
        result.problems.append(f"{MANIFEST_NAME}: has no file list")
        return {}
    listed: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not (
            isinstance(row, dict)
            and isinstance(row.get("path"), str)
            and isinstance(row.get("size"), int)
            and isinstance(row.get("sha256"), str)
        ):
            result.problems.append(f"{MANIFEST_NAME}: malformed file entry {row!r}")
            continue
        if row["path"] in listed or row["path"] == MANIFEST_NAME:
            result.problems.append(f"{MANIFEST_NAME}: lists {row['path']} more than once")
            continue
        listed[row["path"]] = row
    return listed


def _check_file(
    archive: zipfile.ZipFile, name: str, row: dict[str, Any], result: Verification
) -> None:
    try:
        data = archive.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        # A flipped byte in compressed data fails zip's own CRC check first.
        result.problems.append(f"{name}: altered (unreadable: {exc})")
        return
    reasons = []
    if len(data) != row["size"]:
        reasons.append(f"size {len(data)}, manifest says {row['size']}")
    if hashlib.sha256(data).hexdigest() != row["sha256"].lower():
        reasons.append("SHA-256 differs from the manifest")
    if reasons:
        result.problems.append(f"{name}: altered ({'; '.join(reasons)})")
    else:
        result.files_checked += 1
