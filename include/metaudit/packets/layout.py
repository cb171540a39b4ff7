"""Where packets live on disk: the packets folder and the file of each packet.

    <packets_dir>/<practice_id>/<as_of>/<client_id>.zip      one per client with activity
    <packets_dir>/<practice_id>/practice-<YYYY-MM>.zip       the month to date, per practice

Kept apart from the builders so that reading the folder (the Airflow UI plugin)
imports neither pandas nor the renderers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaudit import config
from metaudit.packets.errors import PacketError
from metaudit.packets.retention import DEFAULT_RETENTION, RETENTIONS
from metaudit.paths import id_name
from metaudit.spec.sections import CHOICE, NUMBER, TEXT, Field, validate_section

if TYPE_CHECKING:
    from metaudit.spec.settings import Settings

PACKETS_DIR_ENV = config.PACKETS_DIR_ENV
# The audit period of a packet: the days ending on its as-of date (a month's last day
# covers the whole month).
DEFAULT_ACTIVITY_DAYS = 31
# The ``packets`` section. An empty dir, like none, leaves the choice to the environment.
PACKETS_FIELDS = (
    Field("dir", TEXT, what="a folder path"),
    Field(
        "activity_days",
        NUMBER,
        default=DEFAULT_ACTIVITY_DAYS,
        minimum=1,
        whole=True,
        unit="days",
        null_is_default=False,
    ),
    # Which as-of dates keep their client packet folders (metaudit.packets.retention).
    Field("retention", CHOICE, default=DEFAULT_RETENTION, allowed=RETENTIONS),
)


# A practice's ``letterhead`` (``practices.<id>.letterhead``): what the cover letter of a
# records request is headed with (metaudit.packets.request).
LETTERHEAD_FIELDS = (
    Field("name", TEXT, what="the practice's name as the letter shows it"),
    Field("npi", TEXT, what="the practice's organization NPI (10 digits)"),
    Field("address", TEXT, what="the practice's postal address (lines separated by newlines)"),
)


@dataclass(frozen=True)
class Letterhead:
    """The cover letter's heading: the practice's name, NPI and address (None: not known)."""

    name: str
    npi: str | None
    address: str | None


def letterhead_values(settings: Settings, practice_id: str) -> dict[str, str | None]:
    """The practice's ``letterhead`` keys as configured (trimmed; None when not set), or
    SettingsError naming every problem (an unknown key, an NPI that fails its check digit)."""
    from metaudit.spec.npi import is_valid_npi

    path = f"practices.{practice_id}.letterhead"
    raw = settings.practice_section(practice_id).get("letterhead")
    values, problems = validate_section(path, raw, LETTERHEAD_FIELDS)
    found = {k: (str(v).strip() or None) if v is not None else None for k, v in values.items()}
    npi = found["npi"]
    if npi is not None and not is_valid_npi(npi):
        problems.add(f"{path}.npi", f"{npi!r} is not a valid NPI (10 digits, Luhn check digit)")
    problems.raise_if_any(f"invalid configuration ({settings.source})")
    return found


def check_letterheads(settings: Settings) -> None:
    """Every practice's letterhead checked (the packets page does it when it starts)."""
    for practice_id in settings.practice_ids:
        letterhead_values(settings, practice_id)


@dataclass(frozen=True)
class PacketOptions:
    """Where packets go and which clients get one."""

    packets_dir: Path
    activity_days: int = DEFAULT_ACTIVITY_DAYS
    retention: str = DEFAULT_RETENTION


def packet_options(
    settings: Settings | None = None, packets_dir: Path | str | None = None
) -> PacketOptions:
    """The packet options: ``packets_dir`` if given, else the configuration's ``packets.dir``,
    else ``METAUDIT_PACKETS_DIR``, else ``<data folder>/packets``; ``packets.activity_days``
    (default 31) and ``packets.retention`` (default every-date) from the configuration."""
    raw: Any = settings.sections.get("packets") if settings is not None else None
    values, problems = validate_section("packets", raw, PACKETS_FIELDS)
    source = settings.source if settings is not None else "configuration"
    problems.raise_if_any(f"invalid configuration ({source})")
    if packets_dir is None:
        packets_dir = values["dir"] or config.packets_dir()
    if packets_dir is None:
        from metaudit.paths import data_dir

        packets_dir = data_dir() / "packets"
    return PacketOptions(
        packets_dir=Path(packets_dir),
        activity_days=values["activity_days"],
        retention=values["retention"],
    )


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
