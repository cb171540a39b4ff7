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

A low-level module: it imports nothing else of the project.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from urllib.parse import quote, unquote

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# File systems allow 255 bytes per name; leave room for a suffix such as ".zip" or ".json".
_LONGEST_NAME = 200


class IdNameError(ValueError):
    """An id that cannot name a file: empty, or too long once encoded."""


def id_name(value: str, what: str = "id") -> str:
    """The file or folder name of an id: kept when plain, else percent-encoded."""
    text = str(value)
    if not text:
        raise IdNameError(f"{what} is empty: it cannot name a file")
    if _PLAIN_ID.fullmatch(text):
        return text
    encoded = quote(text, safe="")
    # A leading dot would hide the file (or be "." / ".."); a leading dash reads as an option.
    if encoded[0] in ".-":
        encoded = f"%{ord(encoded[0]):02X}{encoded[1:]}"
    if len(encoded) > _LONGEST_NAME:
        raise IdNameError(
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
