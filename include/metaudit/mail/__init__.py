"""The morning email: content from a practice's digest, a durable outbox, SendGrid.

- :mod:`metaudit.mail.config`: the ``email`` settings and each practice's
  compliance leads, validated.
- :mod:`metaudit.mail.content`: pure functions from a digest to the subject,
  HTML and plain text (:func:`build_email`).
- :mod:`metaudit.mail.eml`: a message as an ``.eml`` file.
- :mod:`metaudit.mail.outbox`: one durable record per (practice, as-of date).
- :mod:`metaudit.mail.sendgrid_client`: the v3 payload and the posting client
  (timeouts, retries).
- :mod:`metaudit.mail.notify`: what the DAG calls, :func:`notify_practice`,
  :func:`alert_admins_email` and :func:`post_pending_alerts`.
"""

from __future__ import annotations

from metaudit.mail.config import (
    MailConfig,
    PracticeMail,
    load_mail_config,
    mail_config_from_sections,
)
from metaudit.mail.content import OutgoingEmail, build_email, build_subject
from metaudit.mail.errors import (
    MailConfigError,
    MailDeliveryError,
    MailDeliveryUncertainError,
    MailRejectedError,
    MailUnavailableError,
    OutboxError,
)
from metaudit.mail.notify import (
    DeliveryResult,
    alert_admins_email,
    credentials_from_connection,
    notify_practice,
    post_pending_alerts,
)

__all__ = [
    "DeliveryResult",
    "MailConfig",
    "MailConfigError",
    "MailDeliveryError",
    "MailDeliveryUncertainError",
    "MailRejectedError",
    "MailUnavailableError",
    "OutboxError",
    "OutgoingEmail",
    "PracticeMail",
    "alert_admins_email",
    "build_email",
    "build_subject",
    "credentials_from_connection",
    "load_mail_config",
    "mail_config_from_sections",
    "notify_practice",
    "post_pending_alerts",
]
