"""File names for ids, and files and folders only their owner may read.

One encoding names every file and folder that stands for an id (snapshot
partitions, per-practice results, the mail outbox, packets): an id made of
letters, digits, ``.``, ``_`` and ``-`` (starting with a letter or digit) is
kept as it is; any other id is percent-encoded. Encoding, rather than replacing
odd characters, keeps two different ids (``PR_1`` and ``PR 1``) from ever
sharing a name, and :func:`id_of_name` reads a name back. Names hold ids only,
never a client's name or a diagnosis.

The data folder holds health records and the download trail, so every file
the project writes is created owner-only (0600) and every folder it creates is
0700, whatever the process umask (see docs/deployment.md, "Data at rest").

And where each thing lies in the data folder (:func:`data_dir`, from
:mod:`metaudit.config`), and the one atomic, durable file write.

A low-level module: it imports only :mod:`metaudit.config`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote

from metaudit import config

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# File systems allow 255 bytes per name; leave room for a suffix such as ".zip" or ".json".
_LONGEST_NAME = 200
UNATTRIBUTED_FILE = "findings-without-practice.jsonl"
TIMINGS_FILE = "timings.json"
DEADLINES_FILE = "filing_deadlines.jsonl"
OUTBOX_FOLDER = "outbox"


class IdNameError(ValueError):
    """An id that cannot name a file: empty, or too long once encoded."""


def id_name(value: str, what: str = "id", error: type[Exception] = IdNameError) -> str:
    """The file or folder name of an id: kept when plain, else percent-encoded.

    ``error`` is the exception raised for an id that cannot name a file, so each caller
    reports it as its own kind of failure (a packet's, the outbox's)."""
    text = str(value)
    if not text:
        raise error(f"{what} is empty: it cannot name a file")
    if _PLAIN_ID.fullmatch(text):
        return text
    encoded = quote(text, safe="")
    # A leading dot would hide the file (or be "." / ".."); a leading dash reads as an option.
    if encoded[0] in ".-":
        encoded = f"%{ord(encoded[0]):02X}{encoded[1:]}"
    if len(encoded) > _LONGEST_NAME:
        raise error(
            f"{what} is too long to name a file ({len(encoded)} characters once encoded; "
            f"at most {_LONGEST_NAME})"
        )
    return encoded


def id_of_name(name: str) -> str | None:
    """The id a name stands for, or None when :func:`id_name` would not write that name
    (a stray file, a hand-made folder, another spelling of an id)."""
    value = unquote(name)
    try:
        return value if id_name(value) == name else None
    except IdNameError:
        return None


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 folders (existing ones are left as
    they are: the data folder itself may be a mount point owned by someone else)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by a parallel task meanwhile
            folder.mkdir(mode=PRIVATE_DIR_MODE)
            # mkdir's mode is masked by the umask; chmod is not.
            folder.chmod(PRIVATE_DIR_MODE)
    return path


def make_private(path: Path) -> Path:
    """Make an existing file 0600 (or folder 0700): for files a library wrote itself."""
    path = Path(path)
    path.chmod(PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE)
    return path


def private_tree(root: Path) -> Path:
    """Make ``root`` and everything below it owner-only (a folder built by a library)."""
    make_private(root)
    for item in Path(root).rglob("*"):
        if not item.is_symlink():
            make_private(item)
    return Path(root)


def fsync_dir(path: Path) -> None:
    """Put a folder's entries on disk: a rename or link into it is durable only then."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # some filesystems cannot fsync a dir
            raise
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8, line endings as given)
    atomically and durably: never a partial file.

    The one atomic write of the project (findings, snapshots, packets, the mail outbox):
    a temporary file in the same folder (a rename is atomic only within one filesystem),
    flushed and fsynced, renamed over ``path``, then the folder fsynced so the rename
    survives a crash. On any failure the temporary file is removed and the old file stays.
    """
    # Owner-only: mkstemp creates the file 0600, and missing folders are made 0700.
    if isinstance(data, str):
        data = data.encode("utf-8")
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


# -- the data folder ------------------------------------------------------------------------


def data_dir() -> Path:
    """The project's data folder (METAUDIT_DATA_DIR overrides it)."""
    return config.data_dir()


def results_dir(as_of: str, practice_id: str, root: Path | None = None) -> Path:
    """Where one practice's findings and validation results of one as-of date go."""
    return (root or data_dir() / "results") / as_of / id_name(practice_id, "practice id")


def snapshot_dir(as_of: str, root: Path | None = None) -> Path:
    """Where extract leaves the per-practice partitions of one as-of date."""
    return (root or data_dir() / "snapshots") / as_of


def unattributed_path(as_of: str, root: Path | None = None) -> Path:
    """The run-level file of one as-of date's findings that name no practice."""
    return (root or data_dir() / "results") / as_of / UNATTRIBUTED_FILE


def outbox_dir() -> Path:
    """The mail outbox: one record and one .eml per practice and as-of date (and alerts)."""
    return data_dir() / OUTBOX_FOLDER
