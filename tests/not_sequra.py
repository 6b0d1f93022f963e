"""Servers that are not SeQura: one fixed page or redirect, or any answer scripted byte for byte."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import BinaryIO, Literal

from requests.utils import unquote_unreserved

LOGIN_PAGE = ("200 OK", "text/html", b"<html><body>Please log in</body></html>")
REDIRECT = ("307 Temporary Redirect", "text/html", b"")


@contextmanager
def not_sequra(status: str, content_type: str, body: bytes) -> Iterator[str]:
    """A local HTTP server answering every POST with `status`, `body` and a Location on another host."""

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(int(status.split()[0]))
            self.send_header("Content-Type", content_type)
            self.send_header("Location", "http://elsewhere.example/orders/delivery_reports")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Scripted:
    """One answer exactly as it goes on the wire: status line, headers, body, dripped out or at once."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_length: bool = True  # else the closed connection ends the body
    drip_seconds: float = 0.0  # pause before each byte from `drip_from` on
    drip_from: Literal["status line", "headers", "body"] = "body"  # where the answer starts to drip
    keep_alive: bool = False  # else Connection: close, and the server closes it

    def send(self, out: BinaryIO) -> None:
        """Write the answer to `out`: status line, headers and body, from `drip_from` on a byte at a time."""
        status = f"HTTP/1.1 {self.status} Scripted\r\n".encode("latin-1")
        lines = [f"{name}: {value}" for name, value in self.headers]
        if self.content_length:
            lines.append(f"Content-Length: {len(self.body)}")
        if not self.keep_alive:
            lines.append("Connection: close")
        headers = "\r\n".join([*lines, "", ""]).encode("latin-1")
        answer = status + headers + self.body
        starts = {"status line": 0, "headers": len(status), "body": len(status) + len(headers)}
        at_once = starts[self.drip_from] if self.drip_seconds else len(answer)
        out.write(answer[:at_once])
        out.flush()
        for offset in range(at_once, len(answer)):
            time.sleep(self.drip_seconds)
            out.write(answer[offset : offset + 1])
            out.flush()


class Replay:
    """A local HTTP server that answers each request with the answer scripted for it, noting it.

    `answers` is keyed by method ("GET"), or by method and path as it arrives ("GET /a/b") for that path.
    """

    def __init__(self) -> None:
        self.answers: dict[str, Scripted] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path as it arrived)
        self.authorizations: list[str | None] = []  # the Authorization header of each request
        self.peers: list[tuple[str, int]] = []  # the client's address and port of each request
        replay = self

        class Answer(BaseHTTPRequestHandler):
            def answer(self) -> None:
                """Note the request and send the scripted answer; a client gone first is no error."""
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                replay.requests.append((self.command, self.path))
                replay.authorizations.append(self.headers.get("Authorization"))
                replay.peers.append(self.client_address)
                answers = replay.answers
                scripted = answers.get(
                    f"{self.command} {self.path}", answers.get(self.command, Scripted(405))
                )
                self.close_connection = not scripted.keep_alive
                with contextlib.suppress(OSError):
                    scripted.send(self.wfile)

            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

            def do_PUT(self) -> None:
                self.answer()

            def log_message(self, format: str, *args: object) -> None:
                """Keep the test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def __enter__(self) -> Replay:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def path_as_served(path: str) -> str:
    """The path a server resolves (RFC 3986): unreserved characters decoded, dot segments removed."""
    path, resolved = unquote_unreserved(path), []
    while path:
        if path.startswith("../"):
            path = path[3:]
        elif path.startswith("./"):
            path = path[2:]
        elif path.startswith("/./") or path == "/.":
            path = "/" + path[3:]
        elif path.startswith("/../") or path == "/..":
            path = "/" + path[4:]
            resolved = resolved[:-1]
        elif path in (".", ".."):
            path = ""
        else:
            end = path.find("/", 1)
            segment, path = (path, "") if end < 0 else (path[:end], path[end:])
            resolved.append(segment)
    return "".join(resolved)
