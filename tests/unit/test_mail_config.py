"""The email part of the configuration file: validated as a whole, every problem named."""

from __future__ import annotations

import pytest

from metaudit.mail.config import (
    DEFAULT_AIRFLOW_BASE_URL,
    MailConfig,
    load_mail_config,
    mail_config_from_sections,
    normalise_address,
)
from metaudit.mail.errors import MailConfigError
from metaudit.spec.settings import Settings


def test_no_email_section_gives_the_defaults() -> None:
    config = load_mail_config(Settings.from_dict({}))
    assert config == MailConfig()
    assert config.sender is None and config.all_clear is True
    assert config.airflow_base_url == DEFAULT_AIRFLOW_BASE_URL
    assert config.packets_url_base == DEFAULT_AIRFLOW_BASE_URL
    practice = config.for_practice("PR-9")
    assert practice.recipients == () and practice.enabled


def test_a_full_configuration_through_settings() -> None:
    settings = Settings.from_dict(
        {
            "email": {
                "sender": "MET Audit <audit@example.org>",
                "reply_to": "desk@example.org",
                "admins": ["ops@example.org"],
                "airflow_base_url": "https://airflow.example.org/",
                "packets_base_url": "https://packets.example.org",
                "all_clear": False,
                "sandbox_mode": True,
                "timeout_seconds": 10,
                "max_attempts": 6,
                "categories": ["met-audit", "east"],
            },
            "practices": {
                "PR-1": {
                    "name": "  Riverside   Medical Exercise ",
                    "compliance_leads": [
                        "Jo Lead <jo@riverside.example>",
                        "kim@riverside.example",
                        "JO@riverside.example",
                    ],
                    "email": {"all_clear": True},
                    "settings": {"note_signature_days": 1},
                },
                "PR-2": {"email": {"enabled": False}},
            },
        }
    )
    config = load_mail_config(settings)
    assert config.sender == "MET Audit <audit@example.org>"
    assert config.admins == ("ops@example.org",)
    assert config.airflow_base_url == "https://airflow.example.org"
    assert config.packets_url_base == "https://packets.example.org"
    assert (config.all_clear, config.sandbox_mode, config.timeout_seconds, config.max_attempts) == (
        False,
        True,
        10.0,
        6,
    )
    assert config.categories == ("met-audit", "east")
    pr1 = config.for_practice("PR-1")
    assert pr1.name == "Riverside Medical Exercise"
    # The same address twice (any case) is one recipient.
    assert pr1.recipients == ("Jo Lead <jo@riverside.example>", "kim@riverside.example")
    assert config.all_clear_for("PR-1") is True
    assert config.all_clear_for("PR-3") is False
    assert config.for_practice("PR-2").enabled is False


def test_every_problem_is_named_by_its_path() -> None:
    with pytest.raises(MailConfigError) as caught:
        mail_config_from_sections(
            {
                "sender": "not an address",
                "airflow_base_url": "javascript:alert(1)",
                "packets_base_url": "https://x.example.org/?a=1",
                "all_clear": "yes",
                "max_attempts": 0,
                "timeout_seconds": True,
                "categories": "met",
                "sendr": "typo@example.org",
            },
            {
                "PR-1": {
                    "compliance_leads": ["ok@example.org", "bad@", "a@b.example\nBcc: x@y.example"],
                    "email": {"enabled": "no", "colour": "red"},
                    "name": ["not", "text"],
                }
            },
        )
    text = str(caught.value)
    for path in (
        "email.sender",
        "email.airflow_base_url",
        "email.packets_base_url",
        "email.all_clear",
        "email.max_attempts",
        "email.timeout_seconds",
        "email.categories",
        "email.sendr: unknown key",
        "practices.PR-1.compliance_leads[1]",
        "practices.PR-1.compliance_leads[2]",
        "practices.PR-1.email.enabled",
        "practices.PR-1.email.colour: unknown key",
        "practices.PR-1.name",
    ):
        assert path in text, path
    assert "13 problems" in text


def test_a_null_airflow_address_turns_links_off() -> None:
    config = mail_config_from_sections({"airflow_base_url": None}, {})
    assert config.airflow_base_url is None and config.packets_url_base is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jo@example.org", "jo@example.org"),
        ("  Jo Lead <jo@example.org> ", "Jo Lead <jo@example.org>"),
        ('"Lead, Jo" <jo@example.org>', '"Lead, Jo" <jo@example.org>'),
        ("jo@example", None),
        ("jo example.org", None),
        ("a@b.example, c@d.example", None),
        ("jo@example.org\r\nBcc: x@example.org", None),
        (42, None),
    ],
)
def test_addresses(value: object, expected: str | None) -> None:
    assert normalise_address(value) == expected


def test_two_problems_of_the_email_section_come_in_one_error() -> None:
    with pytest.raises(MailConfigError) as caught:
        mail_config_from_sections({"max_attempts": 2.5, "sandbox": True}, {})
    text = str(caught.value)
    assert text.startswith("invalid email configuration (configuration): 2 problems")
    assert "email.max_attempts: must be a whole number >= 1, got 2.5" in text
    assert "email.sandbox: unknown key (did you mean 'sandbox_mode'?); keys: sender," in text


def test_whole_numbers_come_as_int_and_a_practice_all_clear_stays_unset() -> None:
    config = mail_config_from_sections(
        {"max_attempts": 3.0, "timeout_seconds": 5}, {"PR-1": {"email": {"enabled": False}}}
    )
    assert config.max_attempts == 3 and isinstance(config.max_attempts, int)
    assert isinstance(config.timeout_seconds, float)
    assert config.timeout_seconds == pytest.approx(5.0)
    assert config.for_practice("PR-1").all_clear is None
    assert config.all_clear_for("PR-1") is True
