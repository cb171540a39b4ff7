"""The ``email`` part of the configuration file: who gets the morning email, and how it goes.

:mod:`metaudit.spec.settings` reads the file and hands these sections on unvalidated
(``Settings.sections["email"]`` and ``Settings.practice_section(id)``); this
module validates them as a whole and reports every problem at once, by path::

    email:
      sender: "MET Audit <audit@example.org>"   # a SendGrid verified sender
      reply_to: "Compliance desk <compliance@example.org>"
      admins: [ops@example.org]                 # failure alerts
      airflow_base_url: https://airflow.example.org
      packets_base_url: https://airflow.example.org   # default: airflow_base_url
      all_clear: true                          # a short mail when nothing to report
      sandbox_mode: false                      # SendGrid validates but delivers nothing
      timeout_seconds: 20
      max_attempts: 4
    practices:
      PR-1:
        name: Riverside Medical Exercise        # the name in the subject
        compliance_leads: ["Jo Lead <jo@riverside.example>", kim@riverside.example]
        email:
          enabled: true
          all_clear: false
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.utils import getaddresses, parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from metaudit.errors import Problems
from metaudit.mail.errors import MailConfigError
from metaudit.spec.sections import BOOL, CUSTOM, NUMBER, Field, show, validate_section

if TYPE_CHECKING:
    from metaudit.spec.settings import Settings

# Local part and domain with a dot; deliberately loose (SendGrid validates for real),
# but strict on what could break a header: blanks, commas, angle brackets, line breaks.
_ADDRESS = re.compile(r"^[^@\s,<>\"]+@[^@\s,<>\"]+\.[^@\s,<>\".]+$")

# Characters that make a display name a quoted string, and those escaped inside it
# (as email.utils.formataddr has them).
_NAME_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_NAME_ESCAPES = re.compile(r'[\\"]')

DEFAULT_SENDER = "MET Audit <met-audit@localhost.invalid>"
DEFAULT_AIRFLOW_BASE_URL = "http://localhost:8080"


@dataclass(frozen=True)
class PracticeMail:
    """One practice's mail settings: display name, recipients, whether to mail at all."""

    practice_id: str
    name: str | None = None
    recipients: tuple[str, ...] = ()
    enabled: bool = True
    all_clear: bool | None = None  # None: the top-level email.all_clear applies


@dataclass(frozen=True)
class MailConfig:
    """The validated ``email`` settings with their defaults.

    ``sender`` is None until configured: the embedded outbox then writes
    :data:`DEFAULT_SENDER`, while posting through SendGrid refuses to go without
    a verified sender.
    """

    sender: str | None = None
    reply_to: str | None = None
    admins: tuple[str, ...] = ()
    airflow_base_url: str | None = DEFAULT_AIRFLOW_BASE_URL
    packets_base_url: str | None = None
    all_clear: bool = True
    sandbox_mode: bool = False
    categories: tuple[str, ...] = ("met-audit",)
    timeout_seconds: float = 20.0
    max_attempts: int = 4
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0
    max_rate_limit_wait_seconds: float = 120.0
    max_records_per_rule: int = 20
    retry_earlier_days: int = 3
    practices: Mapping[str, PracticeMail] = field(default_factory=dict)

    @property
    def packets_url_base(self) -> str | None:
        """Where the packets page lives: ``packets_base_url``, else the Airflow UI's address."""
        return self.packets_base_url or self.airflow_base_url

    def for_practice(self, practice_id: str) -> PracticeMail:
        """The practice's mail settings; a practice the file does not name has no recipients."""
        return self.practices.get(practice_id) or PracticeMail(practice_id)

    def all_clear_for(self, practice_id: str) -> bool:
        """Whether a practice with nothing to report still gets a short all-clear mail."""
        own = self.for_practice(practice_id).all_clear
        return self.all_clear if own is None else own


# ------------------------------------------------------------------ validation


def normalise_address(value: Any) -> str | None:
    """``"Name <user@host>"`` or ``user@host`` in canonical form, None when not an address."""
    if not isinstance(value, str) or not value.strip():
        return None
    if any(ch in value for ch in "\r\n\t"):
        return None
    found = getaddresses([value.strip()])
    # Two addresses in one entry ("a@x.org, b@y.org") would silently lose the second.
    if len(found) != 1:
        return None
    name, address = found[0]
    if not _ADDRESS.match(address):
        return None
    name = plain_display_name(name)
    if not name:
        return address
    # email.utils.formataddr, less its RFC 2047 encoding of non-ASCII names: SendGrid's
    # JSON takes the name as plain text, and the .eml writer (email.message, policy SMTP)
    # encodes its headers itself. Quoted only where the syntax needs it ("Lead, Jo").
    if _NAME_SPECIALS.search(name):
        name = '"' + _NAME_ESCAPES.sub(r"\\\g<0>", name) + '"'
    return f"{name} <{address}>"


def plain_display_name(name: str) -> str:
    """A display name as plain text: RFC 2047 encoded words (``=?utf-8?b?...?=``) decoded.

    Addresses written before names were kept as plain text (outbox records of earlier
    days) or typed that way into the configuration still give the real name.
    """
    if "=?" not in name:
        return name
    try:
        return str(make_header(decode_header(name)))
    except (ValueError, LookupError):  # a malformed word or an unknown charset: as written
        return name


def split_address(recipient: str) -> tuple[str, str]:
    """The plain-text display name (``""`` when none) and the address of ``"Name <user@host>"``."""
    name, address = parseaddr(recipient)
    return plain_display_name(name), address


