"""A local stand-in for the SendGrid v3 mail API, for the compose stack.

Mail from the stack goes to this server instead of SendGrid (connection
``sendgrid_default``, host ``http://sendgrid-double:3030``): nothing leaves the
machine, and every accepted message is kept as a JSON file in the outbox folder
to look at.

- ``POST /v3/mail/send``: needs ``Authorization: Bearer <key>`` (the key must
  equal ``SENDGRID_DOUBLE_API_KEY`` when that is set); checks the JSON body has
  ``personalizations``, ``from``, ``subject`` and ``content``; answers 202 with an
  ``X-Message-Id`` (200 in sandbox mode, as SendGrid does), errors in SendGrid's
  shape ``{"errors": [{"message", "field", "help"}]}``.
- ``GET /messages``: what was received (id, time, recipients, subject).
- ``GET /health``: 200 while the server runs.

Standard library only, so it runs on the plain ``python`` image:

    python sendgrid_double.py --host 0.0.0.0 --port 3030 --outbox /outbox
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("sendgrid_double")

REQUIRED_FIELDS = ("personalizations", "from", "subject", "content")
MAX_BODY_BYTES = 30 * 2**20  # SendGrid's limit for a whole request


def check_message(body: Any) -> str | None:
    """What is wrong with a mail/send body, the way SendGrid would say it; None when fine."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    for name in REQUIRED_FIELDS:
        if not body.get(name):
            return f"The {name} field is required."
    recipients = [
        to.get("email")
        for p in body["personalizations"]
        if isinstance(p, dict)
        for to in p.get("to", [])
        if isinstance(to, dict)
    ]
    if not recipients:
        return "Each personalization needs at least one recipient (to)."
    return None


def summary(message: dict[str, Any]) -> dict[str, Any]:
    """The short form of a kept message, for ``GET /messages``."""
    body = message["body"]
    return {
        "id": message["id"],
        "received_at": message["received_at"],
        "to": [to.get("email") for p in body["personalizations"] for to in p.get("to", [])],
        "subject": body.get("subject"),
        "sandbox": message["sandbox"],
    }


def make_handler(outbox: Path, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to an outbox folder and the expected API key."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "sendgrid-double/1"

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

        def _send(
            self, status: int, payload: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, field: str | None = None) -> None:
            self._send(status, {"errors": [{"message": message, "field": field, "help": None}]})

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            elif self.path == "/messages":
                kept = sorted(outbox.glob("*.json"))
                self._send(200, [summary(json.loads(p.read_text())) for p in kept])
            else:
                self._error(404, f"no such resource: {self.path}")

        def do_POST(self) -> None:
            if self.path != "/v3/mail/send":
                self._error(404, f"no such resource: {self.path}")
                return
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or (
                api_key and auth.removeprefix("Bearer ") != api_key
            ):
                self._error(401, "The provided authorization grant is invalid, expired, or revoked")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._error(413, "The request is larger than 30 MB.")
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError):
                self._error(400, "Bad Request: the body is not JSON.")
                return
            problem = check_message(body)
            if problem:
                self._error(400, problem)
                return
            sandbox = bool(body.get("mail_settings", {}).get("sandbox_mode", {}).get("enable"))
            message_id = uuid.uuid4().hex
            received = datetime.now(UTC)
            message = {
                "id": message_id,
                "received_at": received.isoformat(),
                "sandbox": sandbox,
                "body": body,
            }
            # Temp file, then rename: a reader of the outbox never sees half a message.
            final = outbox / f"{received:%Y%m%dT%H%M%S%f}-{message_id}.json"
            partial = final.with_suffix(".part")
            partial.write_text(json.dumps(message, indent=1))
            partial.replace(final)
            self._send(200 if sandbox else 202, headers={"X-Message-Id": message_id})

    return Handler


def serve(host: str, port: int, outbox: Path, api_key: str | None) -> ThreadingHTTPServer:
    """A server (not yet serving) on host:port that keeps messages in ``outbox``."""
    outbox.mkdir(parents=True, exist_ok=True)
    return ThreadingHTTPServer((host, port), make_handler(outbox, api_key))


def main() -> int:
    parser = argparse.ArgumentParser(description="Local SendGrid v3 mail/send test double.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3030)
    parser.add_argument("--outbox", type=Path, default=Path("outbox"))
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = serve(
        args.host, args.port, args.outbox, os.environ.get("SENDGRID_DOUBLE_API_KEY") or None
    )
    log.info("listening on %s:%d, outbox %s", args.host, args.port, args.outbox)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
