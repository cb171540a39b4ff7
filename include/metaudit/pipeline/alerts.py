"""When a task fails: the practice marked failed, the failure recorded, the admins told.

:func:`practice_stage` wraps a practice's stages after persist, so a failure for
good marks the practice failed before Airflow hears of it; :func:`alert_admins`,
the DAG's failure callback, records an alert and mails it to the admins on the
morning email's path; :func:`resend_pending_alerts` (the run's last task) posts
the alerts SendGrid refused. None of this may raise past a callback.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from metaudit.config import run_url
from metaudit.errors import MetAuditError
from metaudit.paths import outbox_dir
from metaudit.pipeline import connections

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# What an alert callback may meet while mailing; none of them may escape the callback.
_ALERT_ERRORS: tuple[type[BaseException], ...] = (
    MetAuditError,
    OSError,
    ValueError,
    TypeError,
    LookupError,
    RuntimeError,
    ImportError,
)


@contextmanager
def practice_stage(
    context: Mapping[str, Any], store_url: str, practice: Mapping[str, Any]
) -> Generator[None]:
    """Run a practice's stage after persist (notify, packets): when it fails for good, mark
    the practice failed in the results store before re-raising.

    Persist already marked the practice a success; the run's last task reads the
    store, and Airflow reports a task's failure before its failure callback runs,
    so the stage records its own failure first. A failure that will be retried is
    not recorded (the next try may succeed).
    """
    try:
        yield
    except BaseException as exc:
        if is_final_failure(context, exc):
            record_practice_failure(
                store_url,
                str(context["run_id"]),
                date.fromisoformat(str(practice["as_of"])),
                str(practice["practice_id"]),
                exc,
            )
        raise


def is_final_failure(context: Mapping[str, Any], exc: BaseException) -> bool:
    """Whether Airflow will not try the failing task again: its retry policy fails it at
    once, or this was its last try."""
    from airflow.sdk.definitions.retry_policy import RetryAction
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(exc, AirflowFailException):
        return True
    ti = context["ti"]
    try_number = int(getattr(ti, "try_number", 1) or 1)
    max_tries = int(getattr(ti, "max_tries", 0) or 0)
    policy = getattr(getattr(ti, "task", None), "retry_policy", None)
    if policy is not None and isinstance(exc, Exception):
        decision = policy.evaluate(exc, try_number=try_number, max_tries=max_tries)
        if decision.action == RetryAction.FAIL:
            return True
    return max_tries == 0 or try_number > max_tries


def record_practice_failure(
    store_url: str, run_id: str, as_of: date, practice_id: str, exc: BaseException
) -> None:
    """Mark the practice failed for this run (its stored findings stay); logs, never raises."""
    from metaudit.results import session

    try:
        with session(store_url) as store:
            store.fail_practice(run_id, as_of, practice_id, describe_error(exc))
    except with_database_errors():
        log.exception("could not record the failure of practice %s in run %s", practice_id, run_id)


def describe_error(exc: BaseException | None) -> str:
    """How a failure is recorded: the error's type and message."""
    return f"{type(exc).__name__}: {exc}" if exc is not None else "task failed"


def alert_admins(context: Mapping[str, Any]) -> None:
    """The single hook that tells the admins a task failed for good (retries exhausted or
    not worth trying): records the failure in the results store (alerts, and the
    practice's status for a practice's task), logs it, and mails it to ``email.admins``
    on the morning email's path (an .eml in the outbox without a SendGrid key), once per
    failed try.

    Never raises: a broken alert must not hide the failure it reports.
    """
    ti = context["ti"]
    exception = context.get("exception")
    error = describe_error(exception)
    practice_id = _practice_of(context)
    log.error(
        "ALERT run %s task %s%s failed: %s",
        ti.run_id,
        ti.task_id,
        f" (practice {practice_id})" if practice_id else "",
        error,
    )
    alert_id, as_of = _record_alert(ti, practice_id, error)
    _mail_alert(context, practice_id, as_of, alert_id)


def _record_alert(ti: Any, practice_id: str | None, error: str) -> tuple[int | None, date | None]:
    """The alert's row in the results store (and the practice's failed status); its id and
    the run's as-of date, (None, None) when the store cannot be reached."""
    from metaudit.results import session
    from metaudit.results.base import as_date

    try:
        with session(connections.results_url()) as store:
            run = store.run(ti.run_id)
            as_of = as_date(run["as_of"]) if run else None
            alert_id = store.record_alert(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=_map_index(ti),
                try_number=getattr(ti, "try_number", None),
                practice_id=practice_id,
                as_of=as_of,
                error=error,
                log_url=getattr(ti, "log_url", None),
            )
            if practice_id and as_of:
                store.fail_practice(ti.run_id, as_of, practice_id, error)
    except with_database_errors():
        log.exception("could not record the alert for run %s task %s", ti.run_id, ti.task_id)
        return None, None
    return alert_id, as_of


