"""Serve the sandbox on loopback with uvicorn: in a background thread for tests, or in the foreground."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

from sandbox.app import SandboxState, create_app
from sandbox.config import SandboxConfig

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
# What uvicorn logs when the app cuts a response short, which the sandbox does on purpose (drop_next).
INTENTIONAL_DROP_LOG = "ASGI callable returned without completing response."


class _HideIntentionalDrops(logging.Filter):
    """Hide uvicorn's complaint about the responses the sandbox drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record except the dropped-response complaint."""
        return record.getMessage() != INTENTIONAL_DROP_LOG


def _uvicorn_server(app: FastAPI, port: int) -> uvicorn.Server:
    """Build a quiet uvicorn server for app on the loopback port (0 picks a free one)."""
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _HideIntentionalDrops) for existing in error_log.filters):
        error_log.addFilter(_HideIntentionalDrops())
    return server


class SandboxServer:
    """The sandbox served from a daemon thread for as long as the `with` block lasts."""

    def __init__(self, port: int = 0, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        app = create_app(self.config)
        self.state: SandboxState = app.state.sandbox
        self.port = port
        self._server = _uvicorn_server(app, port)
        self._thread = threading.Thread(target=self._server.run, name="sequra-sandbox", daemon=True)

    @property
    def url(self) -> str:
        """Return the base URL, with a trailing slash."""
        return f"http://{HOST}:{self.port}/"

    def __enter__(self) -> SandboxServer:
        """Start serving and wait until the socket accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the SeQura sandbox did not start on {HOST}:{self.port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop serving and wait for the server thread to end."""
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_SECONDS)


def serve_forever(port: int, config: SandboxConfig) -> None:
    """Serve the sandbox on the loopback port until interrupted.

    The orders it accepts are frozen out of the garbage collector (gc.freeze), being held until a reset:
    otherwise each full collection walks every order held while a new report is read.
    """
    app = create_app(config)
    app.state.sandbox.freeze_held = True
    _uvicorn_server(app, port).run()
