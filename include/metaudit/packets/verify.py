"""Check an audit packet against its signed manifest (``metaudit verify``, the packets pages).

A packet is intact when

- the zip is exactly its entries: nothing before the first entry, nothing
  between entries, no zip comment, at most :data:`MAX_ENTRIES` entries, every
  name a safe relative path (no absolute, ``..``, backslash or drive names),
  no directory entries;
- its manifest (at most :data:`MAX_MANIFEST_BYTES`) is signed under the
  deployment's key, which is not the published demo key outside the demo;
- when the manifest names an Ed25519 key (``ed25519_key_id``; packets built
  before had none and are checked by the HMAC alone), ``manifest.sig`` is that
  key's signature of the manifest's bytes, ``SHA256SUMS.sig`` of ``SHA256SUMS``,
  ``SHA256SUMS`` is exactly the manifest's list and ``public_key.pem`` the key.
  With the HMAC key the packet's own public key is used (the HMAC vouches for
  it); without it (``public_keys``: an auditor's, or the deployment's current and
  earlier keys) the HMAC is skipped and the key is picked by its id among the
  given ones, so nothing in the packet is trusted but what that key signed;
- the manifest says the packet is the one its place claims (kind, practice,
  client, as-of date or month), when a place is given;
- the zip holds exactly the files the manifest lists, each with the listed
  size and SHA-256.

Nothing is decompressed before the signature is checked, each entry's declared
size is compared with the manifest before it is read, and contents are hashed
in chunks: a zip bomb costs neither memory nor time. Every problem found is
collected, so one run names every file missing, added or altered (a bad
signature stops the check: an unsigned list proves nothing about the files).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from metaudit.packets.errors import PacketError
from metaudit.packets.keypair import SIGNATURE_SIZE, PublicKey, describe_ids, load_public_keys
from metaudit.packets.signing import (
    DEMO_PACKET_KEY,
    DETACHED_SIGNATURES,
    ED25519_KEY_ID,
    MANIFEST_NAME,
    MANIFEST_SIGNATURE_NAME,
    PUBLIC_KEY_NAME,
    SUMS_NAME,
    SUMS_SIGNATURE_NAME,
    key_id,
    sha256sums,
    signature,
    verification_key,
)
from metaudit.paths import id_of_name

CLIENT = "client"
PRACTICE = "practice"
# Far above what a packet holds (a few hundred files, a manifest of a few hundred KB).
MAX_ENTRIES = 10_000
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# A PEM Ed25519 public key is 113 bytes.
MAX_PUBLIC_KEY_BYTES = 4096
_CHUNK = 64 * 1024
MONTH_FILE = re.compile(r"practice-(\d{4}-\d{2})\.zip")
_DATE_DIR = re.compile(r"\d{4}-\d{2}-\d{2}")
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_END_SIGNATURE = b"PK\x05\x06"
_END_SIZE = 22
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"


@dataclass(frozen=True)
class PacketPlace:
    """What a packet is claimed to be, by where it sits or how it is asked for."""

    kind: str  # CLIENT or PRACTICE
    practice_id: str
    client_id: str | None = None  # client packets
    as_of: str | None = None  # client packets: YYYY-MM-DD
    month: str | None = None  # practice packets: YYYY-MM

    def describe(self) -> str:
        if self.kind == CLIENT:
            return f"client {self.client_id}'s packet of practice {self.practice_id} as of {self.as_of}"
        return f"practice {self.practice_id}'s packet for {self.month}"


def place_of_path(path: Path) -> PacketPlace | None:
    """The place a path claims under the packets layout (``<practice>/<as_of>/<client>.zip``
    or ``<practice>/practice-<YYYY-MM>.zip``), or None when it is not laid out so."""
    if path.suffix != ".zip":
        return None
    if is_date_folder(path.parent.name):
        # A client packet's folder is its as-of date (checked first: a client id may
        # itself look like "practice-2026-03").
        client_id = id_of_name(path.name[: -len(".zip")])
        practice_id = id_of_name(path.parent.parent.name)
        if client_id is None or practice_id is None:
            return None
        return PacketPlace(CLIENT, practice_id, client_id=client_id, as_of=path.parent.name)
    month = MONTH_FILE.fullmatch(path.name)
    practice_id = id_of_name(path.parent.name)
    if month is None or practice_id is None:
        return None
    return PacketPlace(PRACTICE, practice_id, month=month.group(1))


def is_date_folder(name: str) -> bool:
    """Whether a folder name is an as-of date folder of the packets layout (YYYY-MM-DD)."""
    if not _DATE_DIR.fullmatch(name):
        return False
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


@dataclass
class Verification:
    """The outcome of checking one packet: ``problems`` empty means intact."""

    packet: str
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    files_checked: int = 0
    demo_key: bool = False  # signed with the published demo key (proves nothing)
    # The Ed25519 key whose signature was checked (its id), or None (HMAC only).
    ed25519_key_id: str | None = None
    # Checked without the HMAC key, by the public key alone.
    hmac_checked: bool = True
    # A client packet built on an earlier date and in force on this later one (the
    # date's signed index says so): the later as-of date.
    in_force_on: str | None = None

    @property
    def intact(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line for an intact packet: what it is and that it checks out."""
        manifest = self.manifest
        who = f"client {manifest.get('client_id')}" if manifest.get("client_id") else "practice"
        if manifest.get("period"):
            who += f" packet for {manifest['period']}"
        request = manifest.get("request")
        if isinstance(request, dict):
            who += f", records request {request.get('id')}"
        demo = " (demo key: proves nothing)" if self.demo_key else ""
        signatures = []
        if self.hmac_checked:
            signatures.append(f"HMAC signature valid (key {manifest.get('key_id')})")
        if self.ed25519_key_id:
            signatures.append(f"Ed25519 signature valid (key {self.ed25519_key_id})")
        if not self.hmac_checked:
            signatures.append("HMAC not checked (no secret)")
        line = (
            f"{self.packet}: intact; {self.files_checked} files match the manifest, "
            f"{', '.join(signatures)}{demo}; {who} of practice "
            f"{manifest.get('practice_id')} as of {manifest.get('as_of')}"
        )
        if self.in_force_on:
            since = (manifest.get("evidence") or {}).get("records_unchanged_since")
            line += f", in force on {self.in_force_on} (the index of that date lists it"
            line += f"; records unchanged since {since})" if since else ")"
        return line


