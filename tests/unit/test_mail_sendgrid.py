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
