"""Prefect's temporary server for `deliver` without PREFECT_API_URL, started as the command starts.

Left to Prefect, the temporary server starts at the flow's first call: the command first imports Prefect
and the flow, reads the shop and the state store, then imports Prefect's whole server to start it, and
waits for it. Started here, the same server (Prefect's app under uvicorn, as Prefect runs it: no UI, no
services) comes up on the other core while the command imports and reads, and the command never imports
the server's code. The run reports to it as to any Prefect API, and it stops as the process exits, as
Prefect's does, after Prefect has sent the run's last logs and events; killed, the process takes it along
(Linux sends the server SIGTERM as its parent ends).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial

from schemas.errors import TransientError
from tasks.child_process import die_with_parent

EARLY_COMMANDS = ("deliver",)
"""Commands that start the temporary server as they start: they run one flow, here, after their checks."""
SERVER_ENVIRONMENT = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
"""What Prefect sets for its temporary server: no UI, no services."""
STOP_WAIT_SECONDS = 5
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Asks the server on loopback directly, whatever http_proxy says."""
logger = logging.getLogger("prefect")


class TemporaryServerError(TransientError):
    """Prefect's temporary server stopped before it answered."""


@dataclass
class TemporaryServer:
    """Prefect's API app served by uvicorn on loopback, in a process of its own."""

    process: subprocess.Popen[bytes]
    port: int
    used: bool = False

    @property
    def address(self) -> str:
        """Its address, http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls) -> TemporaryServer:
        """Start the server on a free port without waiting for it; starts a process, stopped at exit.

        Started by the main thread, it gets SIGTERM when the process ends, however it ends (Linux).
        """
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        app = "prefect.server.api.server:create_app"
        command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "error", "--lifespan", "on"]  # fmt: skip
        environment = {**os.environ, **SERVER_ENVIRONMENT}
        with_parent = partial(die_with_parent, signal.SIGTERM, os.getpid())
        server = cls(subprocess.Popen(command, env=environment, preexec_fn=with_parent), port)
        atexit.register(server.stop)
        return server

    def wait_until_answering(self, timeout: float) -> None:
        """Wait until the server answers its health check; TemporaryServerError if it stops first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with DIRECT.open(f"{self.address}/api/health", timeout=2):
                    return
            except OSError:
                code = self.process.poll()
                if code is not None or time.monotonic() > deadline:
                    why = f"exit code {code}" if code is not None else f"no answer in {timeout:.0f} s"
                    raise TemporaryServerError(
                        f"Prefect's temporary server did not start ({why}); run the command again, or set "
                        "PREFECT_API_URL to a running Prefect server"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server if it runs, as Prefect stops its own: terminate, then kill after a wait.

        One no run used is killed at once: it holds nothing to keep.
        """
        if self.process.poll() is not None:
            return
        if not self.used:
            self.process.kill()
            self.process.wait()
            return
        logger.info("Stopping temporary server on %s", self.address)
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


STARTED: ContextVar[TemporaryServer | None] = ContextVar("temporary_server", default=None)


def api_configured() -> bool:
    """Whether a Prefect API is set: PREFECT_API_URL, or Prefect's settings if Prefect is imported already."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect.settings" not in sys.modules:  # importing Prefect takes seconds the server can use
        return False
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


@contextmanager
def early_temporary_server(command: str | None) -> Iterator[None]:
    """For a command in EARLY_COMMANDS without PREFECT_API_URL, start the temporary server now; starts it.

    prefect_api() uses it for the run, or stops it when Prefect's settings name a server after all.
    """
    if command not in EARLY_COMMANDS or api_configured():
        yield
        return
    token = STARTED.set(TemporaryServer.start())
    try:
        yield
    finally:
        STARTED.reset(token)


@contextmanager
def prefect_api() -> Iterator[None]:
    """Around a flow call: the temporary server the command started, once it answers, as Prefect's API.

    Without one, or when Prefect's settings (a profile) name a server, Prefect's API is as configured.
    Waits for the server; raises TemporaryServerError if it stops before it answers. Runs on it send no
    heartbeat: the server stops with the run, so none is left to miss one, and Prefect would spend up to
    a second at the run's end joining the thread that sends them.
    """
    server = STARTED.get()
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_UI_URL,
        get_current_settings,
        temporary_settings,
    )

    settings = get_current_settings()
    if server is None or settings.api.url:
        if server is not None:
            server.stop()
        yield
        return
    logger.info(
        "Starting temporary server on %s\nSee https://www.prefect.io/docs/v3/concepts/server#how-to-guides "
        "for more information on running a dedicated Prefect server.",
        server.address,
    )
    server.used = True
    server.wait_until_answering(settings.server.ephemeral.startup_timeout_seconds)
    # no UI URL: the temporary server serves no UI, so runs get no "View at" link, as on Prefect's own
    on_the_server = {PREFECT_API_URL: f"{server.address}/api", PREFECT_UI_URL: ""}
    with temporary_settings({**on_the_server, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
