"""A real Prefect server for the tests that need one of their own (deployments, the UI)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STARTUP = 120  # seconds a Prefect server or a run may take on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_environment(**values: str) -> dict[str, str]:
    """This process's environment without its Prefect and project settings, plus `values`."""
    project = ("PREFECT_", "SHOP_", "SEQURA_", "STATE_DB_URL", "CORRECTIONS_")
    kept = {name: value for name, value in os.environ.items() if not name.startswith(project)}
    return {**kept, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **values}


def prefect_api(api: str, method: str, path: str, body: object = None, *, seconds: float = STARTUP) -> Any:
    """The JSON answer of a call to a Prefect server's API, once the server gives one.

    A busy server may answer 5xx (its SQLite database locked) or not in time: the call is made again until
    `seconds` have passed; the test then fails saying what the server last answered. Any other error fails
    it at once, naming the call and the answer.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = requests.request(method, f"{api}{path}", json=body, timeout=30)
        except requests.RequestException as error:
            problem = f"no answer ({type(error).__name__}: {error})"
        else:
            if response.ok:
                return response.json()
            problem = f"{response.status_code} {response.text[:500]}"
            if response.status_code < 500:
                raise AssertionError(f"{method} {path} was answered {problem}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{method} {path}: the Prefect server gave no answer in {seconds:g} s: {problem}"
            )
        time.sleep(1)


def stop(process: subprocess.Popen[bytes], grace: float = STARTUP) -> None:
    """Stop a server or worker and its children: SIGTERM, then SIGKILL if it is still there after `grace` s.

    A Prefect worker answers SIGTERM by interrupting itself and may take minutes to exit (Prefect 3.9):
    the tests stop theirs with a short grace, once every run they started has ended.
    """
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _healthy(api: str) -> bool:
    try:
        return requests.get(f"{api}/health", timeout=2).ok
    except requests.RequestException:
        return False


@contextmanager
def served_prefect(folder: Path) -> Iterator[str]:
    """`prefect server start` on a free port, its PREFECT_HOME and log in `folder`; yields its API URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = clean_environment(PREFECT_HOME=str(folder / "prefect-home"), PREFECT_UI_API_URL=api)
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP
        while not _healthy(api):
            assert server.poll() is None, (folder / "server.log").read_text()
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.5)
        yield api
    finally:
        stop(server)
        log.close()
