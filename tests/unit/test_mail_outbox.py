"""The outbox folder and the embedded default (no API key): .eml files, records, states."""

from __future__ import annotations

import dataclasses
import email
import json
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
from mail_builders import AS_OF, PRACTICE, empty_digest, sample_digest

from metaudit.mail.config import MailConfig, PracticeMail
from metaudit.mail.errors import MailConfigError, OutboxError
from metaudit.mail.notify import alert_admins_email, notify_practice
from metaudit.mail.outbox import DIGEST, Outbox, check_as_of
from metaudit.paths import id_name, write_atomic

FIXED = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
LEADS = ("Jo Lead <jo@riverside.example>",)


def config(**practice: object) -> MailConfig:
    pm = PracticeMail(PRACTICE, recipients=LEADS, **practice)  # type: ignore[arg-type]
    return MailConfig(practices={PRACTICE: pm}, admins=("ops@example.org",))


def _notify(tmp_path: Path, digest=None, cfg=None, **kwargs):  # type: ignore[no-untyped-def]
    return notify_practice(
        digest or sample_digest(),
        cfg or config(),
        api_key=None,
        outbox_dir=tmp_path,
        now=lambda: FIXED,
        **kwargs,
    )


def _read_eml(path: str | Path) -> email.message.EmailMessage:
    with open(path, "rb") as handle:
        return email.message_from_binary_file(handle, policy=policy.default)  # type: ignore[return-value]


def test_without_a_key_the_email_is_written_as_eml(tmp_path: Path) -> None:
    result = _notify(tmp_path, run_id="manual__1")
    assert result.status == "written"
    assert result.eml_path == str(tmp_path / AS_OF / f"{PRACTICE}.eml")
    msg = _read_eml(result.eml_path)
    assert msg["Subject"].startswith("[MET Audit] Riverside Medical Exercise: 3 new critical")
    assert msg["To"] == LEADS[0]
    assert msg["From"] == "MET Audit <met-audit@localhost.invalid>"
    assert msg["X-MET-Audit-Practice-Id"] == PRACTICE and msg["X-MET-Audit-As-Of"] == AS_OF
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert "NEW FINDINGS" in text.get_content()
    assert "Open the run in Airflow" in html.get_content()
    assert "manual__1" in html.get_content()
    record = json.loads((tmp_path / AS_OF / f"{PRACTICE}.json").read_text())
    assert record["state"] == "written" and record["sent"] is None
    assert record["message"]["subject"] == msg["Subject"]
    assert result.to_dict()["recipients"] == 1
    assert Outbox(tmp_path).eml_files(AS_OF) == [Path(result.eml_path)]


def test_a_rerun_rewrites_the_local_eml_with_the_new_content(tmp_path: Path) -> None:
    first = _notify(tmp_path)
    second = _notify(tmp_path, digest=empty_digest())
    assert first.eml_path == second.eml_path and second.status == "written"
    assert "all clear" in _read_eml(second.eml_path)["Subject"]
    assert sorted(p.name for p in (tmp_path / AS_OF).iterdir()) == [
        f".{PRACTICE}.lock",
        f"{PRACTICE}.eml",
        f"{PRACTICE}.json",
    ]


def test_no_recipients_still_gives_a_readable_local_mail(tmp_path: Path) -> None:
    result = _notify(tmp_path, cfg=MailConfig())
    msg = _read_eml(result.eml_path)
    assert str(msg["To"]) == "undisclosed-recipients:;"


def test_sending_without_recipients_or_sender_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(MailConfigError, match=r"practices\.PR0001\.compliance_leads"):
        notify_practice(sample_digest(), MailConfig(), api_key="SG.x", outbox_dir=tmp_path)
    with pytest.raises(MailConfigError, match=r"email\.sender"):
        notify_practice(sample_digest(), config(), api_key="SG.x", outbox_dir=tmp_path)
    assert not (tmp_path / AS_OF).exists()