def verify_packet(
    path: Path,
    key: bytes | str | None = None,
    *,
    place: PacketPlace | None = None,
    demo: bool | None = None,
    data: bytes | None = None,
    public_keys: Sequence[PublicKey] | None = None,
) -> Verification:
    """Check ``path`` against its manifest with ``key`` (default ``METAUDIT_PACKET_KEY``),
    or, when ``public_keys`` are given, without any secret: by the Ed25519 signature of
    the key among them that the manifest names (the HMAC is then not checked).

    ``place`` is what the packet is claimed to be (default: what its path says under
    the packets layout, if it is laid out so); the manifest must say the same.
    ``demo`` (default: METAUDIT_DEMO=1) is whether a demo signature may count.
    ``data``, when given, is the packet's bytes as read from ``path`` (a download
    checks exactly the bytes it serves).

    Raises PacketKeyError without a key (or public keys) and PacketError when the file
    cannot be opened at all; every other problem lands in ``Verification.problems``.
    """
    secret = verification_key(key) if public_keys is None else None
    if demo is None:
        from metaudit.config import demo_mode

        demo = demo_mode()
    result = Verification(packet=str(path), hmac_checked=secret is not None)
    if data is None and not path.is_file():
        raise PacketError(f"no such packet file: {path}")
    laid_out = place_of_path(path)
    if place is None:
        place = laid_out
    raw: IO[bytes] = io.BytesIO(data) if data is not None else path.open("rb")
    try:
        archive = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raw.close()
        result.problems.append(f"not a readable zip archive ({exc})")
        return result
    with archive, raw:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            result.problems.append(
                f"the zip has {len(entries)} entries; a packet has at most {MAX_ENTRIES}"
            )
            return result
        _check_layout(archive, entries, raw, result)
        names = [info.filename for info in entries]
        for name in names:
            reason = _unsafe(name)
            if reason:
                result.problems.append(f"{name!r}: not a safe name in a packet ({reason})")
        for name, count in sorted(Counter(names).items()):
            if count > 1:
                result.problems.append(f"{name}: stored {count} times in the zip (added)")
        if MANIFEST_NAME not in names:
            result.problems.append(f"{MANIFEST_NAME}: missing")
            return result
        read = _read_manifest(archive, result)
        if read is None:
            return result
        manifest, manifest_raw = read
        result.manifest = manifest
        if secret is not None:
            if not _check_signature(manifest, secret, result):
                # Nothing unsigned is trusted, not even the sizes: no member is read.
                return result
            _check_ed25519(archive, names, manifest, manifest_raw, None, result)
        elif not _check_ed25519(archive, names, manifest, manifest_raw, public_keys or (), result):
            return result
        _check_demo(manifest, secret, demo, result)
        # The packets folder, when the packet sits at the place it is taken for: where
        # the index of the packets in force of that date is.
        packets_dir = path.parent.parent.parent if place is not None and place == laid_out else None
        _check_place(manifest, place, result, secret, packets_dir)
        listed = _listed_files(manifest, result)
        unlisted = {MANIFEST_NAME}
        if manifest.get(ED25519_KEY_ID) is not None:
            unlisted.update(DETACHED_SIGNATURES)
        present = {info.filename: info for info in entries if info.filename not in unlisted}
        for name in sorted(set(listed) - set(present)):
            result.problems.append(f"{name}: missing")
        for name in sorted(set(present) - set(listed)):
            result.problems.append(f"{name}: added (not in the manifest)")
        for name in sorted(set(present) & set(listed)):
            _check_file(archive, present[name], listed[name], result)
    return result


