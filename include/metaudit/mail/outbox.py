"""The durable outbox: one record per (practice, as-of date), so a mail goes out once.

Layout under the outbox folder (default ``data/outbox``)::

    <as_of>/<practice_id>.json     the record: state, message, attempts, SendGrid ids
    <as_of>/<practice_id>.eml      the message as a mail program opens it
    <as_of>/alerts/<key>.json|.eml failure alerts to the admins, one per alert key

Every write goes to a temporary file that is flushed to disk and renamed over
the old one, so a record is always whole. A per-record lock (``flock``) keeps
two processes on one host from working on the same record at once.

States::

    pending ──▶ sending ──▶ sent          (SendGrid accepted it: message id kept)
       ▲           │
       └───────────┘  SendGrid refused or stayed unavailable: back to pending,
                      the error kept; the next run tries again
    sending (found by a later run) ──▶ uncertain   (never posted again on its own)
    written     no API key: the .eml was written to the folder, nothing posted
    skipped     nothing to report and the all-clear mail is off
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

# The outbox writes through the project's one atomic write (temporary file, fsync, rename,
# folder fsync); the name stays for the callers of this module.
from metaudit.mail.errors import OutboxError
from metaudit.paths import id_name, private_dir, write_atomic

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DIGEST = "digest"
ALERT = "alert"

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
WRITTEN = "written"
UNCERTAIN = "uncertain"
SKIPPED = "skipped"
STATES = (PENDING, SENDING, SENT, WRITTEN, UNCERTAIN, SKIPPED)
# Kept on the record for an operator to read; older ones are dropped.
MAX_ERRORS_KEPT = 20
LOCK_TIMEOUT_SECONDS = 900.0


@dataclass
class OutboxRecord:
    """What the outbox knows about one message.

    ``attempt`` is the post in flight (``{"id", "started_at"}``) while the state
    is ``sending``; ``sent`` the last delivery SendGrid accepted; ``deliveries``
    every accepted delivery (more than one only after ``resend``); ``errors``
    the recent failures.
    """

    kind: str
    name: str
    as_of: str
    state: str
    created_at: str
    updated_at: str
    message: dict[str, Any] | None = None
    attempt: dict[str, Any] | None = None
    sent: dict[str, Any] | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    eml: str | None = None
    schema: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> OutboxRecord:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = set(cls.__dataclass_fields__)
        record = cls(**{k: v for k, v in data.items() if k in known})
        if record.state not in STATES:
            raise ValueError(f"unknown state {record.state!r}")
        return record


@dataclass(frozen=True)
class RecordPaths:
    """Where one record, its .eml and its lock live."""

    record: Path
    eml: Path
    lock: Path


def check_as_of(as_of: str) -> str:
    """An as-of date as ``YYYY-MM-DD`` (it names a folder, so nothing else may pass)."""
    try:
        day = date.fromisoformat(str(as_of))
    except ValueError:
        raise OutboxError(f"as_of must be a date YYYY-MM-DD, got {as_of!r}") from None
    if day.isoformat() != as_of:
        raise OutboxError(f"as_of must be a date YYYY-MM-DD, got {as_of!r}")
    return as_of


def _read_record(path: Path) -> OutboxRecord:
    """A record file; a damaged record is an error, never ignored."""
    try:
        return OutboxRecord.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError) as exc:
        raise OutboxError(
            f"outbox record {path} cannot be read ({exc}); move it aside to start it afresh"
        ) from exc


class Outbox:
    """The outbox folder: load, save and lock records, write their .eml files."""

    def __init__(self, root: str | Path, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    def paths(self, kind: str, as_of: str, name: str) -> RecordPaths:
        """The files of the record of ``name`` (a practice id or an alert key) on ``as_of``."""
        folder = self.root / check_as_of(as_of)
        if kind == ALERT:
            folder = folder / "alerts"
        elif kind != DIGEST:
            raise ValueError(f"unknown outbox kind {kind!r}")
        stem = id_name(name, error=OutboxError)
        return RecordPaths(
            folder / f"{stem}.json", folder / f"{stem}.eml", folder / f".{stem}.lock"
        )

    @contextlib.contextmanager
    def locked(self, kind: str, as_of: str, name: str) -> Generator[None]:
        """Hold the record's lock; wait up to ``lock_timeout`` seconds for another holder."""
        lock_path = self.paths(kind, as_of, name).lock
        private_dir(lock_path.parent)
        deadline = time.monotonic() + self.lock_timeout
        # Created owner-only like every file of the outbox.
        with os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "a+b") as handle:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise OutboxError(
                            f"outbox record {lock_path.parent.name}/{lock_path.name[1:-5]} is "
                            f"locked by another process for more than {self.lock_timeout:.0f} s"
                        ) from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def load(self, kind: str, as_of: str, name: str) -> OutboxRecord | None:
        """The record, or None when there is none; a damaged record is an error, never ignored."""
        path = self.paths(kind, as_of, name).record
        if not path.exists():
            return None
        record = _read_record(path)
        if (record.kind, record.name, record.as_of) != (kind, name, as_of):
            raise OutboxError(
                f"outbox record {path} belongs to {record.kind} {record.name!r} on {record.as_of}"
            )
        return record

    def save(self, record: OutboxRecord) -> Path:
        """Write the record durably; return its path."""
        path = self.paths(record.kind, record.as_of, record.name).record
        write_atomic(path, record.to_json())
        return path

    def write_eml(self, record: OutboxRecord, data: bytes) -> Path:
        """Write the record's .eml file durably; return its path."""
        path = self.paths(record.kind, record.as_of, record.name).eml
        write_atomic(path, data)
        record.eml = path.name
        return path

    def remove_eml(self, record: OutboxRecord) -> None:
        """Drop a message that will not be sent (the record stays, as ``skipped``)."""
        self.paths(record.kind, record.as_of, record.name).eml.unlink(missing_ok=True)
        record.eml = None

    def names(self, kind: str, as_of: str) -> list[str]:
        """The names (practice ids or alert keys) of ``kind``'s records on ``as_of``."""
        folder = self.paths(kind, as_of, "x").record.parent
        if not folder.is_dir():
            return []
        return [_read_record(path).name for path in sorted(folder.glob("*.json"))]

    def eml_files(self, as_of: str) -> list[Path]:
        """The practices' .eml files of one as-of date (alerts aside), for ``make demo`` to show."""
        folder = self.root / check_as_of(as_of)
        return sorted(folder.glob("*.eml")) if folder.is_dir() else []

    def as_of_dates(self) -> list[str]:
        """The as-of dates that have a folder, oldest first."""
        if not self.root.is_dir():
            return []
        out = []
        for child in self.root.iterdir():
            try:
                if child.is_dir() and check_as_of(child.name):
                    out.append(child.name)
            except OutboxError:
                continue
        return sorted(out)
