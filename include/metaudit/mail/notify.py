"""What the DAG calls: deliver a practice's morning email (or an admin alert) exactly once.

:func:`notify_practice` builds the email from the digest, then, under the
record's lock:

- with no API key (the embedded default), writes the .eml into the outbox
  folder and marks the record ``written``: nothing leaves the machine;
- with an API key, posts it through SendGrid unless the record says it was
  already sent (``resend`` posts it again).

Nothing twice: the record is saved as ``sending``, with a fresh attempt id,
*before* the post, and as ``sent`` after SendGrid's 200/202. A run that finds
``sending`` knows an earlier run stopped in between (killed, crashed, out of
memory) and cannot tell whether SendGrid accepted the post: SendGrid has no
idempotency key to ask with. It does not post again. It marks the record
``uncertain`` and raises :class:`MailDeliveryUncertainError`, naming the
attempt id, which travels with the message as the custom arg
``outbox_attempt`` so an admin finds it in SendGrid's activity feed. A
duplicate alert is a nuisance, but a silent second post would break the
promise the outbox makes; a person decides (``resend_email``).

Nothing lost: when SendGrid refuses or stays unavailable, the record goes back
to ``pending`` with the error, the call raises (the task fails loudly), and the
next run posts it: a rerun of the same date rebuilds and posts it, and each
night's run also posts the practice's pending mails of the previous
``retry_earlier_days`` days as they were built.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from metaudit.mail.config import DEFAULT_SENDER, MailConfig
from metaudit.mail.content import OutgoingEmail, build_alert, build_email
from metaudit.mail.eml import render_eml
from metaudit.mail.errors import (
    MailConfigError,
    MailDeliveryError,
    MailDeliveryUncertainError,
    MailUnavailableError,
)
from metaudit.mail.outbox import (
    ALERT,
    DIGEST,
    MAX_ERRORS_KEPT,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    WRITTEN,
    Outbox,
    OutboxRecord,
)
from metaudit.results.digest import PracticeDigest

log = logging.getLogger(__name__)

ATTEMPT_ARG = "outbox_attempt"


@dataclass(frozen=True)
class DeliveryResult:
    """What one call did with one message (ids and paths only: fit for XCom).

    ``status``: ``sent`` (SendGrid accepted it now), ``written`` (.eml written,
    no API key), ``already_sent`` (an earlier run sent it), ``skipped``
    (nothing to report, all-clear off), ``disabled`` (mail off for the practice).
    ``earlier`` holds the results of earlier dates' pending mails posted too.
    """

    kind: str
    name: str
    as_of: str
    status: str
    eml_path: str | None = None
    record_path: str | None = None
    message_id: str | None = None
    attempts: int = 0
    recipients: int = 0
    subject: str | None = None
    earlier: tuple[DeliveryResult, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for XCom and logs (no addresses, no content)."""
        data = asdict(self)
        data["earlier"] = [e.to_dict() for e in self.earlier]
        return data


_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


def credentials_from_connection(conn: Any) -> tuple[str | None, str | None]:
    """``(api_key, host)`` from the Airflow connection ``sendgrid_default``.

    The key is the connection's password. Its host, when set, replaces the
    SendGrid API address: a full address (``http://127.0.0.1:8025``) is used
    as it is; a bare host name gets the connection's schema as its scheme
    (``http``/``https``, as Airflow's HTTP connections do), else ``http`` for a
    loopback address (a local test double) and ``https`` otherwise, and the
    connection's port. An empty password means no key: the embedded outbox.
    """
    password = (getattr(conn, "password", None) or "").strip() or None
    host = (getattr(conn, "host", None) or "").strip()
    if not host:
        return password, None
    port = getattr(conn, "port", None)
    if "://" not in host:
        schema = (getattr(conn, "schema", None) or "").strip().lower()
        loopback = host.split(":")[0] in _LOOPBACK or host.startswith("127.")
        scheme = schema if schema in ("http", "https") else ("http" if loopback else "https")
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if port and parts.port is None:
        host = f"{parts.scheme}://{parts.netloc}:{int(port)}{parts.path}"
    return password, host.rstrip("/")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Context:
    """What one delivery call needs besides the message."""

    outbox: Outbox
    mailer: Any | None  # SendGridMailer, or None for the embedded outbox
    sandbox_mode: bool
    resend: bool
    now: Callable[[], datetime]


