"""Zip bytes that depend only on their content, and writing them atomically.

Every entry gets the same timestamp (the packet's as-of date at midnight), the
same permissions and compression (deflated, PDFs stored as they are), and entries
are sorted by path, so building
a packet twice from the same records gives the same bytes and a rebuild can be
compared with ``cmp``. Files are written to a temporary name in the target
folder and renamed into place: a reader sees the old packet or the new one,
never half of one.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from datetime import date

# Packets are written through the project's one atomic write, re-exported for packets.build.
from metaudit.packets.errors import PacketError

# Regular files, rw-r--r--, made on a Unix system.
_FILE_MODE = 0o100644 << 16
_UNIX = 3
_COMPRESS_LEVEL = 6


def zip_bytes(files: Mapping[str, bytes], stamp: date) -> bytes:
    """A zip of ``files`` (path -> bytes), entries sorted, every timestamp ``stamp``."""
    when = (max(stamp.year, 1980), stamp.month, stamp.day, 0, 0, 0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(files):
            _check_member(path)
            info = zipfile.ZipInfo(path, date_time=when)
            # A PDF's streams are deflated already: deflating it again gains little.
            stored = path.endswith(".pdf")
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.create_system = _UNIX
            info.external_attr = _FILE_MODE
            archive.writestr(info, files[path], compresslevel=None if stored else _COMPRESS_LEVEL)
    return buffer.getvalue()


def _check_member(path: str) -> None:
    parts = path.split("/")
    if path.startswith("/") or any(part in {"", ".", ".."} for part in parts) or "\\" in path:
        raise PacketError(f"not a safe path inside a packet: {path!r}")