def _unsafe(name: str) -> str | None:
    """Why an entry name is not one a packet may hold, or None."""
    if name.endswith("/"):
        return "a directory entry"
    if "\\" in name:
        return "a backslash"
    if name.startswith("/"):
        return "an absolute path"
    if re.match(r"[A-Za-z]:", name):
        return "a drive name"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "a control character"
    if any(part in {"", ".", ".."} for part in name.split("/")):
        return "an empty, '.' or '..' part"
    return None


def _check_layout(
    archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], raw: IO[bytes], result: Verification
) -> None:
    """The file is its entries, back to back from byte 0, then the central directory and
    an end record without comment: no bytes a reader could see that no hash covers."""
    if archive.comment:
        result.problems.append(f"the zip has a comment ({len(archive.comment)} bytes, added)")
    size = raw.seek(0, os.SEEK_END)
    comment = len(archive.comment)
    raw.seek(max(0, size - _END_SIZE - comment))
    end = raw.read(_END_SIZE)
    if not (end.startswith(_END_SIGNATURE) and int.from_bytes(end[-2:], "little") == comment):
        result.problems.append("the zip does not end with its end record (data appended)")
    at = 0
    for info in sorted(entries, key=lambda i: i.header_offset):
        if info.header_offset != at:
            where = "before the first entry" if at == 0 else f"before {info.filename}"
            gap = info.header_offset - at
            result.problems.append(f"{abs(gap)} bytes {where} that no entry holds (added)")
            return
        raw.seek(at)
        header = raw.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or not header.startswith(_LOCAL_SIGNATURE):
            result.problems.append(f"{info.filename}: no local header where the zip says")
            return
        fields = _LOCAL_HEADER.unpack(header)
        name_length, extra_length = fields[-2], fields[-1]
        at += _LOCAL_HEADER.size + name_length + extra_length + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows the data
            raw.seek(at)
            descriptor = raw.read(4)
            at += 16 if descriptor == _DESCRIPTOR_SIGNATURE else 12
            if info.file_size >= 0xFFFFFFFF or info.compress_size >= 0xFFFFFFFF:
                at += 8
    start_dir = getattr(archive, "start_dir", at)
    if start_dir != at:
        result.problems.append(
            f"{abs(start_dir - at)} bytes between the last entry and the zip's directory (added)"
        )