def _group_of(ti: Any) -> str | None:
    """The practices of a group's task as its map index renders them ("FIRST..LAST (N)")."""
    rendered = getattr(ti, "rendered_map_index", None)
    return rendered if isinstance(rendered, str) and rendered else None


def _map_index(ti: Any) -> int:
    """A task instance's map index; -1 for a task that is not mapped (None or absent)."""
    index = getattr(ti, "map_index", None)
    return -1 if index is None else int(index)


def alert_key(ti: Any) -> str:
    """The outbox key of a failed task's alert: one mail per run, task, map index and try."""
    return f"{ti.run_id}.{ti.task_id}.{_map_index(ti)}.try{getattr(ti, 'try_number', None) or 0}"


def _own_error(exception: BaseException | None) -> MetAuditError | None:
    """The project's own error in an exception's chain of causes, if any."""
    seen = 0
    while exception is not None and seen < 10:
        if isinstance(exception, MetAuditError):
            return exception
        exception, seen = exception.__cause__, seen + 1
    return None


def alert_text(
    ti: Any,
    practice_id: str | None,
    as_of: date,
    exception: BaseException | None,
    run_url: str | None,
) -> tuple[str, str]:
    """Subject and text of an admin alert: runs, tasks, practices and the error's kind only.

    The project's own errors name tables, settings, files and ids, so their message
    is included; any other error's message could quote a record's values (a
    database driver's error carries its parameters), so only its type is.
    """
    who = f" for practice {practice_id}" if practice_id else ""
    subject = f"{ti.task_id} failed{who} (run {ti.run_id})"
    own = _own_error(exception)
    if exception is None:
        error = "task failed (no error was handed to the callback)"
    elif own is not None:
        # Ours, or Airflow's wrapper of ours (the finish task raises AirflowFailException
        # from PracticesFailedError): its message names practices and stages only.
        error = describe_error(own)
    else:
        error = f"{type(exception).__name__} (its message is in the task log)"
    lines = [
        f"Task {ti.task_id} of DAG {ti.dag_id} failed and will not be retried.",
        "",
        f"Run:      {ti.run_id}",
        f"As of:    {as_of.isoformat()}",
        f"Practice: {practice_id or _group_of(ti) or '(the whole run)'}",
        f"Try:      {getattr(ti, 'try_number', None) or '?'}",
        f"Error:    {error}",
    ]
    log_url = getattr(ti, "log_url", None)
    if run_url:
        lines.append(f"Run page: {run_url}")
    if isinstance(log_url, str) and log_url:
        lines.append(f"Task log: {log_url}")
    lines += [
        "",
        "Other practices are not affected by a practice's failure. Rerun the date (and the "
        "practice) from the DAG's trigger form once the cause is fixed.",
    ]
    return subject, "\n".join(lines) + "\n"


def _mail_alert(
    context: Mapping[str, Any], practice_id: str | None, as_of: date | None, alert_id: int | None
) -> None:
    """Mail the alert to the admins (SendGrid with a key, else the outbox folder) and mark
    the alert notified; logs, never raises."""
    ti = context["ti"]
    try:
        from metaudit import mail
        from metaudit.spec.settings import Settings

        try:
            settings = Settings.load(None)
            mail_config = mail.load_mail_config(settings)
        except (MetAuditError, OSError, ValueError):
            # A broken configuration must not silence the alert: the outbox still gets it.
            log.exception("the email configuration is unusable; the alert goes to the outbox")
            settings, mail_config = None, mail.MailConfig()
        api_key, host = connections.sendgrid_credentials()
        if api_key and not (mail_config.admins and mail_config.sender):
            log.warning(
                "email.admins or email.sender is not configured: the alert is written to "
                "the outbox folder %s only",
                outbox_dir(),
            )
            api_key = None
        day = as_of or _run_date(context)
        base = (
            connections.airflow_base_url(settings, mail_config)
            if settings is not None
            else mail_config.airflow_base_url
        )
        subject, text = alert_text(
            ti,
            practice_id,
            day,
            context.get("exception"),
            run_url(base, ti.run_id, ti.dag_id),
        )
        result = mail.alert_admins_email(
            subject,
            text,
            mail_config,
            key=alert_key(ti),
            as_of=day.isoformat(),
            api_key=api_key,
            host=host,
            outbox_dir=outbox_dir(),
        )
        log.info("alert %s: %s (%s)", result.name, result.status, result.eml_path)
        if alert_id is not None and result.status in ("sent", "written", "already_sent"):
            _mark_alert_notified(alert_id, ti)
    except _ALERT_ERRORS:
        log.exception("could not mail the alert for run %s task %s", ti.run_id, ti.task_id)