def test_all_clear_off_skips_and_removes_a_stale_mail(tmp_path: Path) -> None:
    _notify(tmp_path)
    result = _notify(tmp_path, digest=empty_digest(), cfg=config(all_clear=False))
    assert result.status == "skipped" and result.eml_path is None
    assert not (tmp_path / AS_OF / f"{PRACTICE}.eml").exists()
    record = json.loads((tmp_path / AS_OF / f"{PRACTICE}.json").read_text())
    assert record["state"] == "skipped" and record["message"] is None


def test_disabled_practice_gets_nothing(tmp_path: Path) -> None:
    result = _notify(tmp_path, cfg=config(enabled=False))
    assert result.status == "disabled"
    assert not (tmp_path / AS_OF).exists()


def test_alert_to_the_admins_goes_to_its_own_folder(tmp_path: Path) -> None:
    result = alert_admins_email(
        "audit failed",
        "practice PR0002 failed: SourceUnavailableError",
        config(),
        key="scheduled__2026-03-31T04:30:00+00:00",
        as_of=AS_OF,
        api_key=None,
        outbox_dir=tmp_path,
        now=lambda: FIXED,
    )
    assert result.status == "written"
    path = Path(result.eml_path or "")
    assert path.parent == tmp_path / AS_OF / "alerts"
    assert ":" not in path.name and "+" not in path.name
    assert _read_eml(path)["To"] == "ops@example.org"


def test_file_names_and_dates_are_safe() -> None:
    assert id_name("PR0001") == "PR0001"
    assert id_name("PR/1") != id_name("PR_1")
    assert "/" not in id_name("../../etc/passwd")
    with pytest.raises(OutboxError):
        check_as_of("../2026-03-31")
    with pytest.raises(OutboxError):
        check_as_of("2026-3-31")


def test_a_damaged_record_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    path = outbox.paths(DIGEST, AS_OF, PRACTICE).record
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(OutboxError, match="cannot be read"):
        outbox.load(DIGEST, AS_OF, PRACTICE)
    with pytest.raises(OutboxError):
        _notify(tmp_path)


def test_durable_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "record.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]


def test_the_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    import subprocess
    import sys

    outbox = Outbox(tmp_path, lock_timeout=0.3)
    holder = (
        "import sys, time\n"
        "from metaudit.mail.outbox import Outbox\n"
        f"with Outbox({str(tmp_path)!r}).locked('digest', {AS_OF!r}, {PRACTICE!r}):\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with (
            pytest.raises(OutboxError, match="locked by another process"),
            outbox.locked(DIGEST, AS_OF, PRACTICE),
        ):
            pass
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=10)
    with outbox.locked(DIGEST, AS_OF, PRACTICE):
        pass


def test_records_keep_their_identity(tmp_path: Path) -> None:
    _notify(tmp_path)
    outbox = Outbox(tmp_path)
    record = outbox.load(DIGEST, AS_OF, PRACTICE)
    assert record is not None
    other = dataclasses.replace(record, name="PR0002")
    path = outbox.paths(DIGEST, AS_OF, "PR0002").record
    path.write_text(record.to_json())
    with pytest.raises(OutboxError, match="belongs to"):
        outbox.load(DIGEST, AS_OF, other.name)


def test_nothing_to_report_never_erases_a_sent_record(tmp_path: Path) -> None:
    from metaudit.mail.outbox import SENT

    _notify(tmp_path)
    outbox = Outbox(tmp_path)
    record = outbox.load(DIGEST, AS_OF, PRACTICE)
    assert record is not None
    record.state = SENT
    record.sent = {"message_id": "m-1"}
    outbox.save(record)
    result = _notify(tmp_path, digest=empty_digest(), cfg=config(all_clear=False), resend=True)
    assert result.status == "skipped" and result.message_id == "m-1"
    kept = outbox.load(DIGEST, AS_OF, PRACTICE)
    assert kept is not None and kept.state == SENT and kept.message is not None
    assert (tmp_path / AS_OF / f"{PRACTICE}.eml").exists()
