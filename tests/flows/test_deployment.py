"""The deployments: declared as documented, and run for real on a Prefect server through a worker."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import yaml
from prefect.flows import load_flow_from_entrypoint
from sqlalchemy import create_engine, delete

from sandbox.server import SandboxServer
from schemas.state import run_locks
from tasks.state.runs import start_run
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.prefect_servers import BIN, PROJECT, STARTUP, clean_environment, prefect_api, served_prefect, stop
from tests.shops import MORNING, SINCE, UNTIL, sqlite_shop


def deployments() -> dict[str, dict]:
    document = yaml.safe_load((PROJECT / "prefect.yaml").read_text(encoding="utf-8"))
    return {deployment["name"]: deployment for deployment in document["deployments"]}


def test_only_the_nightly_every_merchant_and_the_weekly_payouts_deployments_have_a_schedule() -> None:
    declared = deployments()
    nightly = declared["every-merchant"]
    active = [name for name, d in declared.items() if any(s["active"] for s in d.get("schedules", []))]
    assert active == ["every-merchant", "payouts"]
    assert [(s["cron"], s["timezone"], s["active"]) for s in declared["payouts"]["schedules"]] == [
        ("0 8 * * 1", "Europe/Madrid", True)  # Monday morning in the shop's time zone
    ]
    assert [s["active"] for s in declared["delivery-report"]["schedules"]] == [False]
    assert {s["slug"]: (s["cron"], s["timezone"], s["active"]) for s in nightly["schedules"]} == {
        "nightly": ("30 2 * * *", "Europe/Madrid", True),
        "every-15-minutes": ("*/15 * * * *", "Europe/Madrid", False),  # README "Same-day reporting"
    }
    assert nightly["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert nightly["work_pool"]["job_variables"]["env"]["STATE_DB_URL"] == "{{ state-store.stdout }}"


def test_every_entrypoint_loads_its_flow() -> None:
    for deployment in deployments().values():
        path, _, name = deployment["entrypoint"].partition(":")
        loaded = load_flow_from_entrypoint(str(PROJECT / path) + ":" + name)
        assert loaded.name == deployment["name"]


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[str]:
    """`prefect server start` on a free port with a PREFECT_HOME of its own; yields its API URL."""
    with served_prefect(tmp_path) as api:
        yield api


def prefect(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the prefect command from the project checkout, as the README does; fails the test on an error."""
    done = subprocess.run(
        [str(BIN / "prefect"), *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=STARTUP
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def wait_for_end(api: str, flow_run_id: str) -> dict:
    """Ask for a flow run until it reaches a final state (or STARTUP seconds pass); its JSON."""
    deadline = time.monotonic() + STARTUP
    while True:
        run = prefect_api(api, "GET", f"/flow_runs/{flow_run_id}")
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        assert time.monotonic() < deadline, f"run still {run['state']['name']} after {STARTUP} s"
        time.sleep(1)


def deploy(prefect_server: str, tmp_path: Path, state_url: str) -> dict[str, str]:
    """Create the work pool and deploy every deployment, as the README does; the CLI's environment."""
    cli = clean_environment(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=prefect_server)
    prefect("work-pool", "create", "local-process", "--type", "process", env=cli)
    prefect("--no-prompt", "deploy", "--all", env={**cli, "STATE_DB_URL": state_url})
    return cli


def shop_settings(tmp_path: Path, sandbox_server: SandboxServer) -> dict[str, str]:
    """The settings a worker (and a person's shell) has: the test shop, the sandbox, the demo merchant."""
    return {
        "SHOP_DB_URL": f"sqlite:///{tmp_path / 'shop.sqlite'}",
        "SEQURA_API_URL": sandbox_server.url,
        "SEQURA_USERNAME": "demo",
        "SEQURA_PASSWORD": "demo-secret",
        "SEQURA_MERCHANT_ID": "demo_merchant",
        "XDG_DATA_HOME": str(tmp_path / "worker-data"),
    }


@contextmanager
def worker(env: dict[str, str], folder: Path) -> Iterator[None]:
    """`prefect worker start --pool local-process` while the block runs; its log in `folder`."""
    log = (folder / "worker.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "local-process"],
        cwd=folder,
        env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield
    finally:
        stop(process, grace=5)
        log.close()


def test_the_documented_deployment_runs_on_a_prefect_server_through_a_worker(
    prefect_server: str, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    shop = sqlite_shop(tmp_path / "shop.sqlite")
    shop.shipped_order("AAAAAAAAA")
    shop.engine.dispose()
    requests.post(f"{sandbox_server.url}_sandbox/reset", timeout=5).raise_for_status()
    state_url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    started = time.monotonic()
    cli = deploy(prefect_server, tmp_path, state_url)
    deployment = prefect_api(prefect_server, "GET", "/deployments/name/delivery-report/delivery-report")
    assert deployment["job_variables"]["env"]["STATE_DB_URL"] == state_url
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}
    ]
    every_merchant = prefect_api(prefect_server, "GET", "/deployments/name/every-merchant/every-merchant")
    assert {s["slug"]: (s["schedule"]["cron"], s["active"]) for s in every_merchant["schedules"]} == {
        "nightly": ("30 2 * * *", True),
        "every-15-minutes": ("*/15 * * * *", False),
    }
    with worker({**cli, **shop_settings(tmp_path, sandbox_server)}, tmp_path):
        created = prefect_api(
            prefect_server,
            "POST",
            f"/deployments/{deployment['id']}/create_flow_run",
            {"parameters": {"since": "2026-11-20", "until": "2026-11-21"}, "idempotency_key": "one-run"},
        )
        run = wait_for_end(prefect_server, created["id"])
        payouts = prefect_api(prefect_server, "GET", "/deployments/name/payouts/payouts")
        checked = prefect_api(
            prefect_server, "POST", f"/deployments/{payouts['id']}/create_flow_run", {"parameters": {}}
        )
        check = wait_for_end(prefect_server, checked["id"])
    seconds = time.monotonic() - started
    assert run["state"]["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
    assert run["name"] == "delivery-report 2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid"
    artifacts = prefect_api(
        prefect_server, "POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [created["id"]]}}}
    )
    summary = next(a for a in artifacts if a["key"] == "delivery-report-summary-demo-merchant")
    found, answered = "\n| 1 | 0 | 0 | 0 |\n", "\n| 1 | 0 | 0 | 0 | 0 | 0 |\n"  # new 1; sent 1
    assert found in summary["data"] and answered in summary["data"]
    assert [
        row["Order"]
        for row in json.loads(
            next(a for a in artifacts if a["key"] == "delivery-report-sent-demo-merchant")["data"]
        )
    ] == ["AAAAAAAAA"]
    assert check["state"]["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
    assert check["name"].startswith("payouts demo_merchant ") and check["name"].endswith(" Europe/Madrid")
    checked_artifacts = prefect_api(
        prefect_server, "POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [checked["id"]]}}}
    )
    payout_summary = next(a for a in checked_artifacts if a["key"] == "payouts-summary-demo-merchant")
    assert "SeQura lists no disbursement for this merchant yet" in payout_summary["data"]
    assert (tmp_path / "state.sqlite").exists()
    assert not (tmp_path / "worker-data").exists()
    print(f"\nwork pool, deploy, worker and one run on a Prefect server: {seconds:.0f} s")


def free_the_lock_once_a_child_failed(api: str, deployment: str, state_url: str) -> threading.Thread:
    """A thread that frees the merchant's lock (its holder ended) once a child of `deployment` failed."""

    def watch() -> None:
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            children = prefect_api(
                api, "POST", "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment]}}}
            )
            for child in children:
                states = prefect_api(api, "GET", f"/flow_run_states/?flow_run_id={child['id']}")
                if any(state["type"] == "FAILED" for state in states):
                    engine = create_engine(state_url)
                    with engine.begin() as conn:
                        conn.execute(delete(run_locks))
                    engine.dispose()
                    return
            time.sleep(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_the_readme_backfill_runs_each_window_on_the_workers_tries_one_again_and_again_creates_no_run(
    prefect_server: str, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    shop = sqlite_shop(tmp_path / "shop.sqlite")
    ids = [
        shop.shipped_order(reference, at=MORNING + timedelta(days=day))
        for day, reference in enumerate(("AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC"))
    ]
    shop.set_order(ids[2], total_paid_tax_incl=Decimal("99.00"))  # CCCCCCCCC's totals do not add up
    shop.engine.dispose()
    requests.post(f"{sandbox_server.url}_sandbox/reset", timeout=5).raise_for_status()
    state_url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = open_state_store(state_url)  # a nightly run of this process holds the lock as the backfill starts
    start_run(
        store, "the-nightly-run", "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None
    )
    store.dispose()
    cli = deploy(prefect_server, tmp_path, state_url)
    deployment = prefect_api(prefect_server, "GET", "/deployments/name/delivery-report/delivery-report")
    shell = {**cli, **shop_settings(tmp_path, sandbox_server), "STATE_DB_URL": state_url}
    command = [str(BIN / "sequra-etl"), "backfill", "--since", "2026-11-20", "--until", "2026-11-23"]
    printed = []
    workers = {**cli, **shop_settings(tmp_path, sandbox_server), "SEQURA_LOCK_WAIT_SECONDS": "1"}
    with worker(workers, tmp_path):
        watcher = free_the_lock_once_a_child_failed(prefect_server, deployment["id"], state_url)
        for _ in range(2):
            done = subprocess.run(
                command, env=shell, cwd=tmp_path, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            printed.append(done.stdout)
        watcher.join()
    for table in printed:
        assert table.count("Madrid | Completed |") == 2 and table.count("Madrid | Quarantined |") == 1, table
    children = prefect_api(
        prefect_server, "POST", "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment["id"]]}}}
    )
    assert sorted((run["name"], run["run_count"]) for run in children) == [  # tried again, and again: no twin
        ("delivery-report 2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid", 3),
        ("delivery-report 2026-11-21 01:00 → 2026-11-22 01:00 Europe/Madrid", 2),
        ("delivery-report 2026-11-22 01:00 → 2026-11-23 01:00 Europe/Madrid", 2),
    ]
    last_day = "2026-11-22 01:00 → 2026-11-23 01:00 Europe/Madrid"
    parents = prefect_api(
        prefect_server, "POST", "/flow_runs/filter", {"flows": {"name": {"any_": ["backfill"]}}}
    )
    assert [(run["name"], run["state"]["name"]) for run in parents] == [
        ("backfill 2026-11-20 01:00 → 2026-11-23 01:00 Europe/Madrid", "Quarantined")
    ] * 2
    assert parents[0]["state"]["message"].startswith(
        "1 of 3 delivery reports left orders in quarantine or order updates held: demo_merchant "
        f"{last_day} (delivery-report {last_day}): 1 found"
    )
    accepted = requests.get(f"{sandbox_server.url}_sandbox/orders", timeout=5).json()
    assert sorted(order["order_ref_1"] for order in accepted) == ["AAAAAAAAA", "BBBBBBBBB"]


def test_the_actions_a_person_takes_are_deployments_without_a_schedule() -> None:
    declared = deployments()
    for name in ("release", "reconciliation", "backfill"):
        assert "schedules" not in declared[name]
        assert (
            declared[name]["work_pool"]["job_variables"]["env"]["STATE_DB_URL"] == "{{ state-store.stdout }}"
        )
    assert declared["reconciliation"]["parameters"] == {"apply": False}
