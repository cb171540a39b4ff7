"""Where packets live on disk: the packets folder and the file of each packet.

    <packets_dir>/<practice_id>/<as_of>/<client_id>.zip      one per client with activity
    <packets_dir>/<practice_id>/practice-<YYYY-MM>.zip       the month to date, per practice

Kept apart from the builders so that reading the folder (the Airflow UI plugin)
imports neither pandas nor the renderers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaudit import config
from metaudit.errors import SettingsError
from metaudit.packets.errors import PacketError
from metaudit.paths import id_name

if TYPE_CHECKING:
    from metaudit.spec.settings import Settings

PACKETS_DIR_ENV = config.PACKETS_DIR_ENV
# The audit period of a packet: the days ending on its as-of date (a month's last day
# covers the whole month).
DEFAULT_ACTIVITY_DAYS = 31
_SETTINGS_KEYS = {"dir", "activity_days"}


@dataclass(frozen=True)
class PacketOptions:
    """Where packets go and which clients get one."""

    packets_dir: Path
    activity_days: int = DEFAULT_ACTIVITY_DAYS


def packet_options(
    settings: Settings | None = None, packets_dir: Path | str | None = None
) -> PacketOptions:
    """The packet options: ``packets_dir`` if given, else the configuration's ``packets.dir``,
    else ``METAUDIT_PACKETS_DIR``, else ``<data folder>/packets``; ``packets.activity_days``
    (default 31) from the configuration."""
    section: Mapping[str, Any] = {}
    if settings is not None:
        raw = settings.sections.get("packets") or {}
        if not isinstance(raw, Mapping):
            raise SettingsError("packets: must be a mapping with 'dir' and/or 'activity_days'")
        section = raw
    unknown = sorted(set(section) - _SETTINGS_KEYS)
    if unknown:
        raise SettingsError(
            f"packets: unknown key(s) {', '.join(unknown)}; allowed: dir, activity_days"
        )
    days = section.get("activity_days", DEFAULT_ACTIVITY_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise SettingsError(
            f"packets.activity_days must be a whole number of days >= 1, got {days!r}"
        )
    if packets_dir is None:
        configured = section.get("dir")
        if configured is not None and not isinstance(configured, str):
            raise SettingsError(f"packets.dir must be a folder path, got {configured!r}")
        packets_dir = configured or config.packets_dir()
    if packets_dir is None:
        from metaudit.paths import data_dir

        packets_dir = data_dir() / "packets"
    return PacketOptions(packets_dir=Path(packets_dir), activity_days=days)


def client_packet_path(packets_dir: Path, practice_id: str, as_of: str, client_id: str) -> Path:
    """``<packets_dir>/<practice_id>/<as_of>/<client_id>.zip``."""
    return (
        packets_dir
        / id_name(practice_id, "practice id", PacketError)
        / date.fromisoformat(as_of).isoformat()
        / f"{id_name(client_id, 'client id', PacketError)}.zip"
    )


def practice_packet_path(packets_dir: Path, practice_id: str, as_of: str) -> Path:
    """``<packets_dir>/<practice_id>/practice-<YYYY-MM>.zip`` (the month of ``as_of``)."""
    month = date.fromisoformat(as_of).strftime("%Y-%m")
    return packets_dir / id_name(practice_id, "practice id", PacketError) / f"practice-{month}.zip"
