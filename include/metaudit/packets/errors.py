"""What can go wrong while building or verifying an audit packet."""

from __future__ import annotations

from metaudit.errors import MetAuditError


class PacketError(MetAuditError):
    """An audit packet cannot be built or read; the message says why."""


class PacketKeyError(PacketError):
    """No usable signing key: packets are refused rather than signed with a guess."""


class PacketBuildError(PacketError):
    """Some clients' packets failed; the others were written (each one whole or not at all)."""

    def __init__(self, practice_id: str, as_of: str, failed: dict[str, str]) -> None:
        self.practice_id = practice_id
        self.as_of = as_of
        self.failed = dict(failed)
        names = "; ".join(f"{client_id}: {reason}" for client_id, reason in sorted(failed.items()))
        super().__init__(
            f"packets of practice {practice_id} as of {as_of} failed for "
            f"{len(failed)} client(s): {names}"
        )