def _mark_alert_notified(alert_id: int, ti: Any = None) -> None:
    """Set the alert's ``notified_at``: the mail went out (or, without a key, to the outbox).

    A group's task records each failed practice's alert itself (task id
    ``<task>.<stage>``, :mod:`metaudit.pipeline.chunk`) and the task's one mail names
    them all: those are marked too."""
    from metaudit.results import session

    try:
        with session(connections.results_url()) as store:
            store.mark_alert_notified(alert_id)
            if ti is None:
                return
            for row in store.alerts(ti.run_id):
                if (
                    row.get("notified_at") is None
                    and str(row.get("task_id", "")).startswith(f"{ti.task_id}.")
                    and row.get("map_index") == _map_index(ti)
                    and row.get("try_number") == getattr(ti, "try_number", None)
                ):
                    store.mark_alert_notified(int(row["id"]))
    except with_database_errors():
        log.exception("could not mark alert %s notified", alert_id)


def resend_pending_alerts(
    store_url: str,
    as_of: date,
    *,
    api_key: str,
    host: str | None = None,
    config: str | None = None,
) -> list[str]:
    """Post the admin alerts SendGrid refused or could not take, of ``as_of`` and the
    ``email.retry_earlier_days`` days before (:func:`metaudit.mail.post_pending_alerts`),
    and mark those that went out notified. Returns the errors of those still pending.

    The run's last task calls it: an alert is mailed once, from a failing task's
    callback, and would otherwise never reach the admins after a refusal.
    """
    from types import SimpleNamespace

    from metaudit import mail
    from metaudit.results import session
    from metaudit.spec.settings import Settings

    mail_config = mail.load_mail_config(Settings.load(config))
    sent, failed = mail.post_pending_alerts(
        mail_config, as_of=as_of.isoformat(), api_key=api_key, host=host, outbox_dir=outbox_dir()
    )
    if sent:
        keys = {result.name for result in sent}
        with session(store_url) as store:
            for row in store.alerts(notified=False):
                if alert_key(SimpleNamespace(**row)) in keys:
                    store.mark_alert_notified(int(row["id"]))
        log.info("posted %d pending admin alert(s): %s", len(sent), sorted(keys))
    for exc in failed:
        log.error("an admin alert is still pending in the outbox: %s", exc)
    return [str(exc) for exc in failed]


def _run_date(context: Mapping[str, Any]) -> date:
    """The as-of date an alert is filed under when the run has none yet (planning failed):
    the form's as_of, else the run's date, else today."""
    params = context.get("params") or {}
    try:
        if params.get("as_of"):
            return date.fromisoformat(str(params["as_of"]))
    except ValueError:
        pass
    dag_run = context.get("dag_run")
    when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    return when.date() if isinstance(when, datetime) else _now().date()


def with_database_errors() -> tuple[type[BaseException], ...]:
    """The alert errors plus SQLAlchemy's (imported late: the DAG file imports this module)."""
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, *_ALERT_ERRORS)


def _practice_of(context: Mapping[str, Any]) -> str | None:
    """The practice a failed task worked on: its ``practice_id`` argument, or the one
    practice of an ``audit`` task's group (a group of several names none: the task
    recorded each failed practice itself)."""
    task = context.get("task")
    kwargs = getattr(task, "op_kwargs", None) or {}
    for value in kwargs.values():
        if not isinstance(value, Mapping):
            continue
        if isinstance(value.get("practice_id"), str):
            return str(value["practice_id"])
        group = value.get("practices")
        if isinstance(group, list):
            only = group[0] if len(group) == 1 and isinstance(group[0], Mapping) else {}
            practice_id = only.get("practice_id")
            return practice_id if isinstance(practice_id, str) else None
    # An audit task of one practice renders that practice's id as its map index; a group
    # renders "FIRST..LAST (N)" (metaudit.pipeline.chunk.chunk_work), which names none.
    rendered = getattr(context.get("ti"), "rendered_map_index", None)
    if isinstance(rendered, str) and rendered and " (" not in rendered:
        return rendered
    return None


def _now() -> datetime:
    return datetime.now(UTC)