def _read_manifest(
    archive: zipfile.ZipFile, result: Verification
) -> tuple[dict[str, Any], bytes] | None:
    """The manifest and its bytes as stored (what the Ed25519 signature signs)."""
    info = archive.getinfo(MANIFEST_NAME)
    if info.file_size > MAX_MANIFEST_BYTES:
        result.problems.append(
            f"{MANIFEST_NAME}: {info.file_size} bytes; a manifest has at most "
            f"{MAX_MANIFEST_BYTES} (not read)"
        )
        return None
    try:
        with archive.open(info) as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ValueError(f"longer than {MAX_MANIFEST_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"))
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        UnicodeDecodeError,
        ValueError,
        OSError,
        NotImplementedError,
        RuntimeError,  # an encrypted entry, a recursion too deep for json
    ) as exc:
        result.problems.append(f"{MANIFEST_NAME}: unreadable ({exc})")
        return None
    if not isinstance(data, dict):
        result.problems.append(f"{MANIFEST_NAME}: not a JSON object")
        return None
    return data, raw


def _check_signature(manifest: dict[str, Any], key: bytes, result: Verification) -> bool:
    stored = manifest.get("signature")
    if not isinstance(stored, str):
        result.problems.append(f"{MANIFEST_NAME}: has no signature")
        return False
    try:
        expected = signature(manifest, key)
    except (TypeError, ValueError) as exc:
        result.problems.append(f"{MANIFEST_NAME}: cannot be canonicalised ({exc})")
        return False
    if not hmac.compare_digest(stored.lower(), expected):
        hint = ""
        if manifest.get("key_id") not in (None, key_id(key)):
            hint = f"; it names key {manifest.get('key_id')}, yours is {key_id(key)}"
        result.problems.append(
            f"{MANIFEST_NAME}: signature does not match (altered, or signed with another key{hint})"
        )
        return False
    return True


def _check_demo(
    manifest: dict[str, Any], key: bytes | None, demo: bool, result: Verification
) -> None:
    """A signature under the published demo key proves nothing: it counts only in the demo."""
    demo_ed25519 = result.ed25519_key_id is not None and result.ed25519_key_id == _demo_key_id()
    if key == DEMO_PACKET_KEY or manifest.get("demo_key") is True or demo_ed25519:
        result.demo_key = True
        if not demo:
            result.problems.append(
                f"{MANIFEST_NAME}: signed with the published demo key, which anybody can use: "
                "the signature proves nothing (accepted only in the demo, METAUDIT_DEMO=1)"
            )


def _demo_key_id() -> str:
    from metaudit.packets.keypair import demo_signing_key

    return demo_signing_key().public.key_id


