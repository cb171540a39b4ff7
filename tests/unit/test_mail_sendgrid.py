"""The SendGrid side without the network: the exact v3 payload and the retry arithmetic."""

from __future__ import annotations

import logging
from email.message import Message

import pytest

from metaudit.mail.content import OutgoingEmail
from metaudit.mail.sendgrid_client import SendGridMailer, _sendgrid_detail, to_sendgrid_payload

MESSAGE = OutgoingEmail(
    subject="[MET Audit] Riverside: 1 new critical, 1 open, 0 due this week (2026-03-31)",
    html="<p>html</p>",
    text="text\n",
    to=("Jo Lead <jo@riverside.example>", "kim@riverside.example"),
    sender="MET Audit <audit@example.org>",
    categories=("met-audit", "morning-report"),
    custom_args={"practice_id": "PR0001", "as_of": "2026-03-31", "kind": "morning-report"},
    reply_to="desk@example.org",
)


def test_payload_is_the_v3_mail_send_body() -> None:
    payload = to_sendgrid_payload(MESSAGE, extra_custom_args={"outbox_attempt": "abc"})
    assert payload == {
        "from": {"name": "MET Audit", "email": "audit@example.org"},
        "subject": MESSAGE.subject,
        "personalizations": [
            {
                "to": [
                    {"name": "Jo Lead", "email": "jo@riverside.example"},
                    {"email": "kim@riverside.example"},
                ]
            }
        ],
        "content": [
            {"type": "text/plain", "value": "text\n"},
            {"type": "text/html", "value": "<p>html</p>"},
        ],
        "categories": ["morning-report", "met-audit"],
        "custom_args": {
            "as_of": "2026-03-31",
            "kind": "morning-report",
            "outbox_attempt": "abc",
            "practice_id": "PR0001",
        },
        "reply_to": {"email": "desk@example.org"},
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
        },
    }


def test_sandbox_mode_and_no_recipients() -> None:
    payload = to_sendgrid_payload(MESSAGE, sandbox_mode=True)
    assert payload["mail_settings"] == {"sandbox_mode": {"enable": True}}
    with pytest.raises(ValueError, match="recipient"):
        to_sendgrid_payload(OutgoingEmail("s", "h", "t", (), "a@example.org"))


UNICODE_EMAIL = {
    "sender": "Zoë Müller <audit@example.org>",
    "reply_to": '"Müller, Zoë" <desk@example.org>',
    "admins": ["Þórdís Ólafsdóttir <ops@example.org>"],
}
UNICODE_LEADS = ["José Ñúñez <jose@riverside.example>", "Ирина <irina@riverside.example>"]


def _unicode_config():  # type: ignore[no-untyped-def]
    from metaudit.mail.config import load_mail_config
    from metaudit.spec.settings import Settings

    settings = Settings.from_dict(
        {"email": UNICODE_EMAIL, "practices": {"PR0001": {"compliance_leads": UNICODE_LEADS}}}
    )
    return load_mail_config(settings)


def _unicode_message() -> OutgoingEmail:
    """A message to PR0001's leads, from and replying to the unicode configuration."""
    config = _unicode_config()
    return OutgoingEmail(
        subject="s",
        html="h",
        text="t",
        to=config.for_practice("PR0001").recipients,
        sender=config.sender or "",
        reply_to=config.reply_to,
    )


def test_configured_unicode_names_stay_plain_text() -> None:
    config = _unicode_config()
    assert config.sender == "Zoë Müller <audit@example.org>"
    assert config.reply_to == '"Müller, Zoë" <desk@example.org>'
    assert config.admins == ("Þórdís Ólafsdóttir <ops@example.org>",)
    assert config.for_practice("PR0001").recipients == tuple(UNICODE_LEADS)


def test_unicode_names_reach_the_payload_as_plain_text() -> None:
    message = _unicode_message()
    payload = to_sendgrid_payload(message)
    assert payload["from"] == {"name": "Zoë Müller", "email": "audit@example.org"}
    assert payload["reply_to"] == {"name": "Müller, Zoë", "email": "desk@example.org"}
    assert payload["personalizations"][0]["to"] == [
        {"name": "José Ñúñez", "email": "jose@riverside.example"},
        {"name": "Ирина", "email": "irina@riverside.example"},
    ]


def test_encoded_words_from_earlier_records_are_decoded_for_sendgrid() -> None:
    """Outbox records written before names were kept plain hold RFC 2047 encoded words."""
    from email.utils import formataddr

    old = OutgoingEmail(
        "s",
        "h",
        "t",
        (formataddr(("José Ñúñez", "jose@riverside.example")),),
        formataddr(("Zoë Müller", "audit@example.org")),
    )
    assert old.sender.startswith("=?utf-8?")
    payload = to_sendgrid_payload(old)
    assert payload["from"] == {"name": "Zoë Müller", "email": "audit@example.org"}
    assert payload["personalizations"][0]["to"] == [
        {"name": "José Ñúñez", "email": "jose@riverside.example"}
    ]


