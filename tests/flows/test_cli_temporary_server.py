from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from flows.cli.temporary_server import STARTED, TemporaryServer, prefect_api
from tests.child_processes import killed_with_its_children, started_by_a_parent
from tests.prefect_servers import PROJECT, STARTUP

COMMAND_WITH_SERVER = f"""
import time
from flows.cli.temporary_server import TemporaryServer
server = TemporaryServer.start()
server.wait_until_answering({STARTUP})
print(server.process.pid, flush=True)
time.sleep(300)
"""


def test_the_temporary_server_ends_when_the_command_that_started_it_is_killed(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    command, server = started_by_a_parent(COMMAND_WITH_SERVER, env=env)

    assert killed_with_its_children(command, [server], within=15) == []


def test_the_temporary_server_is_asked_directly_whatever_http_proxy_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a proxy that answers nothing
    monkeypatch.delenv("no_proxy", raising=False)
    server = TemporaryServer.start()
    try:
        server.wait_until_answering(timeout=STARTUP)
    finally:
        server.stop()


COMMAND_THAT_SAYS_WHAT_IS_IMPORTED = """
import sys
from flows.cli import temporary_server
from flows.cli.main import main

def start():
    print(sorted(name for name in ("prefect", "pandas", "sqlalchemy") if name in sys.modules), flush=True)
    raise SystemExit(0)

temporary_server.TemporaryServer.start = start
main(["deliver", "--dry-run"])
"""


def test_deliver_starts_the_temporary_server_before_importing_prefect_pandas_or_sqlalchemy(
    tmp_path: Path,
) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", COMMAND_THAT_SAYS_WHAT_IS_IMPORTED],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=STARTUP,
    )  # fmt: skip

    assert done.stdout == "[]\n", done.stderr[-3000:]


def test_runs_on_the_temporary_server_send_no_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TemporaryServer, "wait_until_answering", lambda self, timeout: None)
    token = STARTED.set(TemporaryServer(process=None, port=1))  # type: ignore[arg-type]
    try:
        with temporary_settings({PREFECT_API_URL: ""}), prefect_api():
            settings = get_current_settings()
            assert settings.api.url == "http://127.0.0.1:1/api"
            assert settings.flows.heartbeat_frequency is None
    finally:
        STARTED.reset(token)


DELIVER_THAT_SAYS_WHAT_IS_IMPORTED_AS_IT_WAITS = """
import contextlib, sys
from flows.cli import delivery
from flows.cli.main import main

@contextlib.contextmanager
def waiting_for_the_server():
    names = ("prefect.flow_engine", "prefect.task_engine", "fastapi.encoders", "pandera.backends.pandas")
    print(sorted(name for name in names if name not in sys.modules), flush=True)
    raise SystemExit(0)
    yield

for check in ("check_out_option", "check_window_options", "check_ready"):
    setattr(delivery, check, lambda *args: None)
delivery.settings_of = lambda *args: type("Checked", (), {"state_url": lambda self: None})()
delivery.prefect_api = waiting_for_the_server
main(["deliver", "--dry-run"])
"""


def test_deliver_imports_what_the_run_imports_before_it_waits_for_the_server(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_API_URL="http://127.0.0.1:9/api")
    done = subprocess.run(
        [sys.executable, "-c", DELIVER_THAT_SAYS_WHAT_IS_IMPORTED_AS_IT_WAITS],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=STARTUP,
    )  # fmt: skip

    assert done.stdout == "[]\n", done.stderr[-3000:]
