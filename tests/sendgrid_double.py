"""A small stand-in for the SendGrid v3 API: a real HTTP peer on 127.0.0.1 for the real client.

No SendGrid mock server exists on PyPI; this one answers ``POST /v3/mail/send``
the way SendGrid does (202 with ``X-Message-Id``; errors as
``{"errors": [{"message", "field", "help"}]}``), records every request, and
plays scripted replies (429 with rate-limit headers, 500s, 401, slow answers,
a request that never gets an answer).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``delay`` seconds pass before it; ``hang`` never answers (until stop)."""

    status: int = 202
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False


def error_reply(status: int, message: str, **headers: str) -> Reply:
    """A SendGrid-shaped error answer."""
    return Reply(
        status, {"errors": [{"message": message, "field": None, "help": None}]}, dict(headers)
    )


@dataclass(frozen=True)
class Recorded:
    """One request as the double received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class SendGridDouble:
    """Start with :meth:`start` (returns the host for ``SendGridAPIClient(host=...)``)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self.default = Reply(202)
        self.received = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests; afterwards :attr:`default` answers."""
        with self._lock:
            self._script.extend(replies)

    def _next(self, request: Recorded) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
            reply = self._script.popleft() if self._script else self.default
        self.received.set()
        return reply, number

    @property
    def host(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Recorded(self.command, self.path, dict(self.headers.items()), body)
                reply, number = double._next(request)
                if reply.hang:
                    double._release.wait(60)
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                payload = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
                self.send_response(reply.status)
                headers = dict(reply.headers)
                if reply.status in (200, 202):
                    headers.setdefault("X-Message-Id", f"double-message-{number}")
                for name, value in headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            do_POST = _answer
            do_GET = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.host

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
