"""The results store's packet access trail: each packet served to a user, and each
rebuild of a packet an admin asked for."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from metaudit.results.base import DOWNLOADS, REBUILDS, StoreBase, utc_now


class DownloadTrail(StoreBase):
    """The packet downloads and rebuild requests of the results store."""

    def record_download(
        self,
        *,
        user_name: str,
        kind: str,
        practice_id: str,
        client_id: str | None,
        period: str,
        packet: str,
        size: int,
        sha256: str,
        verified: bool,
        remote_addr: str | None = None,
        reference: str | None = None,
    ) -> int:
        """Record a packet served to a user (before it is sent); return the row's id.
        ``reference``: a records request's, for the answer to one."""
        return self._insert(
            DOWNLOADS,
            downloaded_at=utc_now(),
            user_name=user_name,
            kind=kind,
            practice_id=practice_id,
            client_id=client_id,
            period=period,
            packet=packet,
            size=size,
            sha256=sha256,
            verified=verified,
            remote_addr=remote_addr,
            reference=reference,
        )

    def downloads(
        self, *, practice_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Recorded downloads, newest first (one page), and how many there are in all."""
        return self._page(DOWNLOADS, DOWNLOADS.c.downloaded_at, practice_id, limit, offset)

    def record_rebuild(
        self,
        *,
        user_name: str,
        practice_id: str,
        client_id: str | None,
        as_of: date,
        dag_run_id: str | None,
        error: str | None = None,
    ) -> int:
        """Record a rebuild an admin asked for: the run it triggered, or why it did not."""
        return self._insert(
            REBUILDS,
            requested_at=utc_now(),
            user_name=user_name,
            practice_id=practice_id,
            client_id=client_id,
            as_of=as_of,
            dag_run_id=dag_run_id,
            status="failed" if error else "triggered",
            error=error[:4000] if error else None,
        )

    def rebuilds(
        self, *, practice_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Recorded rebuild requests, newest first (one page), and how many in all."""
        return self._page(REBUILDS, REBUILDS.c.requested_at, practice_id, limit, offset)

    def _page(
        self,
        table: sa.Table,
        when: sa.Column[Any],
        practice_id: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        where = [] if practice_id is None else [table.c.practice_id == practice_id]
        query = (
            sa.select(table)
            .where(*where)
            .order_by(when.desc(), table.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        count = sa.select(sa.func.count()).select_from(table).where(*where)
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
            total = int(conn.execute(count).scalar_one())
        return rows, total
