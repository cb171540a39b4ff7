"""Posting a message through the SendGrid v3 Mail Send API, with timeouts and bounded retries.

Build and post are split: :func:`to_sendgrid_payload` is a pure function that
turns an :class:`OutgoingEmail` into the exact v3 JSON (through the ``sendgrid``
package's helper classes); :class:`SendGridMailer` posts it with the real
``SendGridAPIClient``.

The client has no timeout and no retries of its own. Here every call has a
timeout, and:

- 200 and 202 mean accepted (sandbox mode answers 200);
- 429 waits until ``X-RateLimit-Reset`` (or ``Retry-After``) and tries again,
  unless that is further away than ``max_rate_limit_wait`` seconds;
- 5xx, timeouts and connection errors back off exponentially and try again;
- anything else (400, 401, 403, 413 ...) is not retried: a person must fix the
  key, the sender or the message;
- after ``max_attempts`` the call gives up with :class:`MailUnavailableError`.

The API key never appears in an error or a log line: ``python_http_client``
logs the request headers (the bearer token) at DEBUG, so its logger is held at
INFO while a mailer exists.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from metaudit.mail.config import split_address
from metaudit.mail.content import OutgoingEmail
from metaudit.mail.errors import MailRejectedError, MailUnavailableError

log = logging.getLogger(__name__)

SENDGRID_API = "https://api.sendgrid.com"
ACCEPTED = frozenset({200, 202})
# Seconds added to X-RateLimit-Reset: the window opens at that second, not before.
RATE_LIMIT_MARGIN = 1.0


def _recipient(value: str) -> tuple[str, str | None]:
    """(address, name) for SendGrid's email object: the name as plain text, None when absent.

    SendGrid's JSON ``name`` is not a mail header: an RFC 2047 encoded word there would
    reach the inbox as ``=?utf-8?b?...?=``, so any such word is decoded first.
    """
    name, address = split_address(value)
    return address, (name or None)


def to_sendgrid_payload(
    message: OutgoingEmail,
    *,
    sandbox_mode: bool = False,
    extra_custom_args: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The v3 ``/mail/send`` request body of a message.

    One personalization holds every recipient (the practice's compliance
    leads see each other, as on a team list). Click and open tracking are off:
    SendGrid would otherwise rewrite the links to the Airflow UI through its
    own domain and add a tracking pixel, neither of which an internal
    compliance email should carry.
    """
    from sendgrid.helpers.mail import (
        Category,
        ClickTracking,
        CustomArg,
        From,
        Mail,
        MailSettings,
        OpenTracking,
        ReplyTo,
        SandBoxMode,
        To,
        TrackingSettings,
    )

    if not message.to:
        raise ValueError("a message for SendGrid needs at least one recipient")
    sender, sender_name = _recipient(message.sender)
    mail = Mail(
        from_email=From(sender, sender_name),
        to_emails=[To(*_recipient(r)) for r in message.to],
        subject=message.subject,
        plain_text_content=message.text,
        html_content=message.html,
    )
    if message.reply_to:
        mail.reply_to = ReplyTo(*_recipient(message.reply_to))
    if message.categories:
        mail.category = [Category(c) for c in message.categories]
    args = {**message.custom_args, **(extra_custom_args or {})}
    if args:
        mail.custom_arg = [CustomArg(k, str(v)) for k, v in sorted(args.items())]
    mail.tracking_settings = TrackingSettings(
        click_tracking=ClickTracking(False, False), open_tracking=OpenTracking(False)
    )
    if sandbox_mode:
        settings = MailSettings()
        settings.sandbox_mode = SandBoxMode(True)
        mail.mail_settings = settings
    return dict(mail.get())


@dataclass(frozen=True)
class SendOutcome:
    """SendGrid accepted the message: its status, message id and the attempts it took."""

    status: int
    message_id: str | None
    attempts: int


