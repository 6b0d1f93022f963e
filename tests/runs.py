"""Runs of the pipeline without Prefect: the stage functions a flow run calls, in the same order."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import Engine

from schemas.settings import Settings
from tasks.delivery.chunk import ChunkJob, ChunkOutcome, deliver_chunk
from tasks.delivery.plan import DeliveryPlan, plan_delivery
from tasks.state.runs import RunCounts, finish_run, start_run
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.shops import MERCHANT

LOG = logging.getLogger(__name__)


def settings_for(engine: Engine, state_url: str, **overrides: str) -> Settings:
    """Settings pointing at a shop and a state store, as a run reads them from the environment."""
    environ = {
        "SHOP_DB_URL": engine.url.render_as_string(hide_password=False),
        "STATE_DB_URL": state_url,
        "SEQURA_MERCHANT_ID": MERCHANT,
        "SEQURA_USERNAME": "demo",
        "SEQURA_PASSWORD": "demo-secret",
        "SEQURA_BACKOFF_SECONDS": "0.01",
        **overrides,
    }
    return Settings.from_env(environ)


def deliver_all(
    settings: Settings, window: Window, run_id: str | None = None, **job: object
) -> tuple[DeliveryPlan, ChunkOutcome]:
    """Plan a run and deliver every chunk of it, as the flow does; returns the plan and the outcomes added."""
    store = open_state_store(settings.state_url())
    run_id = run_id or str(uuid.uuid4())
    plan = plan_delivery(settings, store, run_id, window, dry_run=bool(job.get("dry_run")))
    store.dispose()
    total = ChunkOutcome()
    for number in range(plan.chunks):
        due = not total.statistics_settled
        chunk = ChunkJob(run_id, number, window, plan.config, statistics_due=due, chunks=plan.chunks, **job)
        total = total + deliver_chunk(settings, chunk, LOG)
    return plan, total


def run_once(settings: Settings, window: Window) -> ChunkOutcome:
    """One real run as the flow makes it: take the lock, deliver every chunk, close the run record.

    A run that fails (SeQura unavailable) is closed as failed and its error raised, as the flow does.
    """
    store = open_state_store(settings.state_url())
    run_id = str(uuid.uuid4())
    start_run(store, run_id, MERCHANT, window, dry_run=False, flow_run_id=None, lease=settings.run_lease())
    try:
        _, total = deliver_all(settings, window, run_id=run_id)
    except Exception as error:
        finish_run(store, run_id, "failed", message=str(error))
        store.dispose()
        raise
    counts = RunCounts(
        total.new, total.changed, total.unchanged, total.quarantined, total.sent, total.updated
    )
    finish_run(store, run_id, "succeeded", counts)
    store.dispose()
    return total
