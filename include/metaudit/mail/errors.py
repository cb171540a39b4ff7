"""What can go wrong on the way from a digest to a compliance lead's inbox.

Each error names the practice or setting and what to do; none ever carries the
SendGrid API key.
"""

from __future__ import annotations

from metaudit.errors import MetAuditError, SettingsError


class MailConfigError(SettingsError):
    """The ``email`` part of the configuration is invalid or incomplete for sending."""


class MailDeliveryError(MetAuditError):
    """SendGrid did not accept a message; the outbox keeps it ``pending`` for the next run.

    ``status`` is SendGrid's HTTP status (None when no answer came back),
    ``detail`` SendGrid's own error message, ``attempts`` the HTTP attempts made.
    """

    def __init__(
        self, message: str, *, status: int | None = None, detail: str = "", attempts: int = 0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.attempts = attempts


class MailRejectedError(MailDeliveryError):
    """SendGrid refused the request (400, 401, 403, 413 ...): retrying cannot help.

    A person must act (API key, verified sender, recipients, size); the DAG
    should fail the task without retries.
    """


class MailUnavailableError(MailDeliveryError):
    """SendGrid stayed unavailable (429, 5xx, timeouts) through every attempt.

    Transient: a later try (an Airflow retry, the next run) may succeed.
    """


class MailDeliveryUncertainError(MetAuditError):
    """A previous run stopped while posting this message: SendGrid may have delivered it.

    The outbox does not post it again on its own (SendGrid has no idempotency
    key, so a second post could mean a second email). Check SendGrid's activity
    feed for the attempt id named in the message, then either mark the task
    successful or rerun with ``resend_email``.
    """

    def __init__(self, message: str, *, attempt_id: str | None) -> None:
        super().__init__(message)
        self.attempt_id = attempt_id


class OutboxError(MetAuditError):
    """The outbox folder holds a record that cannot be read, or a lock cannot be taken."""