def _stamp(ctx: _Context) -> str:
    return ctx.now().astimezone(UTC).isoformat(timespec="seconds")


def _mailer(
    config: MailConfig,
    api_key: str | None,
    host: str | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Any | None:
    if not api_key:
        return None
    from metaudit.mail.sendgrid_client import SendGridMailer

    return SendGridMailer(
        api_key,
        host,
        timeout=config.timeout_seconds,
        max_attempts=config.max_attempts,
        backoff=config.backoff_seconds,
        max_backoff=config.max_backoff_seconds,
        max_rate_limit_wait=config.max_rate_limit_wait_seconds,
        sleep=sleep,
        clock=clock,
    )


def _result(
    record: OutboxRecord, ctx: _Context, status: str, *, attempts: int = 0
) -> DeliveryResult:
    paths = ctx.outbox.paths(record.kind, record.as_of, record.name)
    message = record.message or {}
    return DeliveryResult(
        kind=record.kind,
        name=record.name,
        as_of=record.as_of,
        status=status,
        eml_path=str(paths.eml) if record.eml else None,
        record_path=str(paths.record),
        message_id=(record.sent or {}).get("message_id"),
        attempts=attempts,
        recipients=len(message.get("to") or ()),
        subject=message.get("subject"),
    )


def _uncertain(record: OutboxRecord, ctx: _Context) -> MailDeliveryUncertainError:
    attempt = record.attempt or {}
    what = f"practice {record.name}" if record.kind == DIGEST else f"alert {record.name!r}"
    return MailDeliveryUncertainError(
        f"the email of {what} as of {record.as_of} may already have been delivered: a run "
        f"stopped while posting it to SendGrid (attempt {attempt.get('id')}, started "
        f"{attempt.get('started_at')}). It is not posted again on its own. Look for custom arg "
        f"{ATTEMPT_ARG}={attempt.get('id')} in SendGrid's Email Activity; then mark this task "
        "successful, or rerun with resend_email to post it again. Record: "
        f"{ctx.outbox.paths(record.kind, record.as_of, record.name).record}",
        attempt_id=attempt.get("id"),
    )


def _post(record: OutboxRecord, ctx: _Context) -> DeliveryResult:
    """Post the record's message: ``sending`` first, ``sent`` or back to ``pending`` after."""
    from metaudit.mail.sendgrid_client import to_sendgrid_payload

    assert ctx.mailer is not None and record.message is not None
    attempt_id = uuid.uuid4().hex
    message = OutgoingEmail.from_dict(record.message)
    payload = to_sendgrid_payload(
        message, sandbox_mode=ctx.sandbox_mode, extra_custom_args={ATTEMPT_ARG: attempt_id}
    )
    record.state = SENDING
    record.attempt = {"id": attempt_id, "started_at": _stamp(ctx)}
    record.updated_at = record.attempt["started_at"]
    ctx.outbox.save(record)
    try:
        outcome = ctx.mailer.send(payload)
    except MailDeliveryError as exc:
        # SendGrid answered with a refusal, or never answered: nothing was accepted.
        record.state = PENDING
        record.errors = [
            *record.errors,
            {"at": _stamp(ctx), "attempt_id": attempt_id, "status": exc.status, "error": str(exc)},
        ][-MAX_ERRORS_KEPT:]
        record.attempt = None
        record.updated_at = _stamp(ctx)
        ctx.outbox.save(record)
        raise
    delivery = {
        "attempt_id": attempt_id,
        "message_id": outcome.message_id,
        "http_status": outcome.status,
        "attempts": outcome.attempts,
        "at": _stamp(ctx),
        "sandbox_mode": ctx.sandbox_mode,
    }
    record.state = SENT
    record.sent = delivery
    record.deliveries = [*record.deliveries, delivery]
    record.attempt = None
    record.updated_at = delivery["at"]
    ctx.outbox.save(record)
    log.info(
        "%s %s as of %s: sent (SendGrid message id %s)",
        record.kind,
        record.name,
        record.as_of,
        outcome.message_id,
    )
    return _result(record, ctx, "sent", attempts=outcome.attempts)


def _deliver(
    kind: str, name: str, as_of: str, message: OutgoingEmail | None, ctx: _Context
) -> DeliveryResult:
    """Bring one record to its goal state, under its lock."""
    outbox = ctx.outbox
    with outbox.locked(kind, as_of, name):
        record = outbox.load(kind, as_of, name)
        now = _stamp(ctx)
        if record is None:
            record = OutboxRecord(
                kind=kind, name=name, as_of=as_of, state=PENDING, created_at=now, updated_at=now
            )
        if not ctx.resend:
            if record.state == SENT:
                log.info("%s %s as of %s: already sent; not sent again", kind, name, as_of)
                return _result(record, ctx, "already_sent")
            if record.state in (SENDING, UNCERTAIN):
                record.state = UNCERTAIN
                record.updated_at = now
                outbox.save(record)
                raise _uncertain(record, ctx)
        if message is None:
            if record.state in (SENT, SENDING, UNCERTAIN):
                # Nothing to (re)send now; the record of what went out stays as it is.
                return _result(record, ctx, "skipped")
            record.state = SKIPPED
            record.message = None
            record.updated_at = now
            outbox.remove_eml(record)
            outbox.save(record)
            log.info("%s %s as of %s: nothing to report; no email", kind, name, as_of)
            return _result(record, ctx, "skipped")
        # A rerun rebuilds the content: the digest of a rerun is the current truth.
        record.message = message.to_dict()
        record.updated_at = now
        outbox.write_eml(record, render_eml(message, date=ctx.now()))
        if ctx.mailer is None:
            record.state = WRITTEN
            path = outbox.save(record)
            log.info("%s %s as of %s: written to %s", kind, name, as_of, path.with_suffix(".eml"))
            return _result(record, ctx, "written")
        record.state = PENDING
        outbox.save(record)
        return _post(record, ctx)


def _post_pending(
    kind: str, records: Iterable[tuple[str, str]], ctx: _Context
) -> tuple[list[DeliveryResult], list[Exception]]:
    """Post the messages of the ``(as_of, name)`` records that are still pending, each
    under its lock, as they were built; what SendGrid still refuses stays pending."""
    done: list[DeliveryResult] = []
    failed: list[Exception] = []
    for day, name in records:
        if not ctx.outbox.paths(kind, day, name).record.exists():
            continue
        with ctx.outbox.locked(kind, day, name):
            record = ctx.outbox.load(kind, day, name)
            if record is None or record.state != PENDING or record.message is None:
                continue
            log.info("%s %s: posting the pending email of %s", kind, name, day)
            try:
                done.append(_post(record, ctx))
            except MailDeliveryError as exc:
                failed.append(exc)
    return done, failed


def _days_before(as_of: str, days: int, *, including: bool = False) -> list[str]:
    """The ``days`` dates before ``as_of`` (and ``as_of`` itself), oldest first."""
    today = date.fromisoformat(as_of)
    return [(today - timedelta(days=back)).isoformat() for back in range(days, -int(including), -1)]


def _retry_earlier(
    practice_id: str, as_of: str, days: int, ctx: _Context
) -> tuple[list[DeliveryResult], list[Exception]]:
    """Post the practice's mails of the previous ``days`` days that are still pending."""
    return _post_pending(DIGEST, ((day, practice_id) for day in _days_before(as_of, days)), ctx)


def post_pending_alerts(
    mail_config: MailConfig,
    *,
    as_of: str,
    api_key: str,
    host: str | None = None,
    outbox_dir: str | Path,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    now: Callable[[], datetime] = _utcnow,
) -> tuple[list[DeliveryResult], list[Exception]]:
    """Post the admin alerts of ``as_of`` and the ``retry_earlier_days`` days before it
    that SendGrid refused or could not take (still ``pending`` in the outbox).

    An alert is mailed from a failing task's callback, once: without this, an alert
    SendGrid refused (a wrong key, a sender not verified yet) would never reach the
    admins. Returns what was sent and what failed again (those stay pending).
    """
    ctx = _Context(
        Outbox(outbox_dir),
        _mailer(mail_config, api_key, host, sleep, clock),
        mail_config.sandbox_mode,
        False,
        now,
    )
    records = [
        (day, name)
        for day in _days_before(as_of, max(mail_config.retry_earlier_days, 0), including=True)
        for name in ctx.outbox.names(ALERT, day)
    ]
    return _post_pending(ALERT, records, ctx)


def notify_practice(
    digest: PracticeDigest,
    mail_config: MailConfig,
    *,
    api_key: str | None,
    host: str | None = None,
    outbox_dir: str | Path,
    resend: bool = False,
    run_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    now: Callable[[], datetime] = _utcnow,
) -> DeliveryResult:
    """Deliver the morning email of one practice and as-of date, once.

    ``api_key`` and ``host`` come from the Airflow connection ``sendgrid_default``
    (password and host); with no key the email goes to the local outbox folder
    only. ``resend`` posts it again even when an earlier run sent it.

    Raises :class:`MailConfigError` (no recipients or no sender for SendGrid),
    :class:`MailRejectedError`, :class:`MailUnavailableError` (the mail stays
    pending for the next run) and :class:`MailDeliveryUncertainError`.
    """
    practice = mail_config.for_practice(digest.practice_id)
    outbox = Outbox(outbox_dir)
    if not practice.enabled:
        log.info("practice %s: email switched off in the configuration", digest.practice_id)
        return DeliveryResult(DIGEST, digest.practice_id, digest.as_of, "disabled")
    if api_key:
        if not practice.recipients:
            raise MailConfigError(
                f"practices.{digest.practice_id}.compliance_leads: no recipients, so the morning "
                f"email of practice {digest.practice_id} cannot be sent (or set "
                f"practices.{digest.practice_id}.email.enabled: false)"
            )
        if not mail_config.sender:
            raise MailConfigError("email.sender: a SendGrid verified sender is needed to send mail")
    message = build_email(
        digest,
        practice.recipients,
        airflow_base_url=mail_config.airflow_base_url,
        packets_base_url=mail_config.packets_url_base,
        sender=mail_config.sender or DEFAULT_SENDER,
        all_clear=mail_config.all_clear_for(digest.practice_id),
        practice_name=practice.name,
        run_id=run_id,
        reply_to=mail_config.reply_to,
        categories=mail_config.categories,
        max_records_per_rule=mail_config.max_records_per_rule,
    )
    ctx = _Context(
        outbox,
        _mailer(mail_config, api_key, host, sleep, clock),
        mail_config.sandbox_mode,
        resend,
        now,
    )
    result = _deliver(DIGEST, digest.practice_id, digest.as_of, message, ctx)
    if ctx.mailer is None or mail_config.retry_earlier_days <= 0:
        return result
    earlier, failed = _retry_earlier(
        digest.practice_id, digest.as_of, mail_config.retry_earlier_days, ctx
    )
    result = replace(result, earlier=tuple(earlier))
    if failed:
        raise MailUnavailableError(
            f"practice {digest.practice_id}: {len(failed)} earlier email(s) still pending: "
            + "; ".join(str(e) for e in failed),
            attempts=sum(getattr(e, "attempts", 0) for e in failed),
        )
    return result


def alert_admins_email(
    subject: str,
    text: str,
    mail_config: MailConfig,
    *,
    key: str,
    as_of: str,
    api_key: str | None,
    host: str | None = None,
    outbox_dir: str | Path,
    resend: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    now: Callable[[], datetime] = _utcnow,
) -> DeliveryResult:
    """Deliver a failure alert to ``email.admins``, once per ``key`` (e.g. the run id).

    The same outbox path as the morning email: ``written`` without an API key,
    posted through SendGrid with one. ``text`` must name runs, tasks and
    practices only: it goes out as written (escaped in the HTML part).
    """
    if api_key:
        if not mail_config.admins:
            raise MailConfigError("email.admins: no admin addresses, so the alert cannot be sent")
        if not mail_config.sender:
            raise MailConfigError("email.sender: a SendGrid verified sender is needed to send mail")
    message = build_alert(
        subject,
        text,
        mail_config.admins,
        sender=mail_config.sender or DEFAULT_SENDER,
        as_of=as_of,
        alert_key=key,
        reply_to=mail_config.reply_to,
        categories=mail_config.categories,
    )
    ctx = _Context(
        Outbox(outbox_dir),
        _mailer(mail_config, api_key, host, sleep, clock),
        mail_config.sandbox_mode,
        resend,
        now,
    )
    return _deliver(ALERT, key, as_of, message, ctx)
