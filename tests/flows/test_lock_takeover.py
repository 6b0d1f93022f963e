"""A delivery report asks the real Prefect server whether the run holding its merchant's lock has ended."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Crashed, Running
from sqlalchemy import select, update

from flows.delivery_report import delivery_report
from schemas.state import run_locks, runs
from tasks.state.errors import RunInProgressError
from tasks.state.runs import start_run
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.flows.conftest import Pipeline
from tests.shops import SINCE, UNTIL

WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


def hold_from_another_host(pipeline: Pipeline, run_id: str, flow_run_id: uuid.UUID) -> None:
    """Let a run of the flow run `flow_run_id`, working on another host, hold demo_merchant's lock."""
    store = open_state_store(pipeline.state_url)
    start_run(
        store, run_id, "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=str(flow_run_id)
    )
    with store.engine.begin() as conn:
        conn.execute(
            update(run_locks).values(host="worker-2", pid=4242, pid_space="another-boot", process_started=1)
        )
    store.dispose()


def test_a_lock_held_from_another_host_is_taken_at_once_when_prefect_shows_its_flow_run_ended(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQURA_LOCK_WAIT_SECONDS", "0.2")  # at once: neither this wait nor the lease helps
    monkeypatch.setattr("tasks.state.locks.LOCK_POLL_SECONDS", 0.05)
    delivery_report(since=(SINCE - timedelta(days=1)).isoformat(), until=SINCE.isoformat())  # a history
    pipeline.shop.shipped_order("AAAAAAAAA")
    with get_client(sync_client=True) as client:
        holder = client.create_flow_run(
            delivery_report, parameters={"merchant": "demo_merchant"}, state=Running()
        )
        hold_from_another_host(pipeline, "on-worker-2", holder.id)

        with pytest.raises(RunInProgressError) as refused:  # Prefect shows it Running: it may be alive
            delivery_report(**WINDOW)
        client.set_flow_run_state(holder.id, Crashed(message="worker-2 lost"), force=True)
        summary = delivery_report(**WINDOW)

    assert f"flow run {holder.id}, process 4242 on host worker-2" in str(refused.value)
    assert summary.counts.sent == 1 and pipeline.accepted() == ["AAAAAAAAA"]
    store = open_state_store(pipeline.state_url)
    with store.engine.connect() as conn:
        status, message = conn.execute(
            select(runs.c.status, runs.c.message).where(runs.c.run_id == "on-worker-2")
        ).one()
    store.dispose()
    assert status == "crashed"
    assert message.startswith(
        f"Prefect shows its flow run {holder.id} ended (a final state, such as Crashed)"
    )