def _check_ed25519(
    archive: zipfile.ZipFile,
    names: list[str],
    manifest: dict[str, Any],
    manifest_raw: bytes,
    public_keys: Sequence[PublicKey] | None,
    result: Verification,
) -> bool:
    """Check the Ed25519 signatures (module docstring); False when the manifest's own
    signature does not hold, so that nothing it lists is trusted.

    ``public_keys`` None: the HMAC checked the manifest already, and the packet's own
    public key (which the manifest lists) is used; a packet without an Ed25519 key
    passes. Else the key is picked from ``public_keys`` by the manifest's key id."""
    named = manifest.get(ED25519_KEY_ID)
    by_public_key = public_keys is not None
    if named is None:
        if by_public_key:
            result.problems.append(
                f"{MANIFEST_NAME}: names no Ed25519 key: the packet was built before packets "
                "were signed for auditors (or without a signing key), and only the "
                "deployment's HMAC key can check it (metaudit verify without --public-key, "
                "with METAUDIT_PACKET_KEY)"
            )
            return False
        return True
    if not isinstance(named, str):
        result.problems.append(f"{MANIFEST_NAME}: {ED25519_KEY_ID} is not a key id")
        return False
    # Without the HMAC, a missing public_key.pem is named by the file check (it is listed).
    carried = public_keys is None or PUBLIC_KEY_NAME in names
    own = _packet_public_key(archive, names, result) if carried else None
    if public_keys is None:
        chosen = own
        if chosen is None:
            return False
        if chosen.key_id != named:
            result.problems.append(
                f"{PUBLIC_KEY_NAME}: holds key {chosen.key_id}, but the manifest names {named}"
            )
            return False
    else:
        ring = {key.key_id: key for key in public_keys}
        if named not in ring:
            result.problems.append(
                f"{MANIFEST_NAME}: signed with Ed25519 key {named}, which is none of the public "
                f"keys given (key ids {describe_ids(list(ring))}): another deployment's packet, "
                "or one signed before a key rotation (pass that earlier public key too; the "
                "deployment lists them in METAUDIT_PACKET_PUBLIC_KEYS)"
            )
            return False
        chosen = ring[named]
        if own is not None and own.der != chosen.der:
            result.problems.append(
                f"{PUBLIC_KEY_NAME}: not the key {named} the manifest names (replaced)"
            )
    signature_bytes = _read_signature(archive, names, MANIFEST_SIGNATURE_NAME, result)
    if signature_bytes is None:
        return False
    if not chosen.verifies(signature_bytes, manifest_raw):
        result.problems.append(
            f"{MANIFEST_NAME}: the Ed25519 signature ({MANIFEST_SIGNATURE_NAME}) does not match "
            f"key {named} (the manifest or its signature was altered)"
        )
        return False
    result.ed25519_key_id = named
    sums = _read_member(archive, names, SUMS_NAME, MAX_MANIFEST_BYTES, result)
    sums_signature = _read_signature(archive, names, SUMS_SIGNATURE_NAME, result)
    if sums is not None and sums_signature is not None:
        if not chosen.verifies(sums_signature, sums):
            result.problems.append(
                f"{SUMS_NAME}: the Ed25519 signature ({SUMS_SIGNATURE_NAME}) does not match key "
                f"{named} (the list or its signature was altered)"
            )
        rows = manifest.get("files")
        if (
            isinstance(rows, list)
            and all(
                isinstance(r, dict) and isinstance(r.get("path"), str) and "sha256" in r
                for r in rows
            )
            and sums != sha256sums(rows)
        ):
            result.problems.append(
                f"{SUMS_NAME}: does not list exactly the manifest's files and SHA-256"
            )
    return True


def _read_member(
    archive: zipfile.ZipFile, names: list[str], name: str, limit: int, result: Verification
) -> bytes | None:
    """A small member's bytes (at most ``limit``), or None with the problem noted."""
    if name not in names:
        result.problems.append(f"{name}: missing")
        return None
    info = archive.getinfo(name)
    if info.file_size > limit:
        result.problems.append(f"{name}: {info.file_size} bytes, more than {limit} (not read)")
        return None
    try:
        with archive.open(info) as handle:
            data = handle.read(limit + 1)
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        result.problems.append(f"{name}: unreadable ({exc})")
        return None
    if len(data) > limit:
        result.problems.append(f"{name}: more than {limit} bytes (not read)")
        return None
    return data


def _read_signature(
    archive: zipfile.ZipFile, names: list[str], name: str, result: Verification
) -> bytes | None:
    data = _read_member(archive, names, name, SIGNATURE_SIZE, result)
    if data is not None and len(data) != SIGNATURE_SIZE:
        result.problems.append(
            f"{name}: {len(data)} bytes; an Ed25519 signature has {SIGNATURE_SIZE}"
        )
        return None
    return data


def _packet_public_key(
    archive: zipfile.ZipFile, names: list[str], result: Verification
) -> PublicKey | None:
    """The public key the packet carries, or None with the problem noted."""
    data = _read_member(archive, names, PUBLIC_KEY_NAME, MAX_PUBLIC_KEY_BYTES, result)
    if data is None:
        return None
    try:
        keys = load_public_keys(data, where=PUBLIC_KEY_NAME)
    except PacketError as exc:
        result.problems.append(str(exc))
        return None
    if len(keys) != 1:
        result.problems.append(f"{PUBLIC_KEY_NAME}: holds {len(keys)} keys, not one")
        return None
    return keys[0]