def test_the_eml_file_encodes_the_same_names_in_its_headers() -> None:
    """A mail header is where RFC 2047 belongs: the .eml carries encoded words that any
    mail program decodes back to the configured names."""
    from datetime import UTC, datetime
    from email import message_from_bytes, policy

    from metaudit.mail.eml import render_eml

    message = _unicode_message()
    raw = render_eml(message, date=datetime(2026, 3, 31, 5, tzinfo=UTC))
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii(), "the .eml headers must be 7-bit (encoded words)"
    assert b"=?utf-8?" in headers
    parsed = message_from_bytes(raw, policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["From"].addresses] == [
        ("Zoë Müller", "audit@example.org")
    ]
    assert [(a.display_name, a.addr_spec) for a in parsed["Reply-To"].addresses] == [
        ("Müller, Zoë", "desk@example.org")
    ]
    assert [a.display_name for a in parsed["To"].addresses] == ["José Ñúñez", "Ирина"]


def test_sendgrid_error_text() -> None:
    body = b'{"errors":[{"message":"The from address does not match a verified Sender Identity.","field":"from","help":null}]}'
    assert _sendgrid_detail(body) == (
        "from: The from address does not match a verified Sender Identity."
    )
    assert _sendgrid_detail(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert _sendgrid_detail(None) == ""


def _headers(**values: str) -> Message:
    msg = Message()
    for name, value in values.items():
        msg[name.replace("_", "-")] = value
    return msg


def test_rate_limit_wait_reads_the_reset_time() -> None:
    mailer = SendGridMailer("SG.key", "http://127.0.0.1:9", clock=lambda: 1_800_000_000.0)
    assert mailer._rate_limit_wait(_headers(X_RateLimit_Reset="1800000030"), 1) == pytest.approx(
        31.0
    )
    # A reset already past waits only the margin; a small number is seconds from now.
    assert mailer._rate_limit_wait(_headers(X_RateLimit_Reset="1799999990"), 1) == pytest.approx(
        1.0
    )
    assert mailer._rate_limit_wait(_headers(X_RateLimit_Reset="5"), 1) == pytest.approx(6.0)
    assert mailer._rate_limit_wait(_headers(Retry_After="7"), 1) == pytest.approx(7.0)
    # Without a header, the exponential backoff: 2, 4, 8 ... capped.
    assert [mailer._rate_limit_wait(_headers(), n) for n in (1, 2, 3)] == pytest.approx(
        [2.0, 4.0, 8.0]
    )
    assert mailer._backoff(10) == pytest.approx(60.0)


def test_mailer_needs_a_key_and_hides_it() -> None:
    with pytest.raises(ValueError, match="API key"):
        SendGridMailer("  ")
    mailer = SendGridMailer("SG.secret-key", "http://127.0.0.1:9")
    assert "secret" not in repr(mailer)
    assert mailer._scrub("bad key SG.secret-key") == "bad key [api key]"


def test_the_client_debug_log_is_held_at_info(caplog: pytest.LogCaptureFixture) -> None:
    # python_http_client writes the request headers (the bearer token) at DEBUG.
    for name in ("python_http_client", "python_http_client.client"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    caplog.set_level(logging.DEBUG)
    assert logging.getLogger("python_http_client.client").isEnabledFor(logging.DEBUG)
    SendGridMailer("SG.key", "http://127.0.0.1:9")
    assert not logging.getLogger("python_http_client.client").isEnabledFor(logging.DEBUG)


class _Conn:
    def __init__(self, password=None, host=None, port=None, schema=None):  # type: ignore[no-untyped-def]
        self.password, self.host, self.port, self.schema = password, host, port, schema


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        (_Conn("SG.k"), ("SG.k", None)),
        (_Conn("", "127.0.0.1", 8025), (None, "http://127.0.0.1:8025")),
        (_Conn("SG.k", "http://127.0.0.1:8025/"), ("SG.k", "http://127.0.0.1:8025")),
        (_Conn("SG.k", "localhost", 9000), ("SG.k", "http://localhost:9000")),
        (_Conn("SG.k", "api.eu.sendgrid.com"), ("SG.k", "https://api.eu.sendgrid.com")),
        (_Conn("SG.k", "double.internal", 80, "http"), ("SG.k", "http://double.internal:80")),
    ],
)
def test_credentials_from_the_airflow_connection(
    conn: _Conn, expected: tuple[str | None, str | None]
) -> None:
    from metaudit.mail.notify import credentials_from_connection

    assert credentials_from_connection(conn) == expected
