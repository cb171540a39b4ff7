"""The SendGrid path end to end: the real ``sendgrid`` client against a local HTTP double.

Each test starts the double on 127.0.0.1 (a random port) and points the real
``SendGridAPIClient`` at it through the ``host`` that the Airflow connection
``sendgrid_default`` would give. Sleeps are recorded, not slept.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sendgrid
from mail_builders import AS_OF, PRACTICE, sample_digest
from sendgrid_double import Reply, SendGridDouble, error_reply

from metaudit.mail.config import MailConfig, PracticeMail
from metaudit.mail.errors import (
    MailDeliveryUncertainError,
    MailRejectedError,
    MailUnavailableError,
)
from metaudit.mail.notify import alert_admins_email, notify_practice, post_pending_alerts
from metaudit.mail.outbox import DIGEST, SENT, Outbox
from metaudit.mail.sendgrid_client import to_sendgrid_payload

API_KEY = "SG.test-key-that-must-never-leak"
LEADS = ("Jo Lead <jo@riverside.example>", "kim@riverside.example")
NOW = 1_800_000_000.0


@pytest.fixture
def double() -> Iterator[SendGridDouble]:
    server = SendGridDouble()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def mail_config(**overrides: object) -> MailConfig:
    options: dict[str, object] = {
        "sender": "MET Audit <audit@example.org>",
        "admins": ("ops@example.org",),
        "airflow_base_url": "https://airflow.example.org",
        "timeout_seconds": 2.0,
        "max_attempts": 3,
        "practices": {PRACTICE: PracticeMail(PRACTICE, recipients=LEADS)},
    }
    options.update(overrides)
    return MailConfig(**options)  # type: ignore[arg-type]


class Run:
    """Calls notify_practice against the double, recording the backoff sleeps."""

    def __init__(self, double: SendGridDouble, outbox: Path) -> None:
        self.double = double
        self.outbox = outbox
        self.sleeps: list[float] = []

    def __call__(self, *, resend: bool = False, config: MailConfig | None = None, digest=None):  # type: ignore[no-untyped-def]
        return notify_practice(
            digest or sample_digest(),
            config or mail_config(),
            api_key=API_KEY,
            host=self.double.host,
            outbox_dir=self.outbox,
            resend=resend,
            run_id="scheduled__2026-03-31T04:30:00+00:00",
            sleep=self.sleeps.append,
            clock=lambda: NOW,
        )

    def record(self, as_of: str = AS_OF) -> dict:  # type: ignore[type-arg]
        return json.loads((self.outbox / as_of / f"{PRACTICE}.json").read_text())


@pytest.fixture
def run(double: SendGridDouble, tmp_path: Path) -> Run:
    return Run(double, tmp_path / "outbox")


# ------------------------------------------------------------------ the wire


def test_the_double_receives_the_exact_v3_json(run: Run, double: SendGridDouble) -> None:
    result = run()
    assert result.status == "sent" and result.message_id == "double-message-1"
    assert len(double.requests) == 1
    request = double.requests[0]
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"sendgrid/{sendgrid.__version__};python"

    record = run.record()
    from metaudit.mail.content import OutgoingEmail

    message = OutgoingEmail.from_dict(record["message"])
    attempt_id = record["sent"]["attempt_id"]
    expected = to_sendgrid_payload(message, extra_custom_args={"outbox_attempt": attempt_id})
    assert request.json == expected
    body = request.json
    assert body["personalizations"] == [
        {
            "to": [
                {"name": "Jo Lead", "email": "jo@riverside.example"},
                {"email": "kim@riverside.example"},
            ]
        }
    ]
    assert body["from"] == {"name": "MET Audit", "email": "audit@example.org"}
    assert body["subject"].startswith(
        "[MET Audit] Riverside Medical Exercise: 3 new critical, 12 open"
    )
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["custom_args"]["practice_id"] == PRACTICE and body["custom_args"]["as_of"] == AS_OF
    assert record["state"] == SENT and record["sent"]["message_id"] == "double-message-1"
    assert record["sent"]["http_status"] == 202
    assert Path(result.eml_path or "").exists()


def test_sandbox_mode_answers_200_and_counts_as_accepted(run: Run, double: SendGridDouble) -> None:
    double.script(Reply(200))
    result = run(config=mail_config(sandbox_mode=True))
    assert result.status == "sent"
    assert double.requests[0].json["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert run.record()["sent"]["http_status"] == 200


# ------------------------------------------------------------------ retries


def test_429_waits_for_the_rate_limit_reset_then_sends(run: Run, double: SendGridDouble) -> None:
    double.script(
        error_reply(
            429,
            "too many requests",
            **{
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(NOW) + 12),
            },
        ),
        Reply(202),
    )
    result = run()
    assert result.status == "sent" and result.attempts == 2
    assert len(double.requests) == 2
    assert run.sleeps == [13.0]  # the reset time plus a one-second margin
    # Both attempts carry the same attempt id: one delivery, tried twice.
    ids = {r.json["custom_args"]["outbox_attempt"] for r in double.requests}
    assert len(ids) == 1


def test_a_rate_limit_longer_than_the_task_waits_gives_up_at_once(
    run: Run, double: SendGridDouble
) -> None:
    double.script(
        error_reply(429, "too many requests", **{"X-RateLimit-Reset": str(int(NOW) + 3600)})
    )
    with pytest.raises(MailUnavailableError, match="rate limited"):
        run()
    assert len(double.requests) == 1 and run.sleeps == []
    assert run.record()["state"] == "pending"


def test_repeated_500s_give_up_stay_pending_and_the_next_run_sends(
    run: Run, double: SendGridDouble
) -> None:
    double.script(*[error_reply(500, "internal error")] * 3)
    with pytest.raises(MailUnavailableError) as caught:
        run()
    assert caught.value.status == 500 and caught.value.attempts == 3
    assert "gave up after 3 attempts" in str(caught.value)
    assert len(double.requests) == 3
    assert run.sleeps == [2.0, 4.0]  # exponential backoff between attempts
    record = run.record()
    assert record["state"] == "pending" and record["sent"] is None
    assert record["errors"][-1]["status"] == 500
    assert Path(run.outbox / AS_OF / f"{PRACTICE}.eml").exists()

    result = run()  # SendGrid is back: the next run posts the pending mail
    assert result.status == "sent"
    assert len(double.requests) == 4
    assert run.record()["state"] == SENT


def test_timeouts_are_retried(run: Run, double: SendGridDouble) -> None:
    double.script(Reply(202, delay=2.0))
    result = run(config=mail_config(timeout_seconds=0.5))
    assert result.status == "sent" and result.attempts == 2
    assert len(double.requests) == 2 and run.sleeps == [2.0]


def test_connection_refused_stays_pending(tmp_path: Path) -> None:
    server = SendGridDouble()
    host = server.start()
    server.stop()  # nothing listens on that port any more
    sleeps: list[float] = []
    with pytest.raises(MailUnavailableError, match="no answer from"):
        notify_practice(
            sample_digest(),
            mail_config(),
            api_key=API_KEY,
            host=host,
            outbox_dir=tmp_path,
            sleep=sleeps.append,
        )
    assert len(sleeps) == 2
    assert json.loads((tmp_path / AS_OF / f"{PRACTICE}.json").read_text())["state"] == "pending"


@pytest.mark.parametrize(
    ("status", "message", "hint"),
    [
        (401, "The provided authorization grant is invalid, expired, or revoked", "API key"),
        (400, "Does not contain a valid address.", "malformed"),
        (413, "Payload too large", "too large"),
        (403, "The from address does not match a verified Sender Identity.", "verified"),
    ],
)
def test_client_errors_are_not_retried_and_named_clearly(
    run: Run,
    double: SendGridDouble,
    caplog: pytest.LogCaptureFixture,
    status: int,
    message: str,
    hint: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    double.script(error_reply(status, message))
    with pytest.raises(MailRejectedError) as caught:
        run()
    error = caught.value
    assert error.status == status and error.attempts == 1
    assert f"SendGrid answered {status}: {message}" in str(error)
    assert hint in str(error) and "not retried" in str(error)
    assert len(double.requests) == 1 and run.sleeps == []
    assert run.record()["state"] == "pending"
    # The key appears nowhere: not in the error, the outbox record, or any log line.
    assert API_KEY not in str(error)
    assert API_KEY not in repr(error.__cause__) and error.__cause__ is None
    assert API_KEY not in caplog.text
    assert API_KEY not in (run.outbox / AS_OF / f"{PRACTICE}.json").read_text()


# ------------------------------------------------------------------ once, and only once


def test_a_rerun_never_sends_twice_unless_resend(run: Run, double: SendGridDouble) -> None:
    first = run()
    second = run()
    assert (first.status, second.status) == ("sent", "already_sent")
    assert second.message_id == first.message_id
    assert len(double.requests) == 1
    third = run(resend=True)
    assert third.status == "sent" and third.message_id == "double-message-2"
    assert len(double.requests) == 2
    deliveries = run.record()["deliveries"]
    assert [d["message_id"] for d in deliveries] == ["double-message-1", "double-message-2"]


class SimulatedCrash(BaseException):
    """The process dying: nothing after it runs, no except clause catches it."""


def test_a_crash_between_accepted_and_recorded_does_not_double_send(
    run: Run, double: SendGridDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = Outbox.save

    def crash_when_recording_sent(self: Outbox, record):  # type: ignore[no-untyped-def]
        if record.state == SENT:
            raise SimulatedCrash
        return real_save(self, record)

    monkeypatch.setattr(Outbox, "save", crash_when_recording_sent)
    with pytest.raises(SimulatedCrash):
        run()
    monkeypatch.setattr(Outbox, "save", real_save)
    assert len(double.requests) == 1  # SendGrid accepted it (202)
    record = run.record()
    assert record["state"] == "sending"
    attempt_id = record["attempt"]["id"]
    assert double.requests[0].json["custom_args"]["outbox_attempt"] == attempt_id

    with pytest.raises(MailDeliveryUncertainError) as caught:
        run()
    assert len(double.requests) == 1  # not posted again
    assert caught.value.attempt_id == attempt_id
    assert f"outbox_attempt={attempt_id}" in str(caught.value)
    assert "resend_email" in str(caught.value)
    assert run.record()["state"] == "uncertain"
    with pytest.raises(MailDeliveryUncertainError):
        run()  # stays uncertain until a person decides
    assert len(double.requests) == 1

    result = run(resend=True)  # the admin decided to send it again
    assert result.status == "sent" and len(double.requests) == 2


def test_a_killed_process_mid_post_does_not_double_send(
    tmp_path: Path, double: SendGridDouble
) -> None:
    """A real crash: the process is killed while SendGrid holds its request."""
    double.script(Reply(hang=True))
    outbox = tmp_path / "outbox"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parents[1])]!r}
        from mail_builders import sample_digest
        from metaudit.mail.config import MailConfig, PracticeMail
        from metaudit.mail.notify import notify_practice
        config = MailConfig(sender="audit@example.org", timeout_seconds=60, max_attempts=1,
                            practices={{{PRACTICE!r}: PracticeMail({PRACTICE!r}, recipients=("jo@riverside.example",))}})
        notify_practice(sample_digest(), config, api_key={API_KEY!r}, host={double.host!r},
                        outbox_dir={str(outbox)!r})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "include")}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        assert double.received.wait(60), "the child never reached SendGrid"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    record = json.loads((outbox / AS_OF / f"{PRACTICE}.json").read_text())
    assert record["state"] == "sending"

    rerun = Run(double, outbox)
    with pytest.raises(MailDeliveryUncertainError):
        rerun(
            config=mail_config(
                practices={PRACTICE: PracticeMail(PRACTICE, recipients=("jo@riverside.example",))}
            )
        )
    assert len(double.requests) == 1


def test_the_next_night_posts_an_earlier_pending_mail(run: Run, double: SendGridDouble) -> None:
    double.script(*[error_reply(503, "service unavailable")] * 3)
    with pytest.raises(MailUnavailableError):
        run()
    assert run.record()["state"] == "pending"
    import dataclasses

    tomorrow = dataclasses.replace(sample_digest(), as_of="2026-04-01")
    result = run(digest=tomorrow)
    assert result.status == "sent" and result.as_of == "2026-04-01"
    assert [(e.as_of, e.status) for e in result.earlier] == [(AS_OF, "sent")]
    assert run.record()["state"] == SENT and run.record("2026-04-01")["state"] == SENT
    subjects = sorted(r.json["subject"][-12:] for r in double.requests[-2:])
    assert subjects == ["(2026-03-31)", "(2026-04-01)"]
    # A third night finds nothing pending: nothing posted again.
    run(digest=dataclasses.replace(sample_digest(), as_of="2026-04-02"))
    assert len(double.requests) == 6


def test_admin_alerts_take_the_same_path(tmp_path: Path, double: SendGridDouble) -> None:
    def alert(resend: bool = False):  # type: ignore[no-untyped-def]
        return alert_admins_email(
            "audit failed for PR0002",
            "practice PR0002: SourceUnavailableError",
            mail_config(),
            key="scheduled__2026-03-31T04:30:00+00:00",
            as_of=AS_OF,
            api_key=API_KEY,
            host=double.host,
            outbox_dir=tmp_path,
            resend=resend,
            now=lambda: datetime(2026, 3, 31, 5, tzinfo=UTC),
        )

    assert alert().status == "sent"
    assert alert().status == "already_sent"
    assert len(double.requests) == 1
    body = double.requests[0].json
    assert body["personalizations"][0]["to"] == [{"email": "ops@example.org"}]
    assert body["custom_args"]["kind"] == "alert"
    assert body["subject"] == "[MET Audit] audit failed for PR0002"
    record = Outbox(tmp_path).load("alert", AS_OF, "scheduled__2026-03-31T04:30:00+00:00")
    assert record is not None and record.state == SENT
    assert Outbox(tmp_path).load(DIGEST, AS_OF, PRACTICE) is None


def test_a_refused_alert_is_posted_by_a_later_run(tmp_path: Path, double: SendGridDouble) -> None:
    key = "manual__2026-03-31.practice.validate.0.try3"
    double.script(error_reply(401, "The provided authorization grant is invalid"))
    with pytest.raises(MailRejectedError):
        alert_admins_email(
            "practice.validate failed for PR0002",
            "practice PR0002: ContractError",
            mail_config(),
            key=key,
            as_of=AS_OF,
            api_key=API_KEY,
            host=double.host,
            outbox_dir=tmp_path,
        )
    outbox = Outbox(tmp_path)
    record = outbox.load("alert", AS_OF, key)
    assert record is not None and record.state == "pending"
    assert outbox.names("alert", AS_OF) == [key]

    # The next day's run (the key fixed): the refused alert goes out, as it was built.
    sent, failed = post_pending_alerts(
        mail_config(), as_of="2026-04-01", api_key=API_KEY, host=double.host, outbox_dir=tmp_path
    )
    assert failed == []
    assert [(r.name, r.as_of, r.status) for r in sent] == [(key, AS_OF, "sent")]
    assert double.requests[-1].json["subject"] == "[MET Audit] practice.validate failed for PR0002"
    loaded = outbox.load("alert", AS_OF, key)
    assert loaded is not None and loaded.state == SENT
    # Nothing pending any more: nothing posted again.
    again = post_pending_alerts(
        mail_config(), as_of="2026-04-01", api_key=API_KEY, host=double.host, outbox_dir=tmp_path
    )
    assert again == ([], [])
    assert len(double.requests) == 2


def test_a_pending_alert_older_than_the_retry_window_is_left_alone(
    tmp_path: Path, double: SendGridDouble
) -> None:
    double.script(error_reply(403, "sender not verified"))
    with pytest.raises(MailRejectedError):
        alert_admins_email(
            "extract failed",
            "SourceUnavailableError",
            mail_config(),
            key="k1",
            as_of=AS_OF,
            api_key=API_KEY,
            host=double.host,
            outbox_dir=tmp_path,
        )
    window = mail_config().retry_earlier_days
    later = (date.fromisoformat(AS_OF) + timedelta(days=window + 1)).isoformat()
    assert post_pending_alerts(
        mail_config(), as_of=later, api_key=API_KEY, host=double.host, outbox_dir=tmp_path
    ) == ([], [])
    assert len(double.requests) == 1