def _check_place(
    manifest: dict[str, Any],
    place: PacketPlace | None,
    result: Verification,
    key: bytes | None = b"",
    packets_dir: Path | None = None,
) -> None:
    """The manifest must say the packet is what its place claims (a packet copied over
    another one verifies only where it was built for). A client packet built on an
    earlier date also belongs to a later date whose signed index names it as in force."""
    if place is None:
        return
    claims: list[tuple[str, Any, Any]] = [
        ("kind", manifest.get("kind"), place.kind),
        ("practice", manifest.get("practice_id"), place.practice_id),
    ]
    if place.kind == CLIENT:
        as_of = manifest.get("as_of")
        claimed_as_of = place.as_of
        if (
            isinstance(as_of, str)
            and place.as_of is not None
            and as_of < place.as_of
            and manifest.get("kind") == CLIENT
            and manifest.get("practice_id") == place.practice_id
            and manifest.get("client_id") == place.client_id
        ):
            why = _in_force_problem(manifest, place, key, packets_dir)
            if why is None:
                result.in_force_on = place.as_of
                claimed_as_of = as_of
            else:
                result.problems.append(
                    f"{MANIFEST_NAME}: signed as of {as_of}, but the packet is taken for "
                    f"{place.describe()}, and it is not in force there: {why}"
                )
                return
        claims += [
            ("client", manifest.get("client_id"), place.client_id),
            ("as-of date", as_of, claimed_as_of),
        ]
    else:
        as_of = manifest.get("as_of")
        claims += [
            ("client", manifest.get("client_id"), None),
            ("month", manifest.get("period"), place.month),
            (
                "as-of month",
                as_of[:7] if isinstance(as_of, str) else as_of,
                place.month,
            ),
        ]
    for what, said, claimed in claims:
        if said != claimed:
            result.problems.append(
                f"{MANIFEST_NAME}: signed for {what} {said!r}, but the packet is taken for "
                f"{place.describe()} ({what} {claimed!r}): it belongs elsewhere"
            )


def _in_force_problem(
    manifest: dict[str, Any], place: PacketPlace, key: bytes | None, packets_dir: Path | None
) -> str | None:
    """Why a packet built earlier is not the one in force at its place's date, or None."""
    from metaudit.packets.inforce import in_force_entry

    if key is None:
        return (
            "only the packets folder's index of that date can say so, and it is signed with "
            f"the HMAC key (verify with METAUDIT_PACKET_KEY, or take the packet for its own "
            f"as-of date {manifest.get('as_of')})"
        )

    if packets_dir is None:
        return (
            "only the packets folder's signed index of that date can say so (verify the packet "
            f"where it sits, or take it for its own as-of date {manifest.get('as_of')})"
        )
    assert place.as_of is not None and place.client_id is not None
    try:
        entry, why = in_force_entry(
            packets_dir, place.practice_id, place.as_of, place.client_id, key
        )
    except PacketError as exc:
        return str(exc)
    if entry is None:
        return why
    if entry.get("manifest_signature") != manifest.get("signature") or entry.get(
        "built_as_of"
    ) != manifest.get("as_of"):
        return f"the index of {place.as_of} names another packet of the client"
    return None


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
            and not isinstance(row.get("size"), bool)
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
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, row: dict[str, Any], result: Verification
) -> None:
    name = info.filename
    if info.file_size != row["size"]:
        # Declared by the zip's directory: known without decompressing a byte.
        result.problems.append(
            f"{name}: altered (size {info.file_size}, manifest says {row['size']}; not read)"
        )
        return
    digest = hashlib.sha256()
    size = 0
    try:
        with archive.open(info) as handle:
            # Never more than the manifest's size (+1 to notice more): a lying header
            # cannot make the check inflate more than the signed size.
            while size <= row["size"]:
                chunk = handle.read(min(_CHUNK, row["size"] + 1 - size))
                if not chunk:
                    break
                size += len(chunk)
                digest.update(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        # A flipped byte in compressed data fails zip's own CRC check first.
        result.problems.append(f"{name}: altered (unreadable: {exc})")
        return
    except (NotImplementedError, RuntimeError) as exc:
        # An unsupported compression method, or an encrypted entry: not what we write.
        result.problems.append(f"{name}: unreadable ({exc})")
        return
    reasons = []
    if size != row["size"]:
        reasons.append(f"size {size}, manifest says {row['size']}")
    if digest.hexdigest() != row["sha256"].lower():
        reasons.append("SHA-256 differs from the manifest")
    if reasons:
        result.problems.append(f"{name}: altered ({'; '.join(reasons)})")
    else:
        result.files_checked += 1
