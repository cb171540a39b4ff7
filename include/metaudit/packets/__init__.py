"""Audit packets: one signed zip per client and as-of date, and one per practice and month.

A packet is what a practice owner hands a payer or an auditor: a cover (PDF)
with the client's status rule by rule, the client's records (one paginated PDF,
and HTML and CSV), outcome-measure charts (SVG), the validation report (JSON
and HTML), the findings (CSV) and ``manifest.json``, which lists every file's
size and SHA-256 and is signed with HMAC-SHA256 (``metaudit verify PACKET.zip``).

Public API:

- :func:`build_practice_packets` builds a practice's packets for one as-of date
  (what the nightly DAG and ``metaudit packets`` call);
- :func:`verify_packet` checks a packet against its manifest;
- the pure parts (:mod:`metaudit.packets.content`, :mod:`metaudit.packets.render`)
  and the lower-level builders in :mod:`metaudit.packets.build`.

docs/packets.md describes the layout, the definitions and the key handling.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The names are loaded on first use (PEP 562): verifying a packet, which the Airflow
# API server does for the packets page, must not import pandas and ReportLab with
# the builders.
_EXPORTS = {
    "metaudit.packets.build": (
        "ClientPacketSummary",
        "build_client_packets",
        "build_practice_packet",
        "build_practice_packets",
        "client_packet_files",
        "evidence_from_audit_dir",
        "evidence_from_check",
        "practice_packet_files",
        "prepare_material",
    ),
    "metaudit.packets.content": (
        "PracticeEvidence",
        "PracticeMaterial",
        "clients_with_activity",
    ),
    "metaudit.packets.layout": (
        "DEFAULT_ACTIVITY_DAYS",
        "PacketOptions",
        "client_packet_path",
        "packet_options",
        "practice_packet_path",
    ),
    "metaudit.packets.errors": ("PacketBuildError", "PacketError", "PacketKeyError"),
    "metaudit.packets.signing": ("DEMO_PACKET_KEY", "KEY_ENV"),
    "metaudit.packets.verify": ("Verification", "verify_packet"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:
    from metaudit.packets.build import (
        ClientPacketSummary,
        build_client_packets,
        build_practice_packet,
        build_practice_packets,
        client_packet_files,
        evidence_from_audit_dir,
        evidence_from_check,
        practice_packet_files,
        prepare_material,
    )
    from metaudit.packets.content import (
        PracticeEvidence,
        PracticeMaterial,
        clients_with_activity,
    )
    from metaudit.packets.errors import PacketBuildError, PacketError, PacketKeyError
    from metaudit.packets.layout import (
        DEFAULT_ACTIVITY_DAYS,
        PacketOptions,
        client_packet_path,
        packet_options,
        practice_packet_path,
    )
    from metaudit.packets.signing import DEMO_PACKET_KEY, KEY_ENV
    from metaudit.packets.verify import Verification, verify_packet


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        # An AttributeError lets `from metaudit.packets import render` find the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ACTIVITY_DAYS",
    "DEMO_PACKET_KEY",
    "KEY_ENV",
    "ClientPacketSummary",
    "PacketBuildError",
    "PacketError",
    "PacketKeyError",
    "PacketOptions",
    "PracticeEvidence",
    "PracticeMaterial",
    "Verification",
    "build_client_packets",
    "build_practice_packet",
    "build_practice_packets",
    "client_packet_files",
    "client_packet_path",
    "clients_with_activity",
    "evidence_from_audit_dir",
    "evidence_from_check",
    "packet_options",
    "practice_packet_files",
    "practice_packet_path",
    "prepare_material",
    "verify_packet",
]
