"""An :class:`OutgoingEmail` as an RFC 5322 ``.eml`` file that opens in any mail program."""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from metaudit.mail.content import OutgoingEmail

MESSAGE_ID_DOMAIN = "met-audit.invalid"


def to_email_message(message: OutgoingEmail, *, date: datetime) -> EmailMessage:
    """A multipart/alternative message: the plain text first, the HTML preferred.

    With no recipients (no compliance lead configured) the To header reads
    ``undisclosed-recipients:;``, an empty group that mail programs accept.
    """
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = message.subject
    msg["From"] = message.sender
    msg["To"] = ", ".join(message.to) if message.to else "undisclosed-recipients:;"
    if message.reply_to:
        msg["Reply-To"] = message.reply_to
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = make_msgid(idstring="metaudit", domain=MESSAGE_ID_DOMAIN)
    for name, value in sorted(message.custom_args.items()):
        # Visible in the .eml as in SendGrid's activity feed; ids and dates only.
        header = "X-MET-Audit-" + "-".join(w.capitalize() for w in name.split("_"))
        msg[header] = value
    msg.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def render_eml(message: OutgoingEmail, *, date: datetime) -> bytes:
    """The bytes of the .eml file (CRLF line ends, as on the wire)."""
    return to_email_message(message, date=date).as_bytes(policy=policy.SMTP)
