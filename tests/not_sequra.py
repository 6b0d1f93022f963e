"""A server that is not SeQura: it answers every request with one fixed page or redirect."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

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
