"""Every payload the project posts to SendGrid, checked against SendGrid's own Mail Send schema.

The configuration is written as a newcomer writes it (a YAML file with names
such as "Zoë Müller"), read through the real loader (``Settings.load`` and
``load_mail_config``), and the messages go out through the real ``sendgrid``
client to the HTTP double (tests/sendgrid_double.py). What the double received
is validated against ``components.requestBodies.PostMailSend`` of SendGrid's
official OpenAPI definition (../shared/reference/sendgrid/tsg_mail_v3.json,
``$ref``s resolved), and every display name must be the plain text that was
configured: SendGrid's JSON ``name`` is not a mail header, so an RFC 2047
encoded word (``=?utf-8?b?...?=``) would reach the inbox as written.

The reference definition is test data only; without ../shared these tests skip.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from mail_builders import AS_OF, PRACTICE, empty_digest, finding, sample_digest, tracked
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sendgrid_double import SendGridDouble

from metaudit.mail.config import MailConfig, load_mail_config
from metaudit.mail.notify import alert_admins_email, notify_practice
from metaudit.results.digest import PracticeDigest
from metaudit.spec.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MAIL_SEND_SPEC = REPO.parent / "shared" / "reference" / "sendgrid" / "tsg_mail_v3.json"
SPEC_URI = "urn:sendgrid:tsg_mail_v3"
REQUEST_BODY = "#/components/requestBodies/PostMailSend/content/application~1json/schema"
API_KEY = "SG.schema-test-key"
# An RFC 2047 encoded word: right in a mail header, wrong in SendGrid's JSON.
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")

SENDER_NAME = "Zoë Müller"
REPLY_TO_NAME = "Équipe conformité"
ADMIN_NAME = "Þórdís Ólafsdóttir"
LEAD_NAMES = (
    "Zoë Müller",
    "Müller, Zoë",  # a comma: quoted in the configuration, plain in the JSON
    "José Ñúñez",
    "Łukasz Żółć",
    "Søren Ærø",
    "Ирина Петрова",
    "李小龍",
    "Jo Lead",
)


@pytest.fixture(scope="module")
def mail_send_validator() -> jsonschema.protocols.Validator:
    if not MAIL_SEND_SPEC.is_file():
        pytest.skip(f"SendGrid's Mail Send definition is not here ({MAIL_SEND_SPEC} absent)")
    spec = json.loads(MAIL_SEND_SPEC.read_text())
    spec = copy.deepcopy(spec)
    body = spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]
    # Erratum (../shared/reference/README.md): the definition types the message-level
    # custom_args as a string; its own text ("key/value pairs") and SendGrid's Python
    # library make it an object of strings.
    custom_args = body["schema"]["properties"]["custom_args"]
    assert custom_args["type"] == "string", "the erratum no longer applies: drop this patch"
    custom_args["type"] = "object"
    custom_args["additionalProperties"] = {"type": "string"}
    registry = Registry().with_resource(SPEC_URI, Resource(spec, specification=DRAFT202012))
    # OpenAPI 3.1 schemas are JSON Schema 2020-12.
    return jsonschema.Draft202012Validator(
        {"$ref": SPEC_URI + REQUEST_BODY},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def schema_errors(validator: jsonschema.protocols.Validator, payload: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    ]


def display_names(payload: dict[str, Any]) -> list[str]:
    """Every ``name`` of the sender, reply-to and recipients in a v3 body."""
    people = [payload["from"], payload.get("reply_to") or {}]
    people += payload.get("reply_to_list") or []
    for envelope in payload["personalizations"]:
        for field in ("to", "cc", "bcc"):
            people += envelope.get(field) or []
    return [person["name"] for person in people if "name" in person]


def quoted(name: str) -> str:
    return f'"{name}"' if "," in name else name


def write_config(path: Path, *, sandbox_mode: bool = False) -> Path:
    """The configuration file as a practice writes it: unicode names, no encoding."""
    leads = [f"{quoted(name)} <lead{i}@riverside.example>" for i, name in enumerate(LEAD_NAMES)]
    leads.append("no-name@riverside.example")
    config = {
        "email": {
            "sender": f"{SENDER_NAME} <audit@example.org>",
            "reply_to": f"{REPLY_TO_NAME} <compliance@example.org>",
            "admins": [f"{ADMIN_NAME} <ops@example.org>", "oncall@example.org"],
            "airflow_base_url": "https://airflow.example.org",
            "sandbox_mode": sandbox_mode,
            "timeout_seconds": 5,
            "max_attempts": 1,
        },
        "practices": {
            PRACTICE: {"name": "Zürich Bewegungstherapie", "compliance_leads": leads},
        },
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def double() -> Iterator[SendGridDouble]:
    server = SendGridDouble()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def loaded(tmp_path: Path, **options: Any) -> MailConfig:
    return load_mail_config(Settings.load(write_config(tmp_path / "metaudit.yaml", **options)))


def many_findings() -> PracticeDigest:
    """The sample digest and sixty more new findings: rows beyond the per-rule limit."""
    digest = sample_digest()
    more = [tracked(finding("REF-002", f"SE9{i:05d}", f"CL9{i:05d}")) for i in range(60)]
    return PracticeDigest(
        practice_id=digest.practice_id,
        practice_name=digest.practice_name,
        as_of=digest.as_of,
        new=[*digest.new, *more],
        still_open=digest.still_open,
        resolved=digest.resolved,
        due_soon=digest.due_soon,
    )


def post_everything(config: MailConfig, double: SendGridDouble, outbox: Path) -> list[str]:
    """Every kind of message the project sends, posted through the real client."""
    kinds = []
    for label, digest in (("many findings", many_findings()), ("no findings", empty_digest())):
        result = notify_practice(
            digest,
            config,
            api_key=API_KEY,
            host=double.host,
            outbox_dir=outbox / label.replace(" ", "-"),
            run_id="scheduled__2026-03-31T04:30:00+00:00",
            sleep=lambda _: None,
        )
        assert result.status == "sent", label
        kinds.append(label)
    alert = alert_admins_email(
        "audit failed for PR0002",
        "practice PR0002: SourceUnavailableError",
        config,
        key="scheduled__2026-03-31T04:30:00+00:00",
        as_of=AS_OF,
        api_key=API_KEY,
        host=double.host,
        outbox_dir=outbox / "alerts",
        sleep=lambda _: None,
        now=lambda: datetime(2026, 3, 31, 5, tzinfo=UTC),
    )
    assert alert.status == "sent"
    kinds.append("admin alert")
    return kinds


@pytest.mark.parametrize("sandbox_mode", [False, True], ids=["live", "sandbox"])
def test_every_payload_conforms_to_sendgrids_mail_send_schema(
    tmp_path: Path, double: SendGridDouble, mail_send_validator, sandbox_mode: bool
) -> None:
    config = loaded(tmp_path, sandbox_mode=sandbox_mode)
    kinds = post_everything(config, double, tmp_path / "outbox")
    assert len(double.requests) == len(kinds) == 3
    for kind, request in zip(kinds, double.requests, strict=True):
        assert (request.method, request.path) == ("POST", "/v3/mail/send"), kind
        body = request.json
        errors = schema_errors(mail_send_validator, body)
        assert not errors, f"{kind}: not a valid Mail Send body:\n" + "\n".join(errors)
        assert ("mail_settings" in body) is sandbox_mode, kind
        if sandbox_mode:
            assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}, kind


def test_display_names_reach_sendgrid_as_the_plain_text_configured(
    tmp_path: Path, double: SendGridDouble
) -> None:
    config = loaded(tmp_path)
    post_everything(config, double, tmp_path / "outbox")
    digest, all_clear, alert = (request.json for request in double.requests)
    for kind, body in (("digest", digest), ("all-clear", all_clear), ("alert", alert)):
        names = display_names(body)
        encoded = [n for n in names if ENCODED_WORD.search(n)]
        assert not encoded, f"{kind}: RFC 2047 encoded words in SendGrid's JSON: {encoded}"
        assert body["from"] == {"name": SENDER_NAME, "email": "audit@example.org"}, kind
        assert body["reply_to"] == {"name": REPLY_TO_NAME, "email": "compliance@example.org"}
    for body in (digest, all_clear):
        to = body["personalizations"][0]["to"]
        assert [r.get("name") for r in to] == [*LEAD_NAMES, None]
        assert [r["email"] for r in to][:2] == [
            "lead0@riverside.example",
            "lead1@riverside.example",
        ]
    assert alert["personalizations"][0]["to"] == [
        {"name": ADMIN_NAME, "email": "ops@example.org"},
        {"email": "oncall@example.org"},
    ]


def test_the_schema_check_catches_a_malformed_body(
    tmp_path: Path, double: SendGridDouble, mail_send_validator
) -> None:
    config = loaded(tmp_path)
    post_everything(config, double, tmp_path / "outbox")
    good = double.requests[0].json
    assert not schema_errors(mail_send_validator, good)
    broken = copy.deepcopy(good)
    del broken["from"]["email"]
    broken["personalizations"][0]["to"][0]["name"] = 7
    broken["custom_args"] = ["practice_id", PRACTICE]
    broken["content"][0] = {"type": "text/plain"}
    errors = "\n".join(schema_errors(mail_send_validator, broken))
    assert "'email' is a required property" in errors
    assert "7 is not of type 'string'" in errors
    assert "custom_args" in errors
    assert "'value' is a required property" in errors
    missing = copy.deepcopy(good)
    del missing["personalizations"]
    assert "'personalizations' is a required property" in "\n".join(
        schema_errors(mail_send_validator, missing)
    )
