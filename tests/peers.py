"""Real peers on 127.0.0.1 for the executors: an SMTP server, an HTTP receiver, a canary.

Each runs in its own thread, so tests on any event loop (and workers in other processes) can
reach it, and counts what reached it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

from coeflow.tools.broker import free_port


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    arrived_at: float
    """``time.time()`` when the request arrived (a hanging one is recorded when it ends)."""


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default, 5, resets connections under concurrent calls
    daemon_threads = True


class HttpPeer:
    """Answers by path, and records every request with the status it answered:

    - ``/ok/...``: 200;
    - ``/status/<code>/...``: that status (``?retry_after=N`` adds a Retry-After header);
    - ``/flaky/<n>/...``: 500 for the first ``n`` requests to that path, then 200;
    - ``/hang/...``: answers 200 only after ``hang_seconds``;
    - ``/redirect?to=<url>``: 302 to that URL.
    """

    def __init__(self, host: str = "127.0.0.1", hang_seconds: float = 30.0) -> None:
        self.host, self.port = host, free_port()
        self.hang_seconds = hang_seconds
        self.received: list[Received] = []
        self.arrivals: list[tuple[str, dict[str, str]]] = []
        """(path, headers) of each request as it arrives, before it is answered."""
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _Server((host, self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def to(self, prefix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.startswith(prefix)]

    def __enter__(self) -> HttpPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str]]:
        arrived_at = time.time()
        parts = urlsplit(path)
        segments = parts.path.strip("/").split("/")
        with self._lock:
            self.arrivals.append((path, headers))
            self._seen[parts.path] += 1
            seen = self._seen[parts.path]
        status, extra = 200, {}
        if segments[0] == "status":
            status = int(segments[1])
            retry_after = parse_qs(parts.query).get("retry_after")
            if retry_after:
                extra["Retry-After"] = retry_after[0]
        elif segments[0] == "flaky":
            status = 500 if seen <= int(segments[1]) else 200
        elif segments[0] == "hang":
            time.sleep(self.hang_seconds)
        elif segments[0] == "redirect":
            status, extra = 302, {"Location": parse_qs(parts.query)["to"][0]}
        with self._lock:
            self.received.append(Received(method, path, headers, body, status, arrived_at))
        return status, extra

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = peer._answer(self.command, self.path, headers, body)
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except ConnectionError:  # the caller gave up waiting (a timeout under test)
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


class Canary:
    """A TCP listener that only counts connections: what must never be reached."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host, self.port = host, free_port()
        self.connections = 0
        self._socket = socket.create_server((host, self.port))
        self._socket.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while self._running:
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            connection.close()

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        self._thread.join(2)
        self._socket.close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class SmtpPeer:
    """An aiosmtpd server on 127.0.0.1 that keeps every message; ``bounce*`` recipients get 550."""

    def __init__(self) -> None:
        self.port = free_port()
        self._inbox = _Inbox()
        self._controller = Controller(self._inbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Message]:
        return self._inbox.messages

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in m["X-Envelope-To"]]

    def __enter__(self) -> SmtpPeer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
