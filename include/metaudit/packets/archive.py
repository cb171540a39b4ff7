"""Zip bytes that depend only on their content, and writing them atomically.

Every entry gets the same timestamp (the packet's as-of date at midnight), the
same permissions and compression, and entries are sorted by path, so building
a packet twice from the same records gives the same bytes and a rebuild can be
compared with ``cmp``. Files are written to a temporary name in the target
folder and renamed into place: a reader sees the old packet or the new one,
never half of one.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from datetime import date
from urllib.parse import quote

# Packets are written through the project's one atomic write, re-exported for packets.build.
from metaudit.findings import write_atomic_bytes as write_atomic_bytes
from metaudit.packets.errors import PacketError

# Regular files, rw-r--r--, made on a Unix system.
_FILE_MODE = 0o100644 << 16
_UNIX = 3
_COMPRESS_LEVEL = 6
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def zip_bytes(files: Mapping[str, bytes], stamp: date) -> bytes:
    """A zip of ``files`` (path -> bytes), entries sorted, every timestamp ``stamp``."""
    when = (max(stamp.year, 1980), stamp.month, stamp.day, 0, 0, 0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(files):
            _check_member(path)
            info = zipfile.ZipInfo(path, date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _UNIX
            info.external_attr = _FILE_MODE
            archive.writestr(info, files[path], compresslevel=_COMPRESS_LEVEL)
    return buffer.getvalue()


def _check_member(path: str) -> None:
    parts = path.split("/")
    if path.startswith("/") or any(part in {"", ".", ".."} for part in parts) or "\\" in path:
        raise PacketError(f"not a safe path inside a packet: {path!r}")


def safe_id(value: str, what: str) -> str:
    """An id as a file or folder name: kept as it is when it is plain, else percent-encoded.

    Names hold ids only, never a client's name. Encoding (rather than replacing odd
    characters) keeps two different ids from ever sharing a file name.
    """
    text = str(value)
    if not text:
        raise PacketError(f"{what} is empty: it cannot name a packet file")
    if _SAFE_NAME.fullmatch(text):
        return text
    encoded = quote(text, safe="")
    # A leading dot would hide the file; a leading dash reads as an option.
    if encoded[0] in ".-":
        encoded = f"%{ord(encoded[0]):02X}{encoded[1:]}"
    return encoded