def _sendgrid_detail(body: Any) -> str:
    """SendGrid's own error text (``{"errors": [{"field", "message"}]}``), briefly."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return text[:300]
    parts = []
    for err in errors[:5]:
        if isinstance(err, dict):
            msg = str(err.get("message") or "").strip()
            fld = err.get("field")
            parts.append(f"{fld}: {msg}" if fld else msg)
    return "; ".join(p for p in parts if p)[:500]


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    return str(value).strip() if value is not None else None


class SendGridMailer:
    """Posts v3 payloads through ``sendgrid.SendGridAPIClient`` with timeouts and retries.

    ``host`` replaces the SendGrid API address (a local test double, or an EU
    regional address); ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        api_key: str,
        host: str | None = None,
        *,
        timeout: float = 20.0,
        max_attempts: int = 4,
        backoff: float = 2.0,
        max_backoff: float = 60.0,
        max_rate_limit_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from sendgrid import SendGridAPIClient

        if not api_key or not api_key.strip():
            raise ValueError("a SendGrid API key is needed to post mail")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        _quiet_http_client_debug()
        self.host = (host or SENDGRID_API).rstrip("/")
        self._secret = api_key
        self._client = SendGridAPIClient(api_key=api_key, host=self.host)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_rate_limit_wait = max_rate_limit_wait
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"SendGridMailer(host={self.host!r})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[api key]") if self._secret else text

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)

    def _rate_limit_wait(self, headers: Any, attempt: int) -> float:
        """Seconds until SendGrid's rate-limit window reopens (its reset header)."""
        retry_after = _header(headers, "Retry-After")
        reset = _header(headers, "X-RateLimit-Reset")
        try:
            if reset is not None:
                value = float(reset)
                # SendGrid sends a Unix time; a small number is read as seconds from now.
                wait = value - self._clock() if value > 1e9 else value
                return max(wait, 0.0) + RATE_LIMIT_MARGIN
            if retry_after is not None:
                return max(float(retry_after), 0.0)
        except ValueError:
            log.warning(
                "unreadable rate-limit header (reset %r, retry-after %r)", reset, retry_after
            )
        return self._backoff(attempt)

    def send(self, payload: dict[str, Any]) -> SendOutcome:
        """Post one message; return when SendGrid accepted it, raise when it did not.

        Raises :class:`MailRejectedError` at once for a status retrying cannot
        fix, and :class:`MailUnavailableError` after the last attempt.
        """
        from python_http_client.exceptions import HTTPError

        last = ""
        last_status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._client.client.mail.send.post(
                    request_body=payload, timeout=self.timeout
                )
            except HTTPError as exc:
                status = int(exc.status_code)
                detail = self._scrub(_sendgrid_detail(exc.body))
                last, last_status = f"SendGrid answered {status}: {detail or exc.reason}", status
                if status == 429:
                    wait = self._rate_limit_wait(exc.headers, attempt)
                    if wait > self.max_rate_limit_wait:
                        raise MailUnavailableError(
                            f"{last}; rate limited for {wait:.0f} s more, longer than the "
                            f"{self.max_rate_limit_wait:.0f} s this task waits (attempt {attempt})",
                            status=status,
                            detail=detail,
                            attempts=attempt,
                        ) from None
                elif 500 <= status < 600:
                    wait = self._backoff(attempt)
                else:
                    raise MailRejectedError(
                        f"{last} ({_status_hint(status)}); not retried",
                        status=status,
                        detail=detail,
                        attempts=attempt,
                    ) from None
            except (
                TimeoutError,
                urllib.error.URLError,
                ConnectionError,
                http.client.HTTPException,
            ) as exc:
                # No answer: connection refused or reset, or no response within the timeout.
                reason = getattr(exc, "reason", None) or exc
                last, last_status = f"no answer from {self.host}: {self._scrub(str(reason))}", None
                wait = self._backoff(attempt)
            else:
                status = int(response.status_code)
                message_id = _header(response.headers, "X-Message-Id")
                if status not in ACCEPTED:
                    log.warning("SendGrid answered %s; taken as accepted", status)
                log.info(
                    "SendGrid accepted the message (status %s, id %s, attempt %d)",
                    status,
                    message_id,
                    attempt,
                )
                return SendOutcome(status=status, message_id=message_id, attempts=attempt)
            if attempt < self.max_attempts:
                log.warning(
                    "%s; attempt %d of %d, trying again in %.1f s",
                    last,
                    attempt,
                    self.max_attempts,
                    wait,
                )
                self._sleep(wait)
        raise MailUnavailableError(
            f"{last}; gave up after {self.max_attempts} attempts",
            status=last_status,
            detail=last,
            attempts=self.max_attempts,
        )


def _status_hint(status: int) -> str:
    return {
        400: "the request is malformed: check the sender and recipient addresses",
        401: "the API key in connection sendgrid_default is wrong or revoked",
        403: "the API key lacks the Mail Send permission, or the sender is not verified",
        413: "the message is too large",
    }.get(status, "SendGrid refused the request")


def _quiet_http_client_debug() -> None:
    # python_http_client logs every request's headers, the bearer token included, at DEBUG.
    # Its own level, not the effective one: a root logger turned to DEBUG later must not leak it.
    for name in ("python_http_client", "python_http_client.client"):
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
