"""Which as-of dates of a practice's client packets are kept: the ``packets.retention`` setting.

- ``every-date`` (the default): every as-of date keeps its folder. A client
  whose evidence did not change has one file for all those dates (hard links),
  so a year of unchanged nights costs a folder entry per night, not a packet.
- ``latest-and-month-ends``: the latest as-of date and, for every month, the
  last as-of date of that month that has packets; the other date folders (and
  their indexes, and the bases no kept index names) are removed by the nightly
  run after the practice's packets.

Nothing removed is ever in force: the latest date is always kept, and a packet
built on a removed date lives on in the folders that link to it (removing a
hard link leaves the other names of the file). The month packets
(``practice-YYYY-MM.zip``) are one per month and are not touched.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from metaudit.packets.errors import PacketError
from metaudit.packets.inforce import base_path, bases_dir, in_force_path, index_dates, read_raw
from metaudit.packets.verify import is_date_folder
from metaudit.paths import id_name

log = logging.getLogger(__name__)

EVERY_DATE = "every-date"
LATEST_AND_MONTH_ENDS = "latest-and-month-ends"
RETENTIONS = (EVERY_DATE, LATEST_AND_MONTH_ENDS)
DEFAULT_RETENTION = EVERY_DATE


def dates_kept(dates: Iterable[str], retention: str) -> set[str]:
    """The as-of dates (YYYY-MM-DD) a retention keeps out of ``dates``."""
    every = sorted(set(dates))
    if retention == EVERY_DATE or not every:
        return set(every)
    if retention != LATEST_AND_MONTH_ENDS:
        raise PacketError(f"unknown packet retention {retention!r}: use one of {RETENTIONS}")
    last_of_month: dict[str, str] = {}
    for day in every:  # sorted: the last one of each month wins
        last_of_month[day[:7]] = day
    return {every[-1], *last_of_month.values()}


def packet_dates(packets_dir: Path, practice_id: str) -> list[str]:
    """The as-of dates of a practice with a client packet folder or an index, oldest first."""
    folder = Path(packets_dir) / id_name(practice_id, "practice id", PacketError)
    found = set(index_dates(packets_dir, practice_id))
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        found.update(p.name for p in folder.iterdir() if p.is_dir() and is_date_folder(p.name))
    return sorted(found)


def apply_retention(
    packets_dir: Path, practice_id: str, retention: str, *, keep: Iterable[str] = ()
) -> list[str]:
    """Remove the practice's as-of date folders (and indexes) the retention does not keep;
    ``keep`` (tonight's date) is kept whatever it says. Returns the dates removed."""
    dates = packet_dates(packets_dir, practice_id)
    kept = dates_kept(dates, retention) | set(keep)
    folder = Path(packets_dir) / id_name(practice_id, "practice id", PacketError)
    removed = []
    for day in dates:
        if day in kept:
            continue
        # The index first: a date without its index no longer claims any packet.
        in_force_path(packets_dir, practice_id, day).unlink(missing_ok=True)
        date_folder = folder / day
        if date_folder.is_dir() and not date_folder.is_symlink():
            shutil.rmtree(date_folder)
        removed.append(day)
    if removed:
        _remove_unused_bases(packets_dir, practice_id)
        log.info(
            "packets of practice %s: retention %s removed %d as-of date(s), %s to %s",
            practice_id,
            retention,
            len(removed),
            removed[0],
            removed[-1],
        )
    return removed


def _remove_unused_bases(packets_dir: Path, practice_id: str) -> None:
    """Remove the bases no remaining index names (their dates' indexes are gone)."""
    used = set()
    for day in index_dates(packets_dir, practice_id):
        data = read_raw(in_force_path(packets_dir, practice_id, day)) or {}
        base = data.get("base")
        if isinstance(base, dict) and isinstance(base.get("signature"), str):
            with contextlib.suppress(PacketError, ValueError):
                used.add(
                    base_path(
                        packets_dir, practice_id, str(base.get("as_of")), base["signature"]
                    ).name
                )
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in bases_dir(packets_dir, practice_id).iterdir():
            if path.name.endswith(".json") and path.name not in used and path.is_file():
                path.unlink()
