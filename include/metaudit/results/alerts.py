"""The results store's admin alerts: each task failure recorded for the admins, and
whether its mail went out."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from metaudit.results.base import ALERTS, StoreBase, utc_now


class AlertRecords(StoreBase):
    """The admin alerts of the results store."""

    def record_alert(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int,
        error: str,
        try_number: int | None = None,
        practice_id: str | None = None,
        as_of: date | None = None,
        log_url: str | None = None,
    ) -> int:
        """Record a task failure for the admins; return the alert's id."""
        return self._insert(
            ALERTS,
            created_at=utc_now(),
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
            practice_id=practice_id,
            as_of=as_of,
            error=error[:4000],
            log_url=log_url,
            notified_at=None,
        )

    def alerts(
        self, run_id: str | None = None, *, notified: bool | None = None
    ) -> list[dict[str, Any]]:
        """Recorded alerts (of one run, or all; only those mailed, or not, when
        ``notified`` is given), oldest first."""
        table = ALERTS
        query = sa.select(table).order_by(table.c.id)
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
        if notified is not None:
            query = query.where(
                table.c.notified_at.is_not(None) if notified else table.c.notified_at.is_(None)
            )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def mark_alert_notified(self, alert_id: int) -> None:
        """Record that the alert's mail went out (or, without a SendGrid key, to the outbox)."""
        with self._transaction() as conn:
            conn.execute(
                ALERTS.update().where(ALERTS.c.id == alert_id).values(notified_at=utc_now())
            )
