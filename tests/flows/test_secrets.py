"""No secret is ever shown: with a password in every setting that can hold one, runs that succeed and runs
that fail leave it in no log line, output, flow run name, parameter, state message, artifact, file or store.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import FlowRunSort
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from flows.cli.main import main
from schemas.settings import secret_block_value
from tasks.inert import plain_text
from tests.flows.conftest import Pipeline
from tests.tasks.state.conftest import POSTGRES_SERVER

SHOP_PASSWORD = f"Shop-S3cret-{secrets.token_hex(4)}"
STATE_PASSWORD = f"State-S3cret-{secrets.token_hex(4)}"
SEQURA_PASSWORD = "demo-secret"  # the sandbox's own; read from a Secret block
SECRETS = (SHOP_PASSWORD, STATE_PASSWORD, SEQURA_PASSWORD)
WINDOW = ["--since", "2026-11-20", "--until", "2026-11-21"]
NEWEST = FlowRunSort.EXPECTED_START_TIME_DESC  # the session's server holds hundreds of runs; ids are random


@pytest.fixture
def shop_reader(pipeline: Pipeline) -> Iterator[str]:
    """SHOP_DB_URL for a MariaDB user of the test shop whose password is SHOP_PASSWORD, in its user part."""
    shop = pipeline.shop.engine.url
    user = f"reader_{secrets.token_hex(4)}"
    admin = create_engine(shop, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{SHOP_PASSWORD}'"))
        conn.execute(text(f"GRANT SELECT ON `{shop.database}`.* TO '{user}'@'%'"))
    yield shop.set(username=user, password=SHOP_PASSWORD).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP USER '{user}'@'%'"))


@pytest.fixture
def state_with_password() -> Iterator[str]:
    """STATE_DB_URL of a fresh PostgreSQL database, STATE_PASSWORD in its query string (trust auth)."""
    admin = create_engine(POSTGRES_SERVER, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    name = f"sequra_etl_state_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield f"{POSTGRES_SERVER.rsplit('/', 1)[0]}/{name}?password={STATE_PASSWORD}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def everything_shown(flow_run_ids: list, folder: Path, state_url: str) -> dict[str, str]:
    """Every text a person or a tool can see after the runs, by where it is shown."""
    shown: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for flow_run_id in flow_run_ids:
            run = client.read_flow_run(flow_run_id)
            name = f"run {run.name} ({flow_run_id})"
            shown[f"{name}: name, parameters, state"] = (
                f"{run.name} {run.parameters} {run.state.name if run.state else ''} "
                f"{run.state.message if run.state else ''}"
            )
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            shown[f"{name}: logs"] = "\n".join(log.message for log in logs)
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            shown[f"{name}: artifacts"] = "\n".join(f"{a.description} {a.data}" for a in artifacts)
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix not in (".sqlite", ".db"):
            shown[f"file {path.relative_to(folder)}"] = path.read_text(encoding="utf-8", errors="replace")
    store = create_engine(state_url, poolclass=NullPool)
    tables = MetaData()
    tables.reflect(store)
    with store.connect() as conn:
        for table in tables.sorted_tables:
            shown[f"state store table {table.name}"] = str(conn.execute(select(table)).all())
    return shown


@pytest.mark.parametrize("pipeline", ["mysql"], indirect=True)
def test_no_password_is_shown_by_runs_that_succeed_or_fail(
    pipeline: Pipeline,
    shop_reader: str,
    state_with_password: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    pipeline.shop.shipped_order("AAAAAAAAA")
    Secret(value=SEQURA_PASSWORD).save("test-sequra-password", overwrite=True)
    secret_block_value.cache_clear()
    monkeypatch.setenv("SEQURA_PASSWORD", "block:test-sequra-password")
    monkeypatch.setenv("SHOP_DB_URL", shop_reader)
    monkeypatch.setenv("STATE_DB_URL", state_with_password)
    monkeypatch.setenv("SEQURA_MAX_ATTEMPTS", "2")
    with get_client(sync_client=True) as client:
        before = {run.id for run in client.read_flow_runs(sort=NEWEST, limit=200)}

        assert main(["deliver", *WINDOW, "--dry-run"]) == 0
        assert main(["deliver", *WINDOW]) == 0
        pipeline.shop.shipped_order("BBBBBBBBB")
        pipeline.faults(fail_next=10)
        assert main(["deliver", *WINDOW]) == 1  # SeQura keeps failing
        monkeypatch.setenv("SHOP_DB_URL", shop_reader.replace(SHOP_PASSWORD, SHOP_PASSWORD + "-wrong"))
        assert main(["deliver", *WINDOW]) == 1  # the shop refuses the password
        monkeypatch.setenv("SHOP_DB_URL", shop_reader)
        assert main(["reconcile", "--corrections", f"{pipeline.sandbox.url}_sandbox/corrections"]) == 0
        ran = [run.id for run in client.read_flow_runs(sort=NEWEST, limit=200) if run.id not in before]

    out, err = capfd.readouterr()
    shown = everything_shown(ran, tmp_path, state_with_password)
    shown["the terminal"] = out + err
    assert len(ran) == 4 and "SeQura did not answer" in shown["the terminal"]  # a refused shop: no run
    assert "check SHOP_DB_URL" in shown["the terminal"]
    read = {
        "artifacts": "AAAAAAAAA",
        "logs": "found 1",
        "state store table": "AAAAAAAAA",
        "file": "AAAAAAAAA",
    }
    for where, probe in read.items():  # every place was read
        assert any(probe in text_ for place, text_ in shown.items() if where in place), where
    leaks = {  # artifacts escape markdown: search their text as shown too
        where: secret
        for where, text_ in shown.items()
        for secret in SECRETS
        if secret in text_ or secret in plain_text(text_)
    }
    assert leaks == {}
    assert make_url(state_with_password).query["password"] == STATE_PASSWORD  # the store did use it