def address_of(recipient: str) -> str:
    """The bare address of ``"Name <user@host>"`` (lower-cased, for comparisons)."""
    return parseaddr(recipient)[1].lower()


def _address(value: Any, path: str, problems: Problems) -> str | None:
    out = normalise_address(value)
    if out is None:
        problems.add(
            path, f"must be an email address such as 'Jo Lead <jo@example.org>', got {show(value)}"
        )
    return out


def _addresses(value: Any, path: str, problems: Problems) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.add(path, f"must be a list of email addresses, got {show(value)}")
        return ()
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        address = _address(item, f"{path}[{i}]", problems)
        # The same lead listed twice gets one mail.
        if address is not None and address_of(address) not in seen:
            seen.add(address_of(address))
            out.append(address)
    return tuple(out)


def _url(value: Any, path: str, problems: Problems) -> str | None:
    if value is None:
        return None
    ok = isinstance(value, str) and not any(ch.isspace() for ch in value.strip())
    parts = urlsplit(value.strip()) if ok else None
    # Only web links: a javascript: or file: address must never reach a mail body.
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        problems.add(
            path,
            f"must be an http(s) address such as 'https://airflow.example.org', got {show(value)}",
        )
        return None
    if parts.query or parts.fragment:
        problems.add(path, f"must be a base address without '?' or '#', got {show(value)}")
        return None
    return value.strip().rstrip("/")


def _categories(value: Any, path: str, problems: Problems) -> tuple[str, ...]:
    if value is None:
        return MailConfig.categories
    # SendGrid allows 10 categories of at most 255 characters on a message; two are ours.
    if not isinstance(value, list) or len(value) > 8:
        problems.add(path, f"must be a list of at most 8 words, got {show(value)}")
        return MailConfig.categories
    out: list[str] = []
    for i, item in enumerate(value):
        if (
            not isinstance(item, str)
            or not item.strip()
            or len(item) > 100
            or not item.isprintable()
        ):
            problems.add(f"{path}[{i}]", f"must be a short word, got {show(item)}")
            continue
        out.append(item.strip())
    return tuple(out)


def _practice_name(value: Any, path: str, problems: Problems) -> str | None:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        problems.add(path, f"must be the practice's name on one line, got {show(value)}")
        return None
    return " ".join(value.split())


def _number(name: str, minimum: float, *, whole: bool = False) -> Field:
    return Field(name, NUMBER, default=getattr(MailConfig, name), minimum=minimum, whole=whole)


def _address_field(name: str) -> Field:
    return Field(name, CUSTOM, check=_address)


# The top-level ``email`` section; its defaults are MailConfig's.
EMAIL_FIELDS = (
    _address_field("sender"),
    _address_field("reply_to"),
    Field("admins", CUSTOM, default=(), check=_addresses),
    # Written as null it turns the links off; left out, the local Airflow's address.
    Field(
        "airflow_base_url",
        CUSTOM,
        default=DEFAULT_AIRFLOW_BASE_URL,
        check=_url,
        null_is_default=False,
    ),
    Field("packets_base_url", CUSTOM, check=_url),
    Field("all_clear", BOOL, default=True),
    Field("sandbox_mode", BOOL, default=False),
    Field("categories", CUSTOM, default=MailConfig.categories, check=_categories),
    _number("timeout_seconds", 1),
    _number("max_attempts", 1, whole=True),
    _number("backoff_seconds", 0),
    _number("max_backoff_seconds", 0),
    _number("max_rate_limit_wait_seconds", 0),
    _number("max_records_per_rule", 1, whole=True),
    _number("retry_earlier_days", 0, whole=True),
)
# A practice's mail keys (the rest of a practice's keys belong to other modules).
PRACTICE_FIELDS = (
    Field("name", CUSTOM, check=_practice_name),
    Field("compliance_leads", CUSTOM, default=(), check=_addresses),
)
# A practice's own ``email`` section; all_clear None: the top-level email.all_clear applies.
PRACTICE_EMAIL_FIELDS = (
    Field("enabled", BOOL, default=True),
    Field("all_clear", BOOL, default=None),
)


def _practice(pid: str, section: Mapping[str, Any], problems: Problems) -> PracticeMail:
    path = f"practices.{pid}"
    keys, _ = validate_section(path, section, PRACTICE_FIELDS, problems, report_unknown=False)
    own, _ = validate_section(
        f"{path}.email", section.get("email"), PRACTICE_EMAIL_FIELDS, problems
    )
    return PracticeMail(
        practice_id=pid,
        name=keys["name"],
        recipients=keys["compliance_leads"],
        enabled=own["enabled"],
        all_clear=own["all_clear"],
    )


def mail_config_from_sections(
    email: Any,
    practice_sections: Mapping[str, Mapping[str, Any]],
    source: str = "configuration",
) -> MailConfig:
    """Validate the top-level ``email`` section and each practice's mail keys.

    Raises :class:`~metaudit.mail.errors.MailConfigError` naming every bad key.
    """
    values, problems = validate_section("email", email, EMAIL_FIELDS)
    practices = {
        pid: _practice(pid, section, problems) for pid, section in practice_sections.items()
    }
    problems.raise_if_any(f"invalid email configuration ({source})", MailConfigError)
    return MailConfig(**values, practices=practices)


def load_mail_config(settings: Settings) -> MailConfig:
    """The mail settings of an already loaded configuration (see :meth:`Settings.load`)."""
    sections = {pid: settings.practice_section(pid) for pid in settings.practice_ids}
    return mail_config_from_sections(settings.sections.get("email"), sections, settings.source)
